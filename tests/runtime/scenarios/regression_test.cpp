// Regression tests, each named after what broke (found in the first review of the runtime).
#include "node_fixture.hpp"
#include "test_stages.hpp"
#include "wait.hpp"

#include "codec/codec.hpp"
#include "supervision/supervisor.hpp"
#include "writer/writer.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>

using namespace troupe;
using namespace troupe::test;

namespace {

// Works a while on each record, so that the source runs ahead and fills the map.
class slow_sink : public stage {
public:
  explicit slow_sink(const params&) {}
  void process(context&, const record&) override {
    busy_work();
  }
};

class never_opens : public stage {
public:
  explicit never_opens(const params&) {}
  void open(context&) override { throw std::runtime_error("cannot open, ever"); }
  void process(context&, const record&) override {}
};

// Puts a state key longer than LMDB allows for the record with index `long_key_at`.
class long_key_stage : public stage {
public:
  explicit long_key_stage(const params& p) : at_(p.get_u64("long_key_at", 0)) {}
  void process(context& ctx, const record& r) override {
    auto index = r.payload<schema::Generated>().getIndex();
    ctx.state().put(index == at_ ? std::string(600, 'k') : std::string{"k"}, "v");
    ctx.forward("out", r);
  }

private:
  uint64_t at_;
};

std::atomic<uint64_t> poison_steps{0}; // batches test.poison was given

class poison_stage : public stage {
public:
  explicit poison_stage(const params& p) : poison_(p.get_u64("poison", 0)) {}
  void process_batch(context& ctx, const batch& records) override {
    ++poison_steps;
    stage::process_batch(ctx, records);
  }
  void process(context& ctx, const record& r) override {
    if (r.payload<schema::Generated>().getIndex() == poison_)
      throw std::runtime_error("poison");
    ctx.forward("out", r);
  }

private:
  uint64_t poison_;
};

// Emits ten copies of each input: a stage that adds more than it consumes.
std::atomic<uint64_t> fanned_in{0};
class fanout_stage : public stage {
public:
  explicit fanout_stage(const params&) {}
  void process(context& ctx, const record& r) override {
    for (int i = 0; i < 10; ++i)
      ctx.forward("out", r);
  }
};
class counting_sink : public stage { // slow, so that the fan-out fills the map before it
public:
  explicit counting_sink(const params&) {}
  void process_batch(context&, const batch& records) override {
    for (size_t i = 0; i < records.size(); ++i)
      busy_work();
    fanned_in += records.size();
  }
};

void register_stages(registry& reg) {
  reg.add_operator<fanout_stage>("test.fanout");
  reg.add_sink<counting_sink>("test.counting");
  reg.add_sink<null_sink>("test.null");
  reg.add_sink<slow_sink>("test.slow");
  reg.add_sink<never_opens>("test.never_opens");
  reg.add_operator<long_key_stage>("test.long_key").params({"long_key_at"});
  reg.add_operator<poison_stage>("test.poison").params({"poison"});
}

// Runs a node on a thread of its own, so the test can wait for it with a deadline. A node still
// running when the test gives up is stopped in order, so a failure cannot hang the suite.
struct run_in_thread {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::atomic<bool> done{false};
  std::mutex root_mutex;
  caf::actor root;
  node_outcome outcome;
  std::thread thread;

  explicit run_in_thread(const app_config& app) {
    cfg.set("scheduler.max-threads", 2);
    sys = std::make_unique<caf::actor_system>(cfg);
    thread = std::thread{[this, &app] {
      outcome = run_node(*sys, app, [this](caf::actor r) {
        std::lock_guard<std::mutex> guard{root_mutex};
        root = std::move(r);
      });
      done = true;
    }};
  }
  ~run_in_thread() {
    if (!done) {
      std::lock_guard<std::mutex> guard{root_mutex};
      if (root)
        caf::anon_send(root, stop_atom::value);
    }
    thread.join();
  }
};

} // namespace

TEST_CASE("two nodes cannot share a data dir", "[runtime][regression]") {
  temp_dir dir;
  store_layout layout;
  stage_spec s;
  s.name = "s";
  layout.stages.push_back(s);
  store_options opts;
  opts.dir = dir / "data";
  auto first = store::open(opts, layout);
  REQUIRE(first);
  auto second = store::open(opts, layout);
  REQUIRE_FALSE(second);
  CHECK(describe(second.error()).find("in use") != std::string::npos);
  first->reset();
  CHECK(store::open(opts, layout)); // free again once the first closed
}

TEST_CASE("intake resumes in the same run once consumers free space in a full map",
          "[runtime][regression]") {
  temp_dir dir;
  // 4 MiB cannot hold 6,000 records of 2 KB at once, but it can hold the few that are not yet
  // consumed: the run must finish, with trimming making room as the sink consumes.
  auto loaded = load_yaml(dir,
                          "app: refill\n"
                          "store: {map_size: 4MiB}\n"
                          "defaults: {batch: {max_items: 64}}\n"
                          "edges: {raw: {retention: {count: 1}}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 6000, payload_size: 2000, output: raw}\n"
                          "  - {name: sink, type: test.slow, input: raw}\n",
                          register_stages);
  run_in_thread node{loaded->app()};
  REQUIRE(wait_until([&] { return node.done.load(); }, std::chrono::seconds(120)));
  CHECK(node.outcome.exit_code == 0);
}

TEST_CASE("a producer behind a full log whose consumer failed for good does not hang the node",
          "[runtime][regression]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: stuck\n"
                          "supervision: {max_restarts: 1, within: 60s, backoff: {min: 1ms, max: 2ms}}\n"
                          "edges: {raw: {max_records: 50}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 5000, output: raw}\n"
                          "  - {name: sink, type: test.never_opens, input: raw}\n",
                          register_stages);
  run_in_thread node{loaded->app()};
  REQUIRE(wait_until([&] { return node.done.load(); }, std::chrono::seconds(60)));
  CHECK(node.outcome.exit_code == 1);
  CHECK(node.outcome.message.find("sink") != std::string::npos);
}

TEST_CASE("a state key LMDB cannot store dead-letters its record instead of failing the stage",
          "[runtime][regression]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: longkey\n"
                          "defaults: {retry: {max_attempts: 2, backoff: 1ms}, batch: {max_items: 16}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 100, payload_size: 8, output: raw}\n"
                          "  - {name: keyer, type: test.long_key, long_key_at: 42, input: raw, output: out}\n"
                          "  - {name: sink, type: test.null, input: out}\n",
                          register_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  auto got = indexes_in(*db, "out");
  CHECK(got.size() == 99);
  CHECK(std::find(got.begin(), got.end(), 42) == got.end());
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  CHECK(must(reader->dead_letter_count(*db->find_stage("keyer"))) == 1);
}

TEST_CASE("an undecodable record keeps its dead letter when a poison record is isolated",
          "[runtime][regression]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: undecodable\n"
                          "defaults: {retry: {max_attempts: 1, backoff: 1ms}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 50, payload_size: 8, output: raw}\n"
                          "  - {name: middle, type: test.poison, poison: 5, input: raw, output: out}\n"
                          "  - {name: sink, type: test.null, input: out}\n",
                          register_stages);
  {
    // Garbage at the head of the log, before anything the generator writes.
    auto db = open_store(loaded->app());
    step_delta d;
    d.stage = *db->find_stage("gen");
    d.add_output(*db->find_edge("raw"), 0, std::string(24, '\xff'));
    REQUIRE_FALSE(db->apply({&d}));
  }
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  auto got = indexes_in(*db, "out");
  CHECK(got.size() == 49);
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  CHECK(must(reader->dead_letter_count(*db->find_stage("middle"))) == 2); // the garbage and index 5
}

TEST_CASE("a framed record with a bad root pointer is dead-lettered, and the stage goes on",
          "[runtime][regression]") {
  // Its framing is right (one segment of one word), so it is read; its root pointer points
  // outside the segment, so it fails only when a stage looks inside. Describing it for the
  // dead-letter log once threw again and killed the stage for good.
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: badpointer\n"
                          "defaults: {retry: {max_attempts: 1, backoff: 1ms}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 20, payload_size: 8, output: raw}\n"
                          "  - {name: middle, type: test.poison, poison: 5, input: raw, output: out}\n"
                          "  - {name: sink, type: test.null, input: out}\n",
                          register_stages);
  {
    auto db = open_store(loaded->app());
    step_delta d;
    d.stage = *db->find_stage("gen");
    std::string bad(16, '\0');
    bad[4] = 1;                                  // segment table: 1 segment of 1 word
    uint64_t pointer = (uint64_t{1} << 32) | (uint64_t{0x1000} << 2); // 1 data word, far away
    std::memcpy(&bad[8], &pointer, 8);
    d.add_output(*db->find_edge("raw"), 0, bad);
    REQUIRE_FALSE(db->apply({&d}));
  }
  auto outcome = run_app(loaded->app());
  INFO(outcome.message);
  REQUIRE(outcome.exit_code == 0);
  auto db = open_store(loaded->app());
  CHECK(indexes_in(*db, "out").size() == 19); // all but poison 5
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  CHECK(must(reader->dead_letter_count(*db->find_stage("middle"))) == 2); // the bad one and 5
}

TEST_CASE("isolating a failed batch record by record takes only that batch's records",
          "[runtime][regression]") {
  // The batch that failed is retried one record at a time; records of other partitions that
  // came after it are not. Isolation used to take every partition's backlog one record per step
  // (8,655 single-record steps of 8,833 here) before it reached the failing partition.
  temp_dir dir;
  poison_steps = 0;
  auto loaded = load_yaml(dir,
                          "app: isolation\n"
                          "defaults: {retry: {max_attempts: 1, backoff: 1ms}, batch: {max_items: 64}}\n"
                          "edges: {raw: {partitions: 2}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 20000, payload_size: 8, output: raw}\n"
                          "  - {name: middle, type: test.poison, poison: 15000, input: raw, output: out}\n"
                          "  - {name: sink, type: test.null, input: out}\n",
                          register_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  CHECK(indexes_in(*db, "out").size() == 19999);
  // About 20000 / 64 batches, and at most one batch's 64 records alone.
  INFO(poison_steps.load() << " steps");
  CHECK(poison_steps < 20000 / 64 * 2 + 64);
}

TEST_CASE("near a full map a stage that fans out waits while its consumer makes room, and the "
          "run completes",
          "[runtime][regression]") {
  // Under pressure a step that adds more than it consumes commits only while the room measured
  // last lasts; one that fans out 1:10 was once admitted without a bound, filled the map, and then
  // nothing could commit at all.
  temp_dir dir;
  fanned_in = 0;
  auto loaded = load_yaml(dir,
                          "app: fanout\n"
                          "store: {map_size: 8MiB}\n"
                          "defaults: {batch: {max_items: 16}}\n"
                          "edges: {raw: {retention: {count: 1}},\n"
                          "        many: {retention: {count: 1}, max_bytes: 1GiB, max_records: 10000000}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 3000, payload_size: 1000, output: raw}\n"
                          "  - {name: fan, type: test.fanout, input: raw, output: many}\n"
                          "  - {name: sink, type: test.counting, input: many}\n",
                          register_stages);
  run_in_thread node{loaded->app()};
  REQUIRE(wait_until([&] { return node.done.load(); }, std::chrono::seconds(120)));
  CHECK(node.outcome.exit_code == 0);
  CHECK(fanned_in == 30000);
}

TEST_CASE("a JSON-lines sink refuses more than one worker", "[runtime][regression]") {
  temp_dir dir;
  registry reg;
  register_builtin_stages(reg);
  write_file(dir / "s.capnp", "@0xd6b1e4a0c5f2a931;\nstruct P { a @0 :UInt32; }\n");
  write_file(dir / "app.yaml",
             "app: w2\n"
             "schema: {file: s.capnp, payload: P}\n"
             "stages:\n"
             "  - {name: gen, type: generator, output: raw}\n"
             "  - {name: sink, type: jsonl_sink, path: out.jsonl, input: raw, workers: 2}\n");
  auto result = load_app(dir / "app.yaml", reg, dir / "data");
  REQUIRE(result.issues.size() == 1);
  CHECK(result.issues[0].field == "stages[1].workers");
  CHECK(result.issues[0].line == 5);
}
