#include "store/store.hpp"

#include <catch2/catch.hpp>
#include <lmdb.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace troupe {

// Drives the store's clock, so age retention is tested without sleeping.
struct store_test_access {
  static caf::error apply_at(store& s, const std::vector<const step_delta*>& deltas,
                             uint64_t now_ms) {
    return s.apply_at(deltas, nullptr, nullptr, now_ms);
  }
  static caf::expected<uint64_t> trim_all_at(store& s, uint64_t now_ms) {
    return s.trim_all_at(now_ms);
  }
};

} // namespace troupe

using namespace troupe;

namespace {

// A fresh directory under /tmp, removed with everything in it at the end of the test.
struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/troupe-store-test-XXXXXX";
    auto* p = mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

edge_spec edge(std::string name, std::vector<std::string> groups, uint64_t count = 0,
               uint64_t age_ms = 0) {
  edge_spec e;
  e.name = std::move(name);
  e.groups = std::move(groups);
  e.keep.count = count;
  e.keep.age_ms = age_ms;
  return e;
}

// Edges "a" (read by s2's two workers), "b" (read by s3/0); stages s1 (1 worker), s2 (2), s3 (1).
store_layout sample_layout() {
  store_layout l;
  l.edges.push_back(edge("a", {"s2/0", "s2/1"}));
  l.edges.push_back(edge("b", {"s3/0"}));
  l.stages.push_back({"s1", 1});
  l.stages.push_back({"s2", 2});
  l.stages.push_back({"s3", 1});
  return l;
}

std::unique_ptr<store> open_store(const std::string& dir, store_layout layout,
                                  uint64_t map_size = uint64_t{64} << 20,
                                  durability mode = durability::process) {
  store_options o;
  o.dir = dir;
  o.map_size = map_size;
  o.mode = mode;
  auto s = store::open(o, std::move(layout));
  if (!s)
    FAIL("store::open failed: " << describe(s.error()));
  return std::move(*s);
}

std::string rec(uint64_t i) { return "record-" + std::to_string(i); }

step_delta outputs(edge_id e, uint64_t first, uint64_t n, stage_id stage = 0) {
  step_delta d;
  d.stage = stage;
  for (uint64_t i = first; i < first + n; ++i)
    d.add_output(e, rec(i));
  return d;
}

caf::error apply(store& s, std::initializer_list<const step_delta*> deltas,
                 std::vector<edge_id>* appended = nullptr,
                 std::vector<edge_id>* consumed = nullptr) {
  return s.apply(std::vector<const step_delta*>(deltas), appended, consumed);
}

step_delta cursor_move(edge_id e, std::string group, uint64_t next) {
  step_delta d;
  d.cursors.push_back({e, std::move(group), next});
  return d;
}

// (seq, bytes) of the records of an edge from `from` on.
std::vector<std::pair<uint64_t, std::string>> read_all(store_reader& r, edge_id e,
                                                       uint64_t from = 0) {
  std::vector<std::pair<uint64_t, std::string>> out;
  auto n = r.read(e, from, SIZE_MAX, [&](uint64_t seq, std::string_view bytes) {
    out.emplace_back(seq, std::string{bytes});
    return true;
  });
  REQUIRE(n);
  CHECK(*n == out.size());
  return out;
}

void check_contiguous(const std::vector<std::pair<uint64_t, std::string>>& recs, uint64_t first,
                      uint64_t end) {
  REQUIRE(recs.size() == end - first);
  for (uint64_t i = 0; i < recs.size(); ++i) {
    REQUIRE(recs[i].first == first + i);
    REQUIRE(recs[i].second == rec(first + i));
  }
}

// Time-index entries of an edge, read straight from the `edges` database.
size_t time_index_entries(store& s, const std::string& edge_name) {
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(s.env(), nullptr, MDB_RDONLY, &txn) == 0);
  MDB_dbi dbi;
  REQUIRE(mdb_dbi_open(txn, "edges", 0, &dbi) == 0);
  MDB_cursor* c = nullptr;
  REQUIRE(mdb_cursor_open(txn, dbi, &c) == 0);
  std::string prefix = edge_name + '\0';
  MDB_val k{prefix.size(), prefix.data()}, v;
  size_t n = 0;
  int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size == prefix.size() + 8 &&
         std::string_view(static_cast<char*>(k.mv_data), prefix.size()) == prefix) {
    ++n;
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  mdb_txn_abort(txn);
  return n;
}

// One stored chunk of an edge's log: its key (the first record's seq) and its records.
struct raw_chunk {
  uint64_t first;
  std::vector<std::string> records;
};

uint32_t le32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
size_t pad8(size_t n) { return (n + 7) / 8 * 8; }

// The chunks of an edge's log, read straight from `log/<edge>` and decoded by
// runtime/STORE_FORMAT.md alone; checks the header, the offsets and the zero padding on the way.
std::vector<raw_chunk> raw_chunks(store& s, const std::string& edge_name) {
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(s.env(), nullptr, MDB_RDONLY, &txn) == 0);
  MDB_dbi dbi;
  REQUIRE(mdb_dbi_open(txn, ("log/" + edge_name).c_str(), MDB_INTEGERKEY, &dbi) == 0);
  MDB_cursor* c = nullptr;
  REQUIRE(mdb_cursor_open(txn, dbi, &c) == 0);
  std::vector<raw_chunk> out;
  MDB_val k, v;
  int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
  while (rc == 0) {
    REQUIRE(k.mv_size == 8);
    raw_chunk chunk;
    std::memcpy(&chunk.first, k.mv_data, 8);
    auto p = static_cast<const unsigned char*>(v.mv_data);
    REQUIRE(v.mv_size >= 8);
    uint32_t count = le32(p);
    REQUIRE(count >= 1);
    REQUIRE(le32(p + 4) == 0); // flags
    size_t area = pad8(8 + 4 * size_t{count});
    REQUIRE(v.mv_size >= area);
    for (size_t i = 8 + 4 * size_t{count}; i < area; ++i)
      REQUIRE(p[i] == 0);
    size_t start = 0;
    for (uint32_t i = 0; i < count; ++i) {
      size_t end = le32(p + 8 + 4 * size_t{i});
      REQUIRE(start <= end);
      REQUIRE(area + pad8(end) <= v.mv_size);
      chunk.records.emplace_back(reinterpret_cast<const char*>(p) + area + start, end - start);
      for (size_t j = end; j < pad8(end); ++j)
        REQUIRE(p[area + j] == 0);
      start = pad8(end);
    }
    CHECK(v.mv_size == area + start); // the value ends with the last record's padding
    out.push_back(std::move(chunk));
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  CHECK(rc == MDB_NOTFOUND);
  mdb_cursor_close(c);
  mdb_txn_abort(txn);
  return out;
}

// The keys of an edge's chunks (the first seq of each).
std::vector<uint64_t> chunk_keys(store& s, const std::string& edge_name) {
  std::vector<uint64_t> keys;
  for (const auto& c : raw_chunks(s, edge_name))
    keys.push_back(c.first);
  return keys;
}

// Appends records [first, first + n) to edge e in `batches` equal commits of n / batches records.
void append_in_commits(store& s, edge_id e, uint64_t first, uint64_t n, uint64_t batches) {
  for (uint64_t b = 0; b < batches; ++b) {
    auto d = outputs(e, first + b * (n / batches), n / batches);
    REQUIRE(!s.apply({&d}));
  }
}

} // namespace

// Writes, with bare LMDB, what an older or foreign build left in `dir`: meta's layout_version
// set to `version` and, if given, one record stored as a bare value at seq 0 of "log/a".
static void write_raw(const std::string& dir, const std::string& version, const std::string* record) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_set_maxdbs(env, 16) == 0);
  REQUIRE(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi meta;
  REQUIRE(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta) == 0);
  std::string k = "layout_version";
  MDB_val kv{k.size(), k.data()}, vv{version.size(), const_cast<char*>(version.data())};
  REQUIRE(mdb_put(txn, meta, &kv, &vv, 0) == 0);
  if (record) {
    MDB_dbi log;
    REQUIRE(mdb_dbi_open(txn, "log/a", MDB_CREATE | MDB_INTEGERKEY, &log) == 0);
    uint64_t seq = 0;
    MDB_val sk{8, &seq}, rv{record->size(), const_cast<char*>(record->data())};
    REQUIRE(mdb_put(txn, log, &sk, &rv, 0) == 0);
  }
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
}

TEST_CASE("appended records read back in order with sequence numbers from 0, and heads survive "
          "a reopen",
          "[runtime][store]") {
  temp_dir dir;
  {
    auto s = open_store(dir.path, sample_layout(), uint64_t{64} << 20, durability::sync);
    for (uint64_t batch = 0; batch < 3; ++batch) {
      auto d = outputs(0, batch * 10, 10);
      std::vector<edge_id> appended, consumed{7};
      REQUIRE(!apply(*s, {&d}, &appended, &consumed));
      CHECK(appended == std::vector<edge_id>{0});
      CHECK(consumed.empty());
    }
    CHECK(s->committed_head(0) == 30);
    CHECK(s->committed_head(1) == 0);
    auto r = s->reader();
    check_contiguous(read_all(*r, 0), 0, 30);
    CHECK(r->head(0) == 30);
    CHECK(r->tail(0) == 0);
    CHECK(r->head(1) == 0);
    // `max` and an early stop both end the scan.
    std::vector<uint64_t> seen;
    auto n = r->read(0, 25, 3, [&](uint64_t seq, std::string_view) {
      seen.push_back(seq);
      return true;
    });
    REQUIRE(n);
    CHECK(*n == 3);
    CHECK(seen == std::vector<uint64_t>{25, 26, 27});
    n = r->read(0, 5, 100, [](uint64_t seq, std::string_view) { return seq < 6; });
    REQUIRE(n);
    CHECK(*n == 2);
  }
  auto s = open_store(dir.path, sample_layout());
  CHECK(s->committed_head(0) == 30);
  auto d = outputs(0, 30, 5);
  REQUIRE(!apply(*s, {&d}));
  auto r = s->reader();
  check_contiguous(read_all(*r, 0), 0, 35);
  CHECK(r->meta("layout_version") == std::optional<std::string>{"2"});
  CHECK(r->meta("workers/s2") == std::optional<std::string>{"2"});
  CHECK(s->find_edge("b") == std::optional<edge_id>{1});
  CHECK(!s->find_edge("zz"));
  CHECK(s->find_stage("s3") == std::optional<stage_id>{2});
}

TEST_CASE("a group commit of deltas from several stages lands whole or not at all",
          "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, sample_layout());

  step_delta d1 = outputs(0, 0, 4, 0); // s1 writes to a, keeps state
  d1.state.push_back({state_space::user, "k1", std::string{"v1"}});
  step_delta d2 = outputs(1, 0, 2, 1); // s2/1 reads a, writes b, dead-letters one record
  d2.worker = 1;
  d2.cursors.push_back({0, "s2/1", 3});
  d2.dead.push_back({"dead-0"});
  d2.state.push_back({state_space::runtime, "next", std::string{"3"}});

  auto check_nothing = [&] {
    CHECK(s->committed_head(0) == 0);
    CHECK(s->committed_head(1) == 0);
    auto r = s->reader();
    CHECK(r->head(0) == 0);
    CHECK(r->head(1) == 0);
    CHECK(read_all(*r, 0).empty());
    CHECK(read_all(*r, 1).empty());
    CHECK(!r->state(0, 0, state_space::user, "k1"));
    CHECK(!r->state(1, 1, state_space::runtime, "next"));
    CHECK(!r->cursor(0, "s2/1"));
    CHECK(r->dead_letter_count(1) == 0);
  };

  SECTION("a bad delta after good ones applies none of them") {
    std::vector<step_delta> bad(5);
    bad[0].outputs.push_back({99, 0, 0}); // unknown edge
    bad[1].add_output(0, "x");
    bad[1].outputs.back().size = 2; // past the arena
    bad[2].cursors.push_back({0, "s2/0", 1000}); // past the head
    bad[3].stage = 1;
    bad[3].worker = 2; // s2 has two workers
    bad[3].state.push_back({state_space::user, "k", std::string{"v"}});
    bad[4].stage = 42; // unknown stage
    bad[4].dead.push_back({"x"});
    for (auto& b : bad) {
      std::vector<edge_id> appended;
      auto err = apply(*s, {&d1, &d2, &b}, &appended);
      CHECK(code_of(err) == errc::config_invalid);
      CHECK(appended.empty());
      check_nothing();
    }
  }
  SECTION("good deltas all land, and in-memory heads did not move on the failures") {
    step_delta bad;
    bad.outputs.push_back({99, 0, 0});
    REQUIRE(apply(*s, {&d1, &d2, &bad}));
    std::vector<edge_id> appended, consumed;
    REQUIRE(!apply(*s, {&d1, &d2}, &appended, &consumed));
    CHECK(appended == std::vector<edge_id>{0, 1});
    CHECK(consumed == std::vector<edge_id>{0});
    auto r = s->reader();
    check_contiguous(read_all(*r, 0), 0, 4);
    check_contiguous(read_all(*r, 1), 0, 2);
    CHECK(r->state(0, 0, state_space::user, "k1") == std::optional<std::string>{"v1"});
    CHECK(r->state(1, 1, state_space::runtime, "next") == std::optional<std::string>{"3"});
    CHECK(r->cursor(0, "s2/1") == std::optional<uint64_t>{3});
    CHECK(r->dead_letter_count(1) == 1);
  }
}

TEST_CASE("cursors are stored per group, survive a reopen, and the backlog follows the slowest",
          "[runtime][store]") {
  temp_dir dir;
  {
    auto s = open_store(dir.path, sample_layout());
    auto d = outputs(0, 0, 10);
    REQUIRE(!apply(*s, {&d}));
    auto r = s->reader();
    CHECK(!r->cursor(0, "s2/0"));
    CHECK(r->backlog(0) == 10); // no group has committed: nothing is consumed

    auto c1 = cursor_move(0, "s2/0", 7);
    std::vector<edge_id> appended, consumed;
    REQUIRE(!apply(*s, {&c1}, &appended, &consumed));
    CHECK(appended.empty());
    CHECK(consumed == std::vector<edge_id>{0});
    REQUIRE(!r->refresh());
    CHECK(r->cursor(0, "s2/0") == std::optional<uint64_t>{7});
    CHECK(r->backlog(0) == 10); // s2/1 still holds everything

    auto c2 = cursor_move(0, "s2/1", 4);
    auto c3 = cursor_move(0, "s2/1", 6); // a later move in the same commit wins
    REQUIRE(!apply(*s, {&c2, &c3}, &appended, &consumed));
    CHECK(consumed == std::vector<edge_id>{0});
    REQUIRE(!r->refresh());
    CHECK(r->cursor(0, "s2/1") == std::optional<uint64_t>{6});
    CHECK(r->backlog(0) == 4);
    CHECK(!r->cursor(0, "nobody"));
    CHECK(!r->cursor(1, "s2/0")); // cursors are per edge
  }
  auto s = open_store(dir.path, sample_layout());
  auto r = s->reader();
  CHECK(r->cursor(0, "s2/0") == std::optional<uint64_t>{7});
  CHECK(r->cursor(0, "s2/1") == std::optional<uint64_t>{6});
  CHECK(r->backlog(0) == 4);
}

TEST_CASE("an edge without consumer groups has no backlog", "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("loose", {}));
  auto s = open_store(dir.path, l);
  auto d = outputs(0, 0, 5);
  REQUIRE(!apply(*s, {&d}));
  CHECK(s->reader()->backlog(0) == 0);
}

TEST_CASE("state is kept per stage, worker and space, and scan_state sees only user keys",
          "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, sample_layout());
  auto put = [](stage_id st, uint32_t w, state_space sp, std::string k,
                std::optional<std::string> v) {
    step_delta d;
    d.stage = st;
    d.worker = w;
    d.state.push_back({sp, std::move(k), std::move(v)});
    return d;
  };
  std::vector<step_delta> ds{
    put(1, 0, state_space::user, "k", "w0-user"),
    put(1, 1, state_space::user, "k", "w1-user"),
    put(1, 0, state_space::runtime, "k", "w0-runtime"),
    put(0, 0, state_space::user, "k", "s1-user"),
    put(1, 0, state_space::user, "b", "w0-b"),
    put(1, 0, state_space::user, "a", ""), // an empty value is a value
  };
  std::vector<const step_delta*> ptrs;
  for (auto& d : ds)
    ptrs.push_back(&d);
  REQUIRE(!s->apply(ptrs));
  auto r = s->reader();
  CHECK(r->state(1, 0, state_space::user, "k") == std::optional<std::string>{"w0-user"});
  CHECK(r->state(1, 1, state_space::user, "k") == std::optional<std::string>{"w1-user"});
  CHECK(r->state(1, 0, state_space::runtime, "k") == std::optional<std::string>{"w0-runtime"});
  CHECK(r->state(0, 0, state_space::user, "k") == std::optional<std::string>{"s1-user"});
  CHECK(r->state(1, 0, state_space::user, "a") == std::optional<std::string>{""});
  CHECK(!r->state(2, 0, state_space::user, "k"));
  CHECK(!r->state(1, 0, state_space::user, "missing"));

  std::vector<std::pair<std::string, std::string>> scanned;
  REQUIRE(!r->scan_state(1, 0, [&](std::string_view k, std::string_view v) {
    scanned.emplace_back(std::string{k}, std::string{v});
  }));
  using kv = std::pair<std::string, std::string>;
  CHECK(scanned == std::vector<kv>{{"a", ""}, {"b", "w0-b"}, {"k", "w0-user"}});

  auto erase = put(1, 0, state_space::user, "k", std::nullopt);
  auto erase_missing = put(1, 0, state_space::user, "never-written", std::nullopt);
  REQUIRE(!apply(*s, {&erase, &erase_missing}));
  REQUIRE(!r->refresh());
  CHECK(!r->state(1, 0, state_space::user, "k"));
  CHECK(r->state(1, 1, state_space::user, "k") == std::optional<std::string>{"w1-user"});
  CHECK(r->state(1, 0, state_space::runtime, "k") == std::optional<std::string>{"w0-runtime"});
  scanned.clear();
  REQUIRE(!r->scan_state(1, 1, [&](std::string_view k, std::string_view v) {
    scanned.emplace_back(std::string{k}, std::string{v});
  }));
  CHECK(scanned == std::vector<kv>{{"k", "w1-user"}});
  CHECK(code_of(r->scan_state(9, 0, [](std::string_view, std::string_view) {})) ==
        errc::config_invalid);
}

TEST_CASE("dead letters append in order and their count survives a reopen", "[runtime][store]") {
  temp_dir dir;
  {
    auto s = open_store(dir.path, sample_layout());
    step_delta d1, d2;
    d1.stage = d2.stage = 2;
    for (int i = 0; i < 3; ++i)
      d1.dead.push_back({"dl-" + std::to_string(i)});
    for (int i = 3; i < 5; ++i)
      d2.dead.push_back({"dl-" + std::to_string(i)});
    REQUIRE(!apply(*s, {&d1}));
    REQUIRE(!apply(*s, {&d2}));
    auto r = s->reader();
    auto all = r->dead_letters(2);
    REQUIRE(all.size() == 5);
    for (uint64_t i = 0; i < 5; ++i) {
      CHECK(all[i].seq == i);
      CHECK(all[i].bytes == "dl-" + std::to_string(i));
    }
    auto some = r->dead_letters(2, 3, 1);
    REQUIRE(some.size() == 1);
    CHECK(some[0].seq == 3);
    CHECK(r->dead_letter_count(2) == 5);
    CHECK(r->dead_letter_count(0) == 0);
  }
  auto s = open_store(dir.path, sample_layout());
  CHECK(s->reader()->dead_letter_count(2) == 5);
  step_delta d;
  d.stage = 2;
  d.dead.push_back({"dl-5"});
  REQUIRE(!apply(*s, {&d}));
  auto all = s->reader()->dead_letters(2, 5);
  REQUIRE(all.size() == 1);
  CHECK(all[0].seq == 5);
  CHECK(all[0].bytes == "dl-5");
}

TEST_CASE("trimming by count removes whole chunks, keeps at least the newest consumed records "
          "and never unconsumed ones",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("one", {"g"}, 10));
  l.edges.push_back(edge("two", {"g1", "g2"}, 5));
  l.edges.push_back(edge("forever", {"g"}, 0)); // both limits off: nothing is ever trimmed
  auto s = open_store(dir.path, l);
  // Commits of 10 records: chunks [0, 10), [10, 20), ...
  append_in_commits(*s, 0, 0, 100, 10);
  append_in_commits(*s, 1, 0, 50, 5);
  append_in_commits(*s, 2, 0, 50, 5);
  auto r = s->reader();
  CHECK(r->tail(0) == 0); // nothing consumed yet

  auto m1 = cursor_move(0, "g", 50);
  auto m2 = cursor_move(2, "g", 50);
  REQUIRE(!apply(*s, {&m1, &m2}));
  REQUIRE(!r->refresh());
  CHECK(r->tail(0) == 40); // 0..39 may go, and they fill chunks exactly
  check_contiguous(read_all(*r, 0), 40, 100);
  check_contiguous(read_all(*r, 0, 10), 40, 100); // nothing below the tail comes back
  CHECK(r->tail(2) == 0);
  check_contiguous(read_all(*r, 2), 0, 50);

  auto m3 = cursor_move(0, "g", 95);
  REQUIRE(!apply(*s, {&m3}));
  REQUIRE(!r->refresh());
  // 85..94 must stay, so their chunk [80, 90) stays whole: more than 10 consumed records are kept.
  CHECK(r->tail(0) == 80);
  check_contiguous(read_all(*r, 0), 80, 100);
  CHECK(chunk_keys(*s, "one") == std::vector<uint64_t>{80, 90});
  auto m4 = cursor_move(0, "g", 100);
  REQUIRE(!apply(*s, {&m4}));
  REQUIRE(!r->refresh());
  CHECK(r->tail(0) == 90);
  CHECK(r->head(0) == 100);
  check_contiguous(read_all(*r, 0), 90, 100);

  // Two groups: the slowest decides.
  auto g1 = cursor_move(1, "g1", 50);
  auto g2 = cursor_move(1, "g2", 20);
  REQUIRE(!apply(*s, {&g1, &g2}));
  REQUIRE(!r->refresh());
  CHECK(r->tail(1) == 10); // 0..14 may go; [10, 20) holds 15..19
  check_contiguous(read_all(*r, 1), 10, 50);
  auto g2b = cursor_move(1, "g2", 50);
  REQUIRE(!apply(*s, {&g2b}));
  REQUIRE(!r->refresh());
  CHECK(r->tail(1) == 40);
  CHECK(r->backlog(1) == 0);

  // A chunk with unconsumed records is never trimmed, however many consumed ones it holds.
  auto big = outputs(1, 50, 100);
  REQUIRE(!apply(*s, {&big}));
  auto g1c = cursor_move(1, "g1", 149);
  auto g2c = cursor_move(1, "g2", 149);
  REQUIRE(!apply(*s, {&g1c, &g2c}));
  REQUIRE(!r->refresh());
  CHECK(r->tail(1) == 50);
  check_contiguous(read_all(*r, 1), 50, 150);

  // Tails survive a reopen, and a trim with nothing to do removes nothing.
  r.reset();
  s.reset();
  s = open_store(dir.path, l);
  r = s->reader();
  CHECK(r->tail(0) == 90);
  CHECK(r->tail(1) == 50);
  auto none = s->trim_all();
  REQUIRE(none);
  CHECK(*none == 0);
}

TEST_CASE("after any trim, the tail is a chunk boundary, unconsumed records and the newest "
          "consumed ones stay, and no further whole chunk could go",
          "[runtime][store]") {
  temp_dir dir;
  const uint64_t keep = 37;
  store_layout l;
  l.edges.push_back(edge("e", {"g"}, keep));
  auto s = open_store(dir.path, l);
  auto r = s->reader();
  std::vector<uint64_t> boundaries{0}; // where chunks start, as appended
  uint64_t head = 0, consumed = 0;
  uint64_t rnd = 12345;
  auto next_rand = [&](uint64_t n) {
    rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
    return (rnd >> 33) % n;
  };
  for (int round = 0; round < 200; ++round) {
    auto d = outputs(0, head, 1 + next_rand(60));
    head += d.outputs.size();
    boundaries.push_back(head);
    consumed = std::min(head, consumed + next_rand(70));
    d.cursors.push_back({0, "g", consumed});
    REQUIRE(!apply(*s, {&d}));
    REQUIRE(!r->refresh());
    uint64_t tail = r->tail(0);
    INFO("round " << round << ": head " << head << ", consumed " << consumed << ", tail " << tail);
    CHECK(std::find(boundaries.begin(), boundaries.end(), tail) != boundaries.end());
    CHECK(tail <= consumed);                            // unconsumed records are never trimmed
    CHECK(consumed - tail >= std::min(keep, consumed)); // at least `keep` consumed ones stay
    // The first remaining chunk holds a record that must stay.
    if (tail < head) {
      auto end = *std::upper_bound(boundaries.begin(), boundaries.end(), tail);
      CHECK(end > consumed - std::min(keep, consumed));
    }
    check_contiguous(read_all(*r, 0), tail, head);
  }
  CHECK(r->tail(0) > head / 2); // trimming did keep up
}

TEST_CASE("one transaction trims a bounded number of chunks and trim_all does the rest",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("big", {"g"}, 1));
  auto s = open_store(dir.path, l);
  const uint64_t n = 1100; // one-record chunks, more than the 1024 a transaction deletes
  for (uint64_t i = 0; i < n; ++i) {
    auto d = outputs(0, i, 1);
    REQUIRE(!apply(*s, {&d}));
  }
  auto m = cursor_move(0, "g", n);
  REQUIRE(!apply(*s, {&m}));
  auto r = s->reader();
  CHECK(r->tail(0) == 1024);
  auto removed = s->trim_all();
  REQUIRE(removed);
  CHECK(*removed == n - 1 - 1024); // records, here one per chunk
  REQUIRE(!r->refresh());
  CHECK(r->tail(0) == n - 1);
  auto left = read_all(*r, 0);
  REQUIRE(left.size() == 1);
  CHECK(left[0].first == n - 1);
}

TEST_CASE("trimming by age removes chunks of consumed records once older than the limit, never "
          "earlier",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("aged", {"g"}, 0, 10000));
  auto s = open_store(dir.path, l);
  const uint64_t t0 = 1'700'000'000'000;
  auto at = [&](uint64_t now, std::initializer_list<const step_delta*> ds) {
    return store_test_access::apply_at(*s, std::vector<const step_delta*>(ds), now);
  };
  auto trim_at = [&](uint64_t now) {
    auto n = store_test_access::trim_all_at(*s, now);
    REQUIRE(n);
    return *n;
  };
  auto tail = [&] { return s->reader()->tail(0); };

  auto a = outputs(0, 0, 10);
  auto b = outputs(0, 10, 10);
  REQUIRE(!at(t0, {&a}));        // indexed: records < 10 appended by t0
  REQUIRE(!at(t0 + 500, {&b}));  // within the second: not indexed yet
  CHECK(time_index_entries(*s, "aged") == 1);
  CHECK(trim_at(t0 + 1500) == 0); // indexes the idle edge: records < 20 appended by t0+1500
  CHECK(time_index_entries(*s, "aged") == 2);

  // Consumed up to 15 only: the rest must stay whatever their age.
  auto m = cursor_move(0, "g", 15);
  REQUIRE(!at(t0 + 1600, {&m}));
  CHECK(tail() == 0);
  CHECK(trim_at(t0 + 10000) == 0); // exactly the age of the first records: not older yet
  CHECK(tail() == 0);
  CHECK(trim_at(t0 + 10001) == 10);
  CHECK(tail() == 10);
  CHECK(time_index_entries(*s, "aged") == 1); // the entry for seq 10 is spent
  CHECK(trim_at(t0 + 11499) == 0); // records 10..19 may be as young as t0+1500
  CHECK(trim_at(t0 + 11501) == 0); // 10..14 are old enough, but 15..19 of their chunk are unconsumed
  CHECK(tail() == 10);

  auto m2 = cursor_move(0, "g", 20);
  REQUIRE(!at(t0 + 11600, {&m2})); // apply trims the edges it touched
  CHECK(tail() == 20);
  CHECK(time_index_entries(*s, "aged") == 0);
  check_contiguous(read_all(*s->reader(), 0), 20, 20);
}

TEST_CASE("a full map fails the commit with store_full and loses nothing committed",
          "[runtime][store]") {
  temp_dir dir;
  const uint64_t small = uint64_t{1} << 20;
  store_layout l;
  l.edges.push_back(edge("e", {"g"}));
  l.stages.push_back({"st", 1});
  const std::string payload(1000, 'p');
  auto make = [&](uint64_t batch) {
    step_delta d;
    for (int i = 0; i < 50; ++i)
      d.add_output(0, payload + std::to_string(batch * 50 + i));
    d.state.push_back({state_space::user, "last", std::to_string(batch)});
    return d;
  };
  uint64_t committed = 0;
  {
    auto s = open_store(dir.path, l, small);
    caf::error err;
    for (; committed < 1000; ++committed) {
      auto d = make(committed);
      if ((err = apply(*s, {&d})))
        break;
    }
    REQUIRE(err);
    CHECK(code_of(err) == errc::store_full);
    CHECK(describe(err).find("store.map_size") != std::string::npos);
    REQUIRE(committed > 0);
    CHECK(s->committed_head(0) == committed * 50);
    auto r = s->reader();
    CHECK(r->head(0) == committed * 50);
    CHECK(r->state(0, 0, state_space::user, "last") ==
          std::optional<std::string>{std::to_string(committed - 1)});
    // The store stays usable: a small commit either fits or fails the same clean way.
    step_delta tiny;
    tiny.add_output(0, "t");
    auto err2 = apply(*s, {&tiny});
    CHECK((code_of(err2) == errc::none || code_of(err2) == errc::store_full));
  }
  auto check_intact = [&](store& s) {
    auto r = s.reader();
    uint64_t i = 0;
    auto n = r->read(0, 0, SIZE_MAX, [&](uint64_t seq, std::string_view bytes) {
      if (seq != i)
        return false;
      if (bytes != payload + std::to_string(i) && bytes != "t")
        return false;
      ++i;
      return true;
    });
    REQUIRE(n);
    CHECK(i == r->head(0));
    CHECK(*n == i);
    return i;
  };
  uint64_t records;
  {
    auto s = open_store(dir.path, l, small);
    records = check_intact(*s);
    CHECK(records >= 50);
  }
  auto s = open_store(dir.path, l, uint64_t{8} << 20);
  CHECK(check_intact(*s) == records);
  for (uint64_t k = 0; k < 20; ++k) {
    step_delta d;
    for (int i = 0; i < 50; ++i)
      d.add_output(0, payload + std::to_string(records + k * 50 + i));
    REQUIRE(!apply(*s, {&d}));
  }
  CHECK(check_intact(*s) == records + 20 * 50);
}

TEST_CASE("a changed worker count or layout version is reported as a layout mismatch",
          "[runtime][store]") {
  temp_dir dir;
  open_store(dir.path, sample_layout()).reset();

  SECTION("worker count") {
    auto l = sample_layout();
    l.stages[1].workers = 3;
    store_options o;
    o.dir = dir.path;
    auto s = store::open(o, l);
    REQUIRE(!s);
    CHECK(code_of(s.error()) == errc::layout_mismatch);
    auto text = describe(s.error());
    CHECK(text.find("'s2'") != std::string::npos);
    CHECK(text.find("3 workers") != std::string::npos);
    CHECK(text.find("by 2 workers") != std::string::npos);
    // The unchanged layout still opens.
    open_store(dir.path, sample_layout()).reset();
  }
  SECTION("layout version") {
    write_raw(dir.path, "99", nullptr);

    store_options o;
    o.dir = dir.path;
    auto s = store::open(o, sample_layout());
    REQUIRE(!s);
    CHECK(code_of(s.error()) == errc::layout_mismatch);
    CHECK(describe(s.error()).find("version 99") != std::string::npos);
  }
}

TEST_CASE("a store of layout version 1 (one entry per record) is refused as a layout mismatch",
          "[runtime][store]") {
  temp_dir dir;
  // What a version-1 build left: its meta and one record stored as a bare value.
  auto rec0 = rec(0);
  write_raw(dir.path, "1", &rec0);

  store_options o;
  o.dir = dir.path;
  auto s = store::open(o, sample_layout());
  REQUIRE(!s);
  CHECK(code_of(s.error()) == errc::layout_mismatch);
  auto text = describe(s.error());
  CHECK(text.find("version 1") != std::string::npos);
  CHECK(text.find("only version 2") != std::string::npos);
}

TEST_CASE("a bad layout or too few databases is refused as invalid config", "[runtime][store]") {
  temp_dir dir;
  store_options o;
  o.dir = dir.path + "/nested/dir"; // created with its parents
  auto l = sample_layout();
  l.edges.push_back(edge("a", {}));
  auto s = store::open(o, l);
  REQUIRE(!s);
  CHECK(code_of(s.error()) == errc::config_invalid);
  l = sample_layout();
  l.edges[0].name = std::string("bad\0name", 8);
  CHECK(code_of(store::open(o, l).error()) == errc::config_invalid);
  o.max_dbs = 4;
  CHECK(code_of(store::open(o, sample_layout()).error()) == errc::config_invalid);
  o.max_dbs = 4096;
  CHECK(store::open(o, sample_layout()));
}

TEST_CASE("a reader sees one consistent snapshot until it refreshes", "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, sample_layout());
  auto r = s->reader(); // the snapshot starts at first use, not here
  auto d1 = outputs(0, 0, 5);
  REQUIRE(!apply(*s, {&d1}));
  CHECK(r->head(0) == 5);

  auto d2 = outputs(0, 5, 5);
  d2.state.push_back({state_space::user, "k", std::string{"v"}});
  REQUIRE(!apply(*s, {&d2}));
  CHECK(r->head(0) == 5);
  check_contiguous(read_all(*r, 0), 0, 5);
  CHECK(!r->state(0, 0, state_space::user, "k"));

  REQUIRE(!r->refresh());
  CHECK(r->head(0) == 10);
  check_contiguous(read_all(*r, 0), 0, 10);
  CHECK(r->state(0, 0, state_space::user, "k") == std::optional<std::string>{"v"});

  r->release();
  auto d3 = outputs(0, 10, 1);
  REQUIRE(!apply(*s, {&d3}));
  CHECK(r->head(0) == 11); // a released reader renews at its next use
}

TEST_CASE("a group commit writes one chunk per edge, whatever the number of deltas",
          "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, sample_layout());
  step_delta d1 = outputs(0, 0, 3, 0);
  d1.add_output(1, rec(0));
  step_delta d2 = outputs(1, 1, 2, 1);
  step_delta d3 = outputs(0, 3, 4, 1);
  d3.add_output(1, rec(3));
  step_delta quiet = cursor_move(0, "s2/0", 2);
  std::vector<edge_id> appended;
  REQUIRE(!apply(*s, {&d1, &d2, &quiet, &d3}, &appended));
  CHECK(appended == std::vector<edge_id>{0, 1});
  auto a = raw_chunks(*s, "a");
  REQUIRE(a.size() == 1);
  CHECK(a[0].first == 0);
  CHECK(a[0].records == std::vector<std::string>{rec(0), rec(1), rec(2), rec(3), rec(4), rec(5),
                                                 rec(6)});
  auto b = raw_chunks(*s, "b");
  REQUIRE(b.size() == 1);
  CHECK(b[0].records == std::vector<std::string>{rec(0), rec(1), rec(2), rec(3)});

  // The next commit starts the next chunk where the previous one ended.
  auto d4 = outputs(0, 7, 2);
  REQUIRE(!apply(*s, {&d4}));
  CHECK(chunk_keys(*s, "a") == std::vector<uint64_t>{0, 7});
  auto r = s->reader();
  check_contiguous(read_all(*r, 0), 0, 9);
  check_contiguous(read_all(*r, 1), 0, 4);
}

TEST_CASE("a commit's records are split into chunks at 4096 records or 1 MiB",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("many", {"g"}));
  l.edges.push_back(edge("large", {"g"}));
  auto s = open_store(dir.path, l, uint64_t{256} << 20);

  auto many = outputs(0, 0, 10000);
  REQUIRE(!apply(*s, {&many}));
  auto chunks = raw_chunks(*s, "many");
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[0].first == 0);
  CHECK(chunks[0].records.size() == 4096);
  CHECK(chunks[1].first == 4096);
  CHECK(chunks[1].records.size() == 4096);
  CHECK(chunks[2].first == 8192);
  CHECK(chunks[2].records.size() == 10000 - 8192);

  // Three 300,000-byte records fit 1 MiB with their header, four do not; a record bigger than
  // the cap gets a chunk of its own.
  step_delta d;
  std::vector<std::string> large;
  for (int i = 0; i < 7; ++i)
    large.push_back(std::string(300000, static_cast<char>('a' + i)));
  large.push_back("small-before");
  large.push_back(std::string((size_t{3} << 19) + 3, 'B')); // 1.5 MiB + 3
  large.push_back("small-after");
  for (const auto& x : large)
    d.add_output(1, x);
  REQUIRE(!apply(*s, {&d}));
  CHECK(chunk_keys(*s, "large") == std::vector<uint64_t>{0, 3, 6, 8, 9});
  auto r = s->reader();
  std::vector<std::string> back;
  REQUIRE(r->read(1, 0, SIZE_MAX, [&](uint64_t seq, std::string_view bytes) {
    CHECK(seq == back.size());
    back.emplace_back(bytes);
    return true;
  }));
  CHECK(back == large);
}

TEST_CASE("records of any size round-trip, and records of a multiple of 8 bytes are 8-aligned",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("odd", {"g"}));
  auto s = open_store(dir.path, l);
  std::vector<std::string> recs;
  for (size_t size : {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 4095, 4097, 0, 24})
    recs.push_back(std::string(size, static_cast<char>('0' + recs.size() % 10)));
  // Big enough for LMDB overflow pages, whose data is 8-aligned: aligned records are read in place.
  for (int i = 0; i < 3; ++i)
    recs.push_back(std::string(4000 + 8 * i, 'w'));
  step_delta d;
  for (const auto& x : recs)
    d.add_output(0, x);
  REQUIRE(!apply(*s, {&d}));
  auto r = s->reader();
  for (uint64_t from = 0; from <= recs.size(); ++from) {
    std::vector<std::string> back;
    REQUIRE(r->read(0, from, SIZE_MAX, [&](uint64_t seq, std::string_view bytes) {
      CHECK(seq == from + back.size());
      if (bytes.size() % 8 == 0 && !bytes.empty())
        CHECK(reinterpret_cast<uintptr_t>(bytes.data()) % 8 == 0);
      back.emplace_back(bytes);
      return true;
    }));
    CHECK(back == std::vector<std::string>(recs.begin() + from, recs.end()));
  }
  auto chunks = raw_chunks(*s, "odd");
  REQUIRE(chunks.size() == 1);
  CHECK(chunks[0].records == recs);
}

TEST_CASE("reading from every seq of a multi-chunk edge returns exactly the records from there on",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("e", {"g"}, 5));
  auto s = open_store(dir.path, l);
  uint64_t head = 0;
  for (uint64_t n : {1, 7, 1, 30, 2, 50, 3}) {
    auto d = outputs(0, head, n);
    REQUIRE(!apply(*s, {&d}));
    head += n;
  }
  CHECK(chunk_keys(*s, "e") == std::vector<uint64_t>{0, 1, 8, 9, 39, 41, 91});
  auto check_reads = [&](store_reader& r, uint64_t tail) {
    for (uint64_t from = 0; from <= head + 2; ++from) {
      INFO("from " << from);
      check_contiguous(read_all(r, 0, from), std::min(std::max(from, tail), head), head);
      // `max` stops the scan, across chunk boundaries too.
      std::vector<uint64_t> seen;
      auto n = r.read(0, from, 3, [&](uint64_t seq, std::string_view bytes) {
        CHECK(bytes == rec(seq));
        seen.push_back(seq);
        return true;
      });
      REQUIRE(n);
      uint64_t start = std::max(from, tail);
      CHECK(*n == std::min<uint64_t>(3, head - std::min(start, head)));
      for (size_t i = 0; i < seen.size(); ++i)
        CHECK(seen[i] == start + i);
    }
  };
  auto r = s->reader();
  check_reads(*r, 0);
  // Trimmed to a chunk boundary: reads below the tail start at the tail.
  auto m = cursor_move(0, "g", 20);
  REQUIRE(!apply(*s, {&m}));
  REQUIRE(!r->refresh());
  CHECK(r->tail(0) == 9);
  check_reads(*r, 9);
}
