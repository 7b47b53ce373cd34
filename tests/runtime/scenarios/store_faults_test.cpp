// LMDB calls that fail while a node runs (through the store's fault seam, store/lmdb_api.hpp):
// a failed read is an error, never "absent", so the step it served fails and is retried after a
// restart; nothing is truncated, reset or lost. Before layout 3 a failed read of the sink's
// committed length read as 0 and cut the output file back to nothing.
#include "node_fixture.hpp"
#include "wait.hpp"

#include "base/log.hpp"
#include "store/lmdb_api.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <sstream>
#include <thread>

using namespace troupe;
using namespace troupe::test;

namespace {

// Forwards each record and counts them in its partition's state.
class counting_pass : public stage {
public:
  explicit counting_pass(const params&) {}
  void process(context& ctx, const record& r) override {
    ctx.state().put_u64("seen", ctx.state().get_u64("seen").value_or(0) + 1);
    ctx.forward("out", r);
  }
};

void register_fault_stages(registry& reg) {
  reg.add_operator<counting_pass>("test.counting_pass");
}

std::string app_yaml(uint32_t n) {
  return "app: faults\n"
         "schema: {file: " TROUPE_SOURCE_DIR "/tests/e2e/plugin/e2e.capnp, payload: Item}\n"
         "supervision: {max_restarts: 50, within: 60s, backoff: {min: 1ms, max: 20ms}}\n"
         "defaults: {batch: {max_items: 64}}\n"
         "stages:\n"
         "  - {name: gen, type: generator, count: " + std::to_string(n) +
         ", payload_size: 4, output: items}\n"
         "  - {name: pass, type: test.counting_pass, input: items, output: passed}\n"
         "  - {name: write, type: jsonl_sink, input: passed, path: out.jsonl}\n";
}

// The indexes in the sink's file, in order; a line that does not parse counts as -1.
std::vector<int64_t> indexes_written(const std::string& path) {
  std::vector<int64_t> out;
  std::istringstream in{read_file(path)};
  for (std::string line; std::getline(in, line);) {
    auto at = line.find("\"index\":");
    out.push_back(at == std::string::npos ? -1 : std::strtoll(line.c_str() + at + 8, nullptr, 10));
  }
  return out;
}

} // namespace

TEST_CASE("LMDB reads that fail while a node runs fail their steps, which are retried: the "
          "output is exact",
          "[runtime][scenario]") {
  temp_dir dir;
  const uint32_t n = 200000;
  auto loaded = load_yaml(dir, app_yaml(n), register_fault_stages);
  const auto& app = loaded->app();
  auto faults = std::make_shared<faulty_lmdb>();
  node_options options;
  options.lmdb = faults;

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  std::atomic<bool> done{false};
  node_outcome outcome;
  std::thread node{[&] {
    outcome = run_node(sys, app, {}, options);
    done = true;
  }};
  // Arm one fault at a time, a few hundred calls apart, and wait for each to fire: reads of
  // state, heads and cursors (get) and of the logs (cursor_get), from whichever stage.
  int fired = 0;
  for (int round = 0; round < 6 && !done; ++round) {
    auto which = round % 2 == 0 ? faulty_lmdb::call::get : faulty_lmdb::call::cursor_get;
    auto before = faults->failures(which);
    faults->fail(which, EIO, 1, 50 + 37 * round);
    if (wait_until([&] { return done || faults->failures(which) > before; },
                   std::chrono::seconds(60)) &&
        faults->failures(which) > before)
      ++fired;
  }
  faults->clear();
  REQUIRE(wait_until([&] { return done.load(); }, std::chrono::seconds(120)));
  node.join();
  INFO(outcome.message);
  CHECK(fired >= 3); // else the run was over before the faults could prove anything
  REQUIRE(outcome.exit_code == 0);

  auto got = indexes_written(dir / "out.jsonl");
  REQUIRE(got.size() == n);
  size_t wrong = 0;
  for (uint32_t i = 0; i < n; ++i)
    wrong += got[i] != static_cast<int64_t>(i) ? 1 : 0;
  CHECK(wrong == 0);
  auto db = open_store(app);
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  auto seen = must(reader->state(*db->find_stage("pass"), state_scope::partition, 0,
                                 state_space::user, "seen"));
  REQUIRE(seen);
  uint64_t count = 0;
  std::memcpy(&count, seen->data(), 8);
  CHECK(count == n); // no step counted twice, none lost
}

TEST_CASE("a worker restarted again and again in a running process does not count as a death: "
          "no record is dead-lettered for it",
          "[runtime][scenario]") {
  // Each failed read restarts the worker at the same position after committing its crash
  // marker; those restarts happen inside the process and must not be taken for the process
  // dying on the records (which would isolate them and dead-letter the first).
  temp_dir dir;
  const uint32_t n = 300;
  auto loaded = load_yaml(dir,
                          "app: restarts\n"
                          "schema: {file: " TROUPE_SOURCE_DIR "/tests/e2e/plugin/e2e.capnp, "
                          "payload: Item}\n"
                          "supervision: {max_restarts: 50, within: 60s, backoff: {min: 1ms, max: 5ms}}\n"
                          "defaults: {retry: {max_attempts: 2, backoff: 1ms}, batch: {max_items: 1}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: " + std::to_string(n) +
                            ", payload_size: 4, output: items}\n"
                            "  - {name: pass, type: test.counting_pass, input: items, output: passed}\n"
                            "  - {name: write, type: jsonl_sink, input: passed, path: out.jsonl}\n",
                          register_fault_stages);
  auto faults = std::make_shared<faulty_lmdb>();
  node_options options;
  options.lmdb = faults;
  // The pass stage's reads of its state key "seen" fail six times: it dies inside its step (after
  // its start's crash marker committed) and restarts at the same position, six times.
  faults->fail_get_of("seen", EIO, 6);
  std::atomic<int> deaths_reported{0};
  set_log_observer([&](log_level, std::string_view, std::string_view what) {
    if (what.find("the process died") != std::string_view::npos)
      ++deaths_reported;
  });
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  auto outcome = run_node(sys, loaded->app(), {}, options);
  set_log_observer({});
  INFO(outcome.message);
  REQUIRE(outcome.exit_code == 0);
  CHECK(faults->failures(faulty_lmdb::call::get) == 6);
  CHECK(deaths_reported == 0); // restarts are not deaths of the process
  auto got = indexes_written(dir / "out.jsonl");
  CHECK(got.size() == n);
  auto db = open_store(loaded->app());
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  for (const auto* stage : {"gen", "pass", "write"})
    CHECK(must(reader->dead_letter_count(*db->find_stage(stage))) == 0);
}
