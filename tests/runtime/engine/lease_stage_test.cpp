// Leasing stages (work queues) end to end in one process: a generator feeds a leasing test stage
// whose failures and stalls the test controls; the store is read back afterwards.
#include "node_fixture.hpp"
#include "test_stages.hpp"
#include "wait.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>

using namespace troupe;
using namespace troupe::test;

namespace {

std::array<std::atomic<uint64_t>, 4> taken_by{};
std::atomic<uint32_t> stalled_retry_attempt{0};

// Forwards every record. Throws for `poison` on every attempt; on the first attempt of `stall`
// holds its worker (a stuck worker) until another worker has taken the item again, or for at
// most `stall_ms`; with `use_state`, touches keyed state.
class probe : public stage {
public:
  explicit probe(const params& p)
    : poison_(p.get_u64("poison", UINT64_MAX)), stall_(p.get_u64("stall", UINT64_MAX)),
      stall_ms_(p.get_u64("stall_ms", 0)), use_state_(p.get_bool("use_state", false)) {}

  void process(context& ctx, const record& r) override {
    auto i = r.payload<schema::Generated>().getIndex();
    if (use_state_)
      ctx.state().put("k", "v");
    if (i == poison_)
      throw std::runtime_error("poison record " + std::to_string(i));
    if (i == stall_) {
      if (r.attempt() == 0)
        wait_until([] { return stalled_retry_attempt != 0; },
                   std::chrono::milliseconds{stall_ms_});
      else
        stalled_retry_attempt = r.attempt();
    }
    busy_work();
    ++taken_by[ctx.worker()];
    ctx.forward("out", r);
  }

private:
  uint64_t poison_, stall_, stall_ms_;
  bool use_state_;
};

void register_probe(registry& reg) {
  reg.add_operator<probe>("test.probe")
    .params({"poison", "stall", "stall_ms", "use_state"})
    .leases()
    .blocking();
  reg.add_sink<null_sink>("test.null");
}

std::string queue_app(uint64_t count, const std::string& work_keys) {
  return "app: leases\n"
         "defaults:\n"
         "  retry: {max_attempts: 3, backoff: 1ms}\n"
         "stages:\n"
         "  - name: gen\n"
         "    type: generator\n"
         "    count: " + std::to_string(count) + "\n"
         "    payload_size: 16\n"
         "    outputs: {out: items}\n"
         "  - name: work\n"
         "    type: test.probe\n"
         "    inputs: [items]\n"
         "    outputs: {out: done}\n" + work_keys +
         "  - name: sink\n"
         "    type: test.null\n"
         "    inputs: [done]\n";
}

std::vector<uint64_t> sorted(std::vector<uint64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

} // namespace

TEST_CASE("a work queue's workers share one partition's items: each item once, a failing item "
          "dead-lettered after its attempts while the others go on",
          "[runtime][lease]") {
  temp_dir dir;
  for (auto& n : taken_by)
    n = 0;
  auto loaded = load_yaml(dir, queue_app(3000, "    workers: 3\n    batch: {max_items: 16}\n"
                                               "    poison: 777\n"),
                          register_probe);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  CHECK(db->layout().edges[*db->find_edge("items")].partitions == 1);
  CHECK(sorted(indexes_in(*db, "done")) == iota_except(3000, {777}));
  db.reset();
  auto dead = stored_dead_letters(loaded->app(), "work");
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].input_seq == 777);
  CHECK_THAT(dead[0].error, Catch::Contains("failed 3 attempts: poison record 777"));
  CHECK(taken_by[0] + taken_by[1] + taken_by[2] >= 2999); // items of failed batches ran twice
  for (int w = 0; w < 3; ++w)
    CHECK(taken_by[w] > 0); // no partition ties an item to a worker
}

TEST_CASE("an item held past its lease goes to another worker, and the stuck worker's late step "
          "is dropped: every item once",
          "[runtime][lease]") {
  temp_dir dir;
  stalled_retry_attempt = 0;
  auto loaded = load_yaml(dir, queue_app(400, "    workers: 2\n    lease: 200ms\n"
                                              "    batch: {max_items: 4}\n"
                                              "    stall: 100\n    stall_ms: 30000\n"),
                          register_probe);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  CHECK(sorted(indexes_in(*db, "done")) == iota_except(400));
  CHECK(stalled_retry_attempt == 1); // taken again, by the other worker, as attempt 1
  db.reset();
  CHECK(stored_dead_letters(loaded->app(), "work").empty());
}

TEST_CASE("a leasing stage has no keyed state: state() fails the step, saying why",
          "[runtime][lease]") {
  temp_dir dir;
  auto loaded = load_yaml(dir, queue_app(3, "    use_state: true\n"), register_probe);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto dead = stored_dead_letters(loaded->app(), "work");
  REQUIRE(dead.size() == 3);
  CHECK_THAT(dead[0].error, Catch::Contains("leases its items") &&
                              Catch::Contains("use worker_state()"));
}

TEST_CASE("`lease` belongs to leasing stages; their workers need no partitions of their own",
          "[runtime][lease][config]") {
  temp_dir dir;
  registry reg;
  register_builtin_stages(reg);
  register_probe(reg);
  write_file(dir / "app.yaml", queue_app(3, "    workers: 8\n    lease: 1s\n") +
                                 "    lease: 5s\n");
  auto wrong = load_app(dir / "app.yaml", reg, dir / "data");
  REQUIRE(wrong.issues.size() == 1);
  CHECK_THAT(wrong.issues[0].to_string(),
             Catch::Contains("app.yaml:19:") && Catch::Contains("stages[2].lease") &&
               Catch::Contains("'lease' is for stages that lease their items"));
  write_file(dir / "app.yaml", queue_app(3, "    workers: 8\n    lease: 0s\n"));
  auto zero = load_app(dir / "app.yaml", reg, dir / "data");
  REQUIRE(zero.issues.size() == 1);
  CHECK_THAT(zero.issues[0].to_string(), Catch::Contains("stages[1].lease"));
}
