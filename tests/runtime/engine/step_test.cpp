// The step engine end to end in one process: a generator feeds a test stage whose failures the
// test controls; afterwards the store is read back and compared with what must be there.
#include "node_fixture.hpp"
#include "test_stages.hpp"

#include "codec/codec.hpp"

#include <atomic>
#include <set>
#include <stdexcept>

using namespace troupe;
using namespace troupe::test;

namespace {

uint64_t index_of(const record& r) {
  return r.payload<schema::Generated>().getIndex();
}

// Forwards every record and counts them in keyed state. Throws for `poison` on every attempt,
// and (with fail_first) half-way through every batch on its first attempt.
class flaky_stage : public stage {
public:
  explicit flaky_stage(const params& p)
    : poison_(p.get_u64("poison", UINT64_MAX)), fail_first_(p.get_bool("fail_first", false)) {}

  void process_batch(context& ctx, const batch& records) override {
    for (size_t i = 0; i < records.size(); ++i) {
      auto r = records[i];
      ctx.forward("out", r);
      ctx.state().put_u64("count", ctx.state().get_u64("count").value_or(0) + 1);
      if (index_of(r) == poison_)
        throw std::runtime_error("poison record " + std::to_string(poison_));
      if (fail_first_ && r.attempt() == 0 && i == records.size() / 2)
        throw std::runtime_error("half-way failure");
    }
  }

private:
  uint64_t poison_;
  bool fail_first_;
};

// Fails in open() until `opens` reaches the `fail_opens` parameter.
std::atomic<int> opens{0};
class fragile_stage : public stage {
public:
  explicit fragile_stage(const params& p) : fail_opens_(static_cast<int>(p.get_u64("fail_opens", 0))) {}
  void open(context&) override {
    if (++opens <= fail_opens_)
      throw std::runtime_error("cannot open (attempt " + std::to_string(opens.load()) + ")");
  }
  void process(context& ctx, const record& r) override { ctx.forward("out", r); }

private:
  int fail_opens_;
};

// Fails its first `transient_failures` steps with a transient_error, then forwards; remembers the
// highest attempt count it saw.
std::atomic<int> transient_calls{0};
std::atomic<uint32_t> max_attempt_seen{0};
class unlucky_stage : public stage {
public:
  explicit unlucky_stage(const params& p)
    : failures_(static_cast<int>(p.get_u64("transient_failures", 0))) {}
  void process_batch(context& ctx, const batch& records) override {
    if (++transient_calls <= failures_)
      throw transient_error("disk full (simulated)");
    for (size_t i = 0; i < records.size(); ++i) {
      auto r = records[i];
      max_attempt_seen = std::max(max_attempt_seen.load(), r.attempt());
      ctx.forward("out", r);
    }
  }

private:
  int failures_;
};

void register_test_stages(registry& reg) {
  reg.add_operator<unlucky_stage>("test.unlucky").params({"transient_failures"});
  reg.add_operator<flaky_stage>("test.flaky").params({"poison", "fail_first"});
  reg.add_operator<fragile_stage>("test.fragile").params({"fail_opens"});
  reg.add_sink<null_sink>("test.null");
}

std::string pipeline(const std::string& middle_type, const std::string& middle_params,
                     uint64_t count, const std::string& extra = "") {
  return "app: steps\n"
         "defaults:\n"
         "  batch: {max_items: 64}\n"
         "  retry: {max_attempts: 3, backoff: 1ms}\n"
         "supervision: {max_restarts: 2, within: 60s, backoff: {min: 1ms, max: 5ms}}\n" +
         extra +
         "stages:\n"
         "  - name: gen\n"
         "    type: generator\n"
         "    count: " + std::to_string(count) + "\n"
         "    payload_size: 16\n"
         "    outputs: {out: raw}\n"
         "  - name: middle\n"
         "    type: " + middle_type + "\n" + middle_params +
         "    inputs: [raw]\n"
         "    outputs: {out: done}\n"
         "  - name: sink\n"
         "    type: test.null\n"
         "    inputs: [done]\n";
}


} // namespace

TEST_CASE("a step that throws half-way leaves no trace", "[runtime][step]") {
  temp_dir dir;
  auto loaded = load_yaml(dir, pipeline("test.flaky", "    fail_first: true\n", 2000),
                          register_test_stages);
  auto outcome = run_app(loaded->app());
  REQUIRE(outcome.exit_code == 0);

  auto db = open_store(loaded->app());
  // Every step failed once after forwarding half its records and counting them; had any of that
  // reached LMDB, records would appear twice and the count would be too high.
  CHECK(indexes_in(*db, "done") == iota_except(2000));
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  auto middle = *db->find_stage("middle");
  auto count = must(reader->state(middle, state_scope::partition, 0, state_space::user, "count"));
  REQUIRE(count);
  uint64_t value = 0;
  std::memcpy(&value, count->data(), 8);
  CHECK(value == 2000);
  CHECK(must(reader->dead_letter_count(middle)) == 0);
}

TEST_CASE("a record that keeps failing goes to the dead-letter log and the stage goes on",
          "[runtime][step]") {
  temp_dir dir;
  auto loaded = load_yaml(dir, pipeline("test.flaky", "    poison: 777\n", 1500),
                          register_test_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);

  auto db = open_store(loaded->app());
  CHECK(indexes_in(*db, "done") == iota_except(1500, {777}));
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  auto middle = *db->find_stage("middle");
  auto dead = must(reader->dead_letters(middle));
  REQUIRE(dead.size() == 1);

  envelope_decoder unused;
  auto words = kj::heapArray<capnp::word>(dead[0].bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), dead[0].bytes.data(), dead[0].bytes.size());
  capnp::FlatArrayMessageReader msg{words};
  auto dl = msg.getRoot<schema::DeadLetter>();
  CHECK(std::string{dl.getStage().cStr()} == "middle");
  CHECK(std::string{dl.getError().cStr()}.find("poison record 777") != std::string::npos);
  CHECK(dl.getAttempts() >= 3);
  CHECK(std::string{dl.getInput().cStr()} == "raw");
  REQUIRE(unused.decode({reinterpret_cast<const char*>(dl.getRecord().begin()),
                         dl.getRecord().size()}) == caf::error{});
  CHECK(unused.root().getPayload().getAs<schema::Generated>().getIndex() == 777);
}

TEST_CASE("a stage whose open fails is restarted by its supervisor and resumes",
          "[runtime][step][supervision]") {
  temp_dir dir;
  opens = 0;
  auto loaded = load_yaml(dir, pipeline("test.fragile", "    fail_opens: 2\n", 500),
                          register_test_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  CHECK(opens == 3);
  auto db = open_store(loaded->app());
  CHECK(indexes_in(*db, "done") == iota_except(500));
}

TEST_CASE("a stage that never opens is given up and the node still ends, with an error",
          "[runtime][step][supervision]") {
  temp_dir dir;
  opens = 0;
  auto loaded =
    load_yaml(dir, pipeline("test.fragile", "    fail_opens: 1000000\n", 300), register_test_stages);
  auto outcome = run_app(loaded->app());
  CHECK(outcome.exit_code == 1);
  CHECK(outcome.message.find("middle") != std::string::npos);
  // The stage was tried once plus its stage supervisor's restarts, and the whole stage was
  // restarted by the node as often as the node's intensity allows.
  CHECK(opens >= 3);

  // The source ran to completion regardless: its records wait in the edge for a later run.
  auto db = open_store(loaded->app());
  CHECK(indexes_in(*db, "raw") == iota_except(300));
  CHECK(indexes_in(*db, "done").empty());
}

TEST_CASE("a finished app run again does nothing and keeps its output", "[runtime][step]") {
  temp_dir dir;
  auto loaded = load_yaml(dir, pipeline("test.flaky", "", 300), register_test_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  CHECK(indexes_in(*db, "done") == iota_except(300));
}

TEST_CASE("a transient failure is retried until it passes and dead-letters nothing",
          "[runtime][step]") {
  temp_dir dir;
  transient_calls = 0;
  max_attempt_seen = 0;
  // More failures than retry.max_attempts (3): they must not count against the records.
  auto loaded = load_yaml(dir, pipeline("test.unlucky", "    transient_failures: 6\n", 400),
                          register_test_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  CHECK(transient_calls > 6);
  CHECK(max_attempt_seen == 0);
  auto db = open_store(loaded->app());
  CHECK(indexes_in(*db, "done") == iota_except(400));
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  CHECK(must(reader->dead_letter_count(*db->find_stage("middle"))) == 0);
}
