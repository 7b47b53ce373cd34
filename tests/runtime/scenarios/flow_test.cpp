// Flow control across stages: parallel workers, backpressure from a capped log, and intake
// stopping (and resuming) when the LMDB map is full.
#include "node_fixture.hpp"
#include "test_stages.hpp"
#include "wait.hpp"

#include "codec/codec.hpp"
#include "base/log.hpp"
#include "supervision/supervisor.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

using namespace troupe;
using namespace troupe::test;

namespace {

std::atomic<uint64_t> produced{0};
std::atomic<uint64_t> consumed{0};
std::atomic<uint64_t> max_gap{0};

// A source that counts what it produced, so a sink can see how far ahead it is.
class counting_source : public source {
public:
  explicit counting_source(const params& p) : count_(p.get_u64("count", 1000)) {}
  produce_result produce(context& ctx, size_t max_items) override {
    auto next = ctx.state().get_u64("next").value_or(0);
    auto n = std::min<uint64_t>(max_items, count_ - next);
    for (uint64_t i = 0; i < n; ++i)
      ctx.emit("out").init_payload<schema::Generated>().setIndex(next + i);
    produced += n;
    ctx.state().put_u64("next", next + n);
    return next + n >= count_ ? produce_result::done() : produce_result::more();
  }

private:
  uint64_t count_;
};

// A sink that works a while on each record and records how far the source got ahead.
class slow_sink : public stage {
public:
  explicit slow_sink(const params&) {}
  void process(context&, const record&) override {
    busy_work();
    auto done = ++consumed;
    auto gap = produced.load() - std::min(produced.load(), done);
    auto seen = max_gap.load();
    while (gap > seen && !max_gap.compare_exchange_weak(seen, gap)) {
    }
  }
};

class pass_stage : public stage {
public:
  explicit pass_stage(const params&) {}
  void process(context& ctx, const record& r) override {
    ctx.forward("out", r);
    ctx.state().put_u64("count", ctx.state().get_u64("count").value_or(0) + 1);
  }
};

// Checks that it sees the Generated indexes 0, 1, 2, ... with no gap and nothing twice; a record
// out of order throws (and so ends up in its dead-letter log).
class ordered_sink : public stage {
public:
  explicit ordered_sink(const params&) {}
  void process(context& ctx, const record& r) override {
    auto next = ctx.state().get_u64("next").value_or(0);
    auto index = r.payload<schema::Generated>().getIndex();
    if (index != next)
      throw std::logic_error("expected index " + std::to_string(next) + ", got " +
                             std::to_string(index));
    ctx.state().put_u64("next", next + 1);
  }
};

// Counts its steps and records.
std::atomic<uint64_t> steps{0};
std::atomic<uint64_t> stepped_records{0};
class step_counting_sink : public stage {
public:
  explicit step_counting_sink(const params&) {}
  void process_batch(context&, const batch& records) override {
    ++steps;
    stepped_records += records.size();
  }
};

void register_flow_stages(registry& reg) {
  reg.add_sink<step_counting_sink>("test.steps");
  reg.add_sink<ordered_sink>("test.ordered");
  reg.add_source<counting_source>("test.counting").params({"count"});
  reg.add_sink<slow_sink>("test.slow");
  reg.add_operator<pass_stage>("test.pass");
  reg.add_sink<null_sink>("test.null");
}

uint64_t u64_of(const std::optional<std::string>& v) {
  REQUIRE(v);
  REQUIRE(v->size() == 8);
  uint64_t x = 0;
  std::memcpy(&x, v->data(), 8);
  return x;
}

} // namespace

TEST_CASE("a stage with several workers processes every record exactly once",
          "[runtime][flow]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: workers\n"
                          "defaults: {batch: {max_items: 50}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 3000, payload_size: 8, output: raw}\n"
                          "  - {name: middle, type: test.pass, workers: 3, input: raw, output: mid}\n"
                          "  - {name: sink, type: test.null, input: mid}\n",
                          register_flow_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  auto got = indexes_in(*db, "mid");
  std::sort(got.begin(), got.end());
  std::vector<uint64_t> want(3000);
  for (uint64_t i = 0; i < want.size(); ++i)
    want[i] = i;
  CHECK(got == want);
  // Three workers got three partitions (one each); each partition kept its own count, every
  // partition got records, and the counts add up.
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  auto middle = *db->find_stage("middle");
  REQUIRE(db->layout().stages[middle].partitions == 3);
  uint64_t total = 0;
  for (uint32_t p = 0; p < 3; ++p) {
    auto c = u64_of(must(reader->state(middle, state_scope::partition, p, state_space::user, "count")));
    CHECK(c > 0);
    total += c;
  }
  CHECK(total == 3000);
}

TEST_CASE("a log at its cap holds its producer back", "[runtime][flow]") {
  temp_dir dir;
  produced = 0;
  consumed = 0;
  max_gap = 0;
  auto loaded = load_yaml(dir,
                          "app: backpressure\n"
                          "defaults: {batch: {max_items: 10}}\n"
                          "edges: {raw: {max_records: 50}}\n"
                          "stages:\n"
                          "  - {name: src, type: test.counting, count: 3000, output: raw}\n"
                          "  - {name: sink, type: test.slow, input: raw}\n",
                          register_flow_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  CHECK(consumed == 3000);
  // The source checks the committed backlog before a step and may have `in_flight` (4) steps of
  // 10 on their way past the cap; the sink's steps in flight count as consumed before they commit.
  INFO("largest lead of the source over the sink: " << max_gap.load());
  CHECK(max_gap <= 50 + 4 * 10 + 4 * 10);
}

TEST_CASE("a full map stops intake without losing anything, and a bigger map resumes",
          "[runtime][flow]") {
  temp_dir dir;
  // 4,000 records of 2 KB do not fit a 4 MiB map. The edge's byte cap is lifted so that the map,
  // not the cap, stops the generator.
  auto loaded = load_yaml(dir,
                          "app: mapfull\n"
                          "store: {map_size: 4MiB}\n"
                          "defaults: {batch: {max_items: 64}}\n"
                          "edges: {raw: {max_bytes: 1GiB}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 4000, payload_size: 2000, output: raw}\n"
                          "  - {name: sink, type: test.ordered, input: raw}\n",
                          register_flow_stages);
  // The first run has no sink (its consumer group stays on the edge, so nothing is trimmed):
  // a consumer that kept up would free room as fast as the generator fills it, and whether the
  // map filled would be a matter of timing.
  auto without_sink = loaded->app();
  without_sink.stages.erase(std::remove_if(without_sink.stages.begin(), without_sink.stages.end(),
                                           [](const stage_config& s) { return s.name == "sink"; }),
                            without_sink.stages.end());
  std::atomic<bool> full_reported{false};
  set_log_observer([&](log_level, std::string_view, std::string_view what) {
    if (what.find("nearly full") != std::string_view::npos &&
        what.find("store.map_size") != std::string_view::npos)
      full_reported = true;
  });
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 2);
    caf::actor_system sys{cfg};
    std::atomic<bool> started{false};
    caf::actor root;
    node_outcome outcome;
    std::thread node{[&] {
      outcome = run_node(sys, without_sink, [&](caf::actor r) {
        root = r;
        started = true;
      });
    }};
    bool reported = wait_until([&] { return full_reported.load(); }, std::chrono::seconds(60));
    REQUIRE(wait_until([&] { return started.load(); }));
    caf::anon_send(root, stop_atom::value); // the node waits for room: stop it in order
    node.join();
    set_log_observer({});
    REQUIRE(reported);
    CHECK(outcome.exit_code == 0);
  }
  // What was committed before the map filled is intact: a gapless prefix from the first record.
  {
    auto db = open_store(without_sink);
    auto left = indexes_in(*db, "raw");
    REQUIRE_FALSE(left.empty());
    CHECK(left.size() < 4000);
    for (uint64_t i = 0; i < left.size(); ++i)
      REQUIRE(left[i] == i);
  }
  // Growing the map is configuration: the same data dir, a bigger map_size, the sink back, and
  // it completes: every record once, in order (test.ordered dead-letters one out of order).
  auto bigger = loaded->app();
  bigger.map_size = uint64_t{64} << 20;
  REQUIRE(run_app(bigger).exit_code == 0);
  auto db = open_store(bigger);
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  auto sink = *db->find_stage("sink");
  CHECK(u64_of(must(reader->state(sink, state_scope::partition, 0, state_space::user, "next"))) ==
        4000);
  CHECK(must(reader->dead_letter_count(sink)) == 0);
}

TEST_CASE("a partial batch waits up to max_delay to fill", "[runtime][flow]") {
  temp_dir dir;
  steps = 0;
  stepped_records = 0;
  // The generator trickles 100 records at 200 per second. Taken as they come, that would be
  // dozens of steps of one or two records; waiting up to 300 ms per batch gathers them into a few.
  auto loaded = load_yaml(dir,
                          "app: delay\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 100, rate: 200, output: raw,\n"
                          "     batch: {max_items: 1}}\n"
                          "  - {name: sink, type: test.steps, input: raw,\n"
                          "     batch: {max_items: 1000, max_delay: 300ms}}\n",
                          register_flow_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  CHECK(stepped_records == 100);
  INFO("steps: " << steps.load());
  CHECK(steps <= 20);
}
