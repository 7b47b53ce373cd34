// The stage API as a stage sees it: state per partition and per worker, reading one's own
// uncommitted state across pipelined steps, where emitted records go (partitions by key), and
// record ids that do not depend on the worker count.
#include "node_fixture.hpp"
#include "test_stages.hpp"

#include <troupe/partition.hpp>

#include <map>
#include <set>

using namespace troupe;
using namespace troupe::test;

namespace {

// Emits, for each input, a record whose index is the count of records this partition has seen
// before it: read from state that the previous steps, maybe still in flight, wrote.
class tally_stage : public stage {
public:
  explicit tally_stage(const params&) {}
  void process(context& ctx, const record& r) override {
    auto n = ctx.state().get_u64("n").value_or(0);
    ctx.state().put_u64("n", n + 1);
    auto out = ctx.emit("out").key(r.key()).init_payload<schema::Generated>();
    out.setIndex(n);
  }
};

// Uses ctx.state() before taking any record of its batch.
class stateless_too_early : public stage {
public:
  explicit stateless_too_early(const params&) {}
  void process_batch(context& ctx, const batch& records) override {
    ctx.state().put_u64("x", 1); // no record in hand: refused
    (void)records;
  }
};

// Keeps a count in worker state and one in the state of each record's partition.
class two_scopes : public stage {
public:
  explicit two_scopes(const params&) {}
  void open(context& ctx) override { opened_ = ctx.worker_state().get_u64("opened").value_or(0); }
  void process(context& ctx, const record& r) override {
    ctx.worker_state().put_u64("seen", ctx.worker_state().get_u64("seen").value_or(0) + 1);
    ctx.state(r).put_u64("seen", ctx.state(r).get_u64("seen").value_or(0) + 1);
  }

private:
  uint64_t opened_ = 0;
};

// Emits one keyless record per input.
class keyless_stage : public stage {
public:
  explicit keyless_stage(const params&) {}
  void process(context& ctx, const record&) override {
    ctx.emit("out").no_key().init_payload<schema::Generated>().setIndex(0);
  }
};

// Emits one record per input, keyed by the empty string.
class empty_key_stage : public stage {
public:
  explicit empty_key_stage(const params&) {}
  void process(context& ctx, const record&) override {
    ctx.emit("out").key("").init_payload<schema::Generated>().setIndex(0);
  }
};

// Writes and erases keys of its partition's state, and checks at every record that scan() -
// whole, and page by page - gives what a map of its own writes holds: committed state merged
// with the writes of the steps still in flight and of the step in hand.
class scanning_stage : public stage {
public:
  explicit scanning_stage(const params&) {}
  void process(context& ctx, const record& r) override {
    auto i = r.payload<schema::Generated>().getIndex();
    auto state = ctx.state();
    auto key = "k" + std::to_string(i % 37);
    if (i % 5 == 0) {
      state.erase(key);
      model_.erase(key);
    } else {
      state.put(key, std::to_string(i));
      model_[key] = std::to_string(i);
    }
    std::map<std::string, std::string> whole, paged;
    for (auto& [k, v] : state.scan("", 1000))
      whole[k] = v;
    std::string after;
    for (;;) {
      auto page = state.scan(after, 3);
      for (auto& [k, v] : page)
        paged[k] = v;
      if (page.size() < 3)
        break;
      after = page.back().first;
    }
    if (whole != model_ || paged != model_)
      throw std::logic_error("scan disagrees with the writes at record " + std::to_string(i));
  }

private:
  std::map<std::string, std::string> model_;
};

void register_api_stages(registry& reg) {
  reg.add_sink<scanning_stage>("test.scanning");
  reg.add_operator<tally_stage>("test.tally");
  reg.add_sink<stateless_too_early>("test.too_early");
  reg.add_sink<two_scopes>("test.two_scopes");
  reg.add_operator<keyless_stage>("test.keyless");
  reg.add_operator<empty_key_stage>("test.empty_key");
  reg.add_sink<null_sink>("test.null");
}

uint64_t u64(const std::optional<std::string>& v) {
  REQUIRE(v);
  REQUIRE(v->size() == 8);
  uint64_t x = 0;
  std::memcpy(&x, v->data(), 8);
  return x;
}

// (origin, seq) of every record of an edge.
std::set<std::pair<std::string, uint64_t>> ids_in(store& db, const std::string& edge) {
  std::set<std::pair<std::string, uint64_t>> out;
  auto reader = db.reader();
  REQUIRE_FALSE(reader->refresh());
  auto e = *db.find_edge(edge);
  envelope_decoder dec;
  for (partition_id p = 0; p < db.layout().edges[e].partitions; ++p)
    REQUIRE(reader->read(e, p, 0, SIZE_MAX, [&](uint64_t, std::string_view bytes) {
      REQUIRE_FALSE(dec.decode(bytes));
      out.emplace(dec.root().getId().getOrigin().cStr(), dec.root().getId().getSeq());
      return true;
    }));
  return out;
}

} // namespace

TEST_CASE("partition_of is the documented stable hash", "[runtime][stage_api]") {
  // XXH3-64 of the key's bytes, seed 0, modulo the count: these values must never change
  // (they place records of existing data dirs).
  CHECK(partition_of("", 1) == 0);
  CHECK(partition_of("anything", 1) == 0);
  std::map<uint32_t, int> spread;
  for (int i = 0; i < 8000; ++i)
    ++spread[partition_of("customer-" + std::to_string(i), 8)];
  CHECK(spread.size() == 8);
  for (auto [p, n] : spread)
    CHECK((n > 800 && n < 1200)); // about 1000 each
  CHECK(partition_of_keyless(13, 4) == 1);
  // Golden values (computed once with xxHash 0.8.1: XXH3_64bits("ada") = 0x691d4463952c802f):
  // keep them.
  CHECK(partition_of("ada", 8) == 7);
  CHECK(partition_of("grace", 16) == 0);
}

TEST_CASE("a stage reads the state its steps in flight wrote: pipelining loses no update",
          "[runtime][stage_api]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: tally\n"
                          "defaults: {batch: {max_items: 1, in_flight: 8}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 3000, payload_size: 0, output: raw}\n"
                          "  - {name: tally, type: test.tally, input: raw, output: counted}\n"
                          "  - {name: sink, type: test.null, input: counted}\n",
                          register_api_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  auto got = indexes_in(*db, "counted");
  REQUIRE(got.size() == 3000);
  for (uint64_t i = 0; i < got.size(); ++i)
    REQUIRE(got[i] == i); // a lost read-your-write would repeat a count
}

TEST_CASE("state() with no record in hand is refused in a stage with inputs", "[runtime][stage_api]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: early\n"
                          "defaults: {retry: {max_attempts: 1, backoff: 1ms}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 3, output: raw}\n"
                          "  - {name: sink, type: test.too_early, input: raw}\n",
                          register_api_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  auto dead = must(reader->dead_letters(*db->find_stage("sink")));
  REQUIRE(dead.size() == 3); // each record, once alone, then dead-lettered with the reason
  auto words = kj::heapArray<capnp::word>(dead[0].bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), dead[0].bytes.data(), dead[0].bytes.size());
  capnp::FlatArrayMessageReader msg{words};
  std::string error = msg.getRoot<schema::DeadLetter>().getError().cStr();
  CHECK(error.find("needs a record in hand") != std::string::npos);
  CHECK(error.find("worker_state()") != std::string::npos);
}

TEST_CASE("worker state belongs to the worker, partition state to the partition",
          "[runtime][stage_api]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: scopes\n"
                          "edges: {raw: {partitions: 4}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 4000, payload_size: 0, output: raw}\n"
                          "  - {name: sink, type: test.two_scopes, workers: 2, input: raw}\n",
                          register_api_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  auto sink = *db->find_stage("sink");
  auto state = [&](state_scope scope, uint32_t i) {
    return u64(must(reader->state(sink, scope, i, state_space::user, "seen")));
  };
  // Worker 0 owns partitions 0 and 1, worker 1 partitions 2 and 3.
  CHECK(state(state_scope::worker, 0) ==
        state(state_scope::partition, 0) + state(state_scope::partition, 1));
  CHECK(state(state_scope::worker, 1) ==
        state(state_scope::partition, 2) + state(state_scope::partition, 3));
  CHECK(state(state_scope::worker, 0) + state(state_scope::worker, 1) == 4000);
  // Every record sits in the partition its key hashes to.
  auto raw = *db->find_edge("raw");
  envelope_decoder dec;
  size_t misplaced = 0, total = 0;
  for (partition_id p = 0; p < 4; ++p)
    REQUIRE(reader->read(raw, p, 0, SIZE_MAX, [&](uint64_t, std::string_view bytes) {
      REQUIRE_FALSE(dec.decode(bytes));
      auto key = dec.root().getKey();
      std::string_view k{reinterpret_cast<const char*>(key.begin()), key.size()};
      misplaced += partition_of(k, 4) != p ? 1 : 0;
      ++total;
      return true;
    }));
  CHECK(total == 4000);
  CHECK(misplaced == 0);
}

TEST_CASE("keyless records spread evenly over the partitions", "[runtime][stage_api]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: keyless\n"
                          "edges: {spread: {partitions: 4}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 1000, payload_size: 0, output: raw}\n"
                          "  - {name: mid, type: test.keyless, input: raw, output: spread}\n"
                          "  - {name: sink, type: test.null, input: spread}\n",
                          register_api_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  auto e = *db->find_edge("spread");
  for (partition_id p = 0; p < 4; ++p)
    CHECK(must(reader->partition(e, p)).head == 250);
}

TEST_CASE("an empty key is a key: its records keep to one partition", "[runtime][stage_api]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: emptykey\n"
                          "edges: {keyed: {partitions: 4}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 100, payload_size: 0, output: raw}\n"
                          "  - {name: mid, type: test.empty_key, input: raw, output: keyed}\n"
                          "  - {name: sink, type: test.null, input: keyed}\n",
                          register_api_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  auto e = *db->find_edge("keyed");
  for (partition_id p = 0; p < 4; ++p)
    CHECK(must(reader->partition(e, p)).head == (p == partition_of("", 4) ? 100 : 0));
}

TEST_CASE("record ids do not depend on the worker count", "[runtime][stage_api]") {
  std::set<std::pair<std::string, uint64_t>> with[2];
  for (int w = 0; w < 2; ++w) {
    temp_dir dir;
    auto loaded = load_yaml(dir,
                            "app: ids\n"
                            "edges: {raw: {partitions: 4}}\n"
                            "stages:\n"
                            "  - {name: gen, type: generator, count: 2000, payload_size: 0, output: raw}\n"
                            "  - {name: tally, type: test.tally, workers: " +
                              std::to_string(w == 0 ? 1 : 4) +
                              ", input: raw, output: counted}\n"
                              "  - {name: sink, type: test.null, input: counted}\n",
                            register_api_stages);
    REQUIRE(run_app(loaded->app()).exit_code == 0);
    auto db = open_store(loaded->app());
    with[w] = ids_in(*db, "counted");
  }
  CHECK(with[0].size() == 2000);
  CHECK(with[0] == with[1]); // each partition numbers its own records: "tally/<p>", 0, 1, ...
}

TEST_CASE("scan sees committed state, the steps in flight and the step in hand",
          "[runtime][stage_api]") {
  temp_dir dir;
  auto loaded = load_yaml(dir,
                          "app: scan\n"
                          "durability: sync\n" // slow commits: steps wait in flight
                          "defaults: {batch: {max_items: 3, in_flight: 8}}\n"
                          "stages:\n"
                          "  - {name: gen, type: generator, count: 2000, payload_size: 0, output: raw}\n"
                          "  - {name: scan, type: test.scanning, input: raw}\n",
                          register_api_stages);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  auto db = open_store(loaded->app());
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  CHECK(must(reader->dead_letter_count(*db->find_stage("scan"))) == 0);
}
