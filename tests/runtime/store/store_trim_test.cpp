// Trimming by retention (store_apply.cpp, "time index and trimming"): per partition, whole chunks,
// never an unconsumed record, bounded per transaction, by count and by age through the time index.
#include "store_support.hpp"

#include <algorithm>

using namespace troupe;
using namespace troupe::store_test;

namespace {

// Appends records [first, first + n) of partition p in `batches` equal commits.
void append_in_commits(store& s, edge_id e, partition_id p, uint64_t first, uint64_t n,
                       uint64_t batches) {
  for (uint64_t b = 0; b < batches; ++b) {
    auto d = outputs(e, p, first + b * (n / batches), n / batches);
    REQUIRE(!s.apply({&d}));
  }
}

} // namespace

TEST_CASE("trimming by count removes whole chunks, keeps at least the newest consumed records "
          "and never unconsumed ones",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("one", {"g"}, 1, 10));
  l.edges.push_back(edge("two", {"g1", "g2"}, 1, 5));
  l.edges.push_back(edge("forever", {"g"}, 1, 0)); // both limits off: nothing is ever trimmed
  auto s = open_store(dir.path, l);
  // Commits of 10 records: chunks [0, 10), [10, 20), ...
  append_in_commits(*s, 0, 0, 0, 100, 10);
  append_in_commits(*s, 1, 0, 0, 50, 5);
  append_in_commits(*s, 2, 0, 0, 50, 5);
  auto r = s->reader();
  CHECK(part(*r, 0, 0).tail == 0); // nothing consumed yet

  auto m1 = cursor_move(0, 0, 0, 50);
  auto m2 = cursor_move(2, 0, 0, 50);
  REQUIRE(!apply(*s, {&m1, &m2}));
  REQUIRE(!r->refresh());
  CHECK(part(*r, 0, 0).tail == 40); // 0..39 may go, and they fill chunks exactly
  CHECK(part(*r, 0, 0).bytes_tail == rec_bytes(0, 40));
  check_contiguous(read_all(*r, 0, 0), 0, 40, 100);
  check_contiguous(read_all(*r, 0, 0, 10), 0, 40, 100); // nothing below the tail comes back
  CHECK(part(*r, 2, 0).tail == 0);
  check_contiguous(read_all(*r, 2, 0), 0, 0, 50);

  auto m3 = cursor_move(0, 0, 0, 95);
  REQUIRE(!apply(*s, {&m3}));
  REQUIRE(!r->refresh());
  // 85..94 must stay, so their chunk [80, 90) stays whole: more than 10 consumed records are kept.
  CHECK(part(*r, 0, 0).tail == 80);
  check_contiguous(read_all(*r, 0, 0), 0, 80, 100);
  CHECK(chunk_keys(*s, "one", 0) == std::vector<uint64_t>{80, 90});
  auto m4 = cursor_move(0, 0, 0, 100);
  REQUIRE(!apply(*s, {&m4}));
  REQUIRE(!r->refresh());
  CHECK(part(*r, 0, 0).tail == 90);
  CHECK(part(*r, 0, 0).head == 100);
  CHECK(part(*r, 0, 0).bytes_tail == rec_bytes(0, 90));
  CHECK(part(*r, 0, 0).bytes_head == rec_bytes(0, 100));
  check_contiguous(read_all(*r, 0, 0), 0, 90, 100);

  // Two groups: the slowest decides.
  auto g1 = cursor_move(1, 0, 0, 50);
  auto g2 = cursor_move(1, 1, 0, 20);
  REQUIRE(!apply(*s, {&g1, &g2}));
  REQUIRE(!r->refresh());
  CHECK(part(*r, 1, 0).tail == 10); // 0..14 may go; [10, 20) holds 15..19
  check_contiguous(read_all(*r, 1, 0), 0, 10, 50);
  CHECK(s->backlog(1).records == 30);
  CHECK(s->backlog(1).bytes == rec_bytes(20, 50));
  auto g2b = cursor_move(1, 1, 0, 50);
  REQUIRE(!apply(*s, {&g2b}));
  REQUIRE(!r->refresh());
  CHECK(part(*r, 1, 0).tail == 40);
  CHECK(s->backlog(1).records == 0);
  CHECK(s->backlog(1).bytes == 0);

  // A chunk with unconsumed records is never trimmed, however many consumed ones it holds.
  auto big = outputs(1, 0, 50, 100);
  REQUIRE(!apply(*s, {&big}));
  auto g1c = cursor_move(1, 0, 0, 149);
  auto g2c = cursor_move(1, 1, 0, 149);
  REQUIRE(!apply(*s, {&g1c, &g2c}));
  REQUIRE(!r->refresh());
  CHECK(part(*r, 1, 0).tail == 50);
  check_contiguous(read_all(*r, 1, 0), 0, 50, 150);

  // Tails survive a reopen, and a trim with nothing to do removes nothing.
  r.reset();
  s.reset();
  s = open_store(dir.path, l);
  r = s->reader();
  CHECK(part(*r, 0, 0).tail == 90);
  CHECK(part(*r, 1, 0).tail == 50);
  auto none = s->trim_all();
  REQUIRE(none);
  CHECK(*none == 0);
}

TEST_CASE("partitions are trimmed each by its own cursors: a slow partition does not hold back "
          "another",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("e", {"fast", "slow"}, 3, 10));
  auto s = open_store(dir.path, l);
  for (partition_id p = 0; p < 3; ++p)
    append_in_commits(*s, 0, p, 0, 100, 10);
  // Partition 0: both groups are done. Partition 1: "slow" has consumed nothing. Partition 2:
  // nobody has.
  auto a = cursor_move(0, 0, 0, 100), b = cursor_move(0, 1, 0, 100);
  auto c = cursor_move(0, 0, 1, 100);
  REQUIRE(!apply(*s, {&a, &b, &c}));
  auto r = s->reader();
  CHECK(part(*r, 0, 0).tail == 90);
  CHECK(part(*r, 0, 1).tail == 0);
  CHECK(part(*r, 0, 2).tail == 0);
  check_contiguous(read_all(*r, 0, 0), 0, 90, 100);
  check_contiguous(read_all(*r, 0, 1), 1, 0, 100);
  CHECK(chunk_keys(*s, "e", 0) == std::vector<uint64_t>{90});
  CHECK(chunk_keys(*s, "e", 1).size() == 10);
  CHECK(s->backlog(0).records == 200);
  CHECK(s->backlog(0).bytes == rec_bytes(0, 100, 1) + rec_bytes(0, 100, 2));

  // The slow group catches up in partition 1 only: partition 2 still keeps everything.
  auto d = cursor_move(0, 1, 1, 45);
  REQUIRE(!apply(*s, {&d}));
  REQUIRE(!r->refresh());
  CHECK(part(*r, 0, 1).tail == 30); // 0..34 may go; [30, 40) holds 35..39
  CHECK(part(*r, 0, 1).bytes_tail == rec_bytes(0, 30, 1));
  CHECK(part(*r, 0, 2).tail == 0);
  CHECK(s->backlog(0).records == 55 + 100);
}

TEST_CASE("after any trim, the tail is a chunk boundary, unconsumed records and the newest "
          "consumed ones stay, and no further whole chunk could go",
          "[runtime][store]") {
  temp_dir dir;
  const uint64_t keep = 37;
  store_layout l;
  l.edges.push_back(edge("e", {"g"}, 2, keep));
  auto s = open_store(dir.path, l);
  auto r = s->reader();
  std::vector<uint64_t> boundaries{0}; // where chunks of partition 1 start, as appended
  uint64_t head = 0, consumed = 0;
  uint64_t rnd = 12345;
  auto next_rand = [&](uint64_t n) {
    rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
    return (rnd >> 33) % n;
  };
  for (int round = 0; round < 200; ++round) {
    auto d = outputs(0, 1, head, 1 + next_rand(60));
    head += d.outputs.size();
    boundaries.push_back(head);
    consumed = std::min(head, consumed + next_rand(70));
    d.cursors.push_back({0, 0, 1, consumed, rec_bytes(0, consumed, 1)});
    REQUIRE(!apply(*s, {&d}));
    REQUIRE(!r->refresh());
    auto info = part(*r, 0, 1);
    uint64_t tail = info.tail;
    INFO("round " << round << ": head " << head << ", consumed " << consumed << ", tail " << tail);
    CHECK(std::find(boundaries.begin(), boundaries.end(), tail) != boundaries.end());
    CHECK(tail <= consumed);                            // unconsumed records are never trimmed
    CHECK(consumed - tail >= std::min(keep, consumed)); // at least `keep` consumed ones stay
    // The first remaining chunk holds a record that must stay.
    if (tail < head) {
      auto end = *std::upper_bound(boundaries.begin(), boundaries.end(), tail);
      CHECK(end > consumed - std::min(keep, consumed));
    }
    CHECK(info.bytes_tail == rec_bytes(0, tail, 1));
    CHECK(s->backlog(0).records == head - consumed);
    CHECK(s->backlog(0).bytes == rec_bytes(consumed, head, 1));
    check_contiguous(read_all(*r, 0, 1), 1, tail, head);
  }
  CHECK(part(*r, 0, 1).tail > head / 2); // trimming did keep up
}

TEST_CASE("one transaction trims a bounded number of chunks and trim_all does the rest",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("big", {"g"}, 1, 1));
  auto s = open_store(dir.path, l);
  const uint64_t n = 1100; // one-record chunks, more than the 1024 a transaction deletes
  for (uint64_t i = 0; i < n; ++i) {
    auto d = outputs(0, 0, i, 1);
    REQUIRE(!apply(*s, {&d}));
  }
  auto m = cursor_move(0, 0, 0, n);
  REQUIRE(!apply(*s, {&m}));
  auto r = s->reader();
  CHECK(part(*r, 0, 0).tail == 1024);
  auto removed = s->trim_all();
  REQUIRE(removed);
  CHECK(*removed == n - 1 - 1024); // records, here one per chunk
  REQUIRE(!r->refresh());
  CHECK(part(*r, 0, 0).tail == n - 1);
  check_contiguous(read_all(*r, 0, 0), 0, n - 1, n);
}

TEST_CASE("trimming by age removes chunks of consumed records once older than the limit, never "
          "earlier, per partition",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("aged", {"g"}, 2, 0, 10000));
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
  auto tail = [&](partition_id p) { return part(*s->reader(), 0, p).tail; };
  using entries = std::vector<std::pair<uint64_t, std::vector<uint64_t>>>;

  auto a = outputs(0, 0, 0, 10);
  auto a1 = outputs(0, 1, 0, 4);
  auto b = outputs(0, 0, 10, 10);
  REQUIRE(!at(t0, {&a, &a1}));  // indexed: p0 < 10 and p1 < 4 appended by t0
  REQUIRE(!at(t0 + 500, {&b})); // within the second: not indexed yet
  CHECK(time_index(*s, "aged") == entries{{t0, {10, 4}}});
  CHECK(trim_at(t0 + 1500) == 0); // indexes the idle edge: p0 < 20 appended by t0+1500
  CHECK(time_index(*s, "aged") == entries{{t0, {10, 4}}, {t0 + 1500, {20, 4}}});

  // Consumed up to 15 only in p0, all of p1: the rest must stay whatever their age.
  auto m = cursor_move(0, 0, 0, 15);
  auto m1 = cursor_move(0, 0, 1, 4);
  REQUIRE(!at(t0 + 1600, {&m, &m1}));
  CHECK(tail(0) == 0);
  CHECK(trim_at(t0 + 10000) == 0); // exactly the age of the first records: not older yet
  CHECK(tail(0) == 0);
  CHECK(trim_at(t0 + 10001) == 14); // p0's chunk [0, 10) and p1's [0, 4)
  CHECK(tail(0) == 10);
  CHECK(tail(1) == 4);
  // The entry for t0 is spent: every partition's tail has reached its heads.
  CHECK(time_index(*s, "aged") == entries{{t0 + 1500, {20, 4}}});
  CHECK(trim_at(t0 + 11499) == 0); // records 10..19 may be as young as t0+1500
  CHECK(trim_at(t0 + 11501) ==
        0); // 10..14 are old enough, but 15..19 of their chunk are unconsumed
  CHECK(tail(0) == 10);

  auto m2 = cursor_move(0, 0, 0, 20);
  REQUIRE(!at(t0 + 11600, {&m2})); // apply trims the edges it touched
  CHECK(tail(0) == 20);
  CHECK(time_index(*s, "aged").empty());
  check_contiguous(read_all(*s->reader(), 0, 0), 0, 20, 20);

  // A clock that steps back writes no entry older than the newest: trimming waits instead.
  auto c = outputs(0, 1, 4, 3);
  REQUIRE(!at(t0 + 20000, {&c}));
  auto late = outputs(0, 1, 7, 3);
  REQUIRE(!at(t0 + 15000, {&late}));
  CHECK(time_index(*s, "aged") == entries{{t0 + 20000, {20, 7}}});
}

// Regression: age_limits() ignored a failed seek in `times` and stepped back from an unpositioned
// cursor, which LMDB takes as "the last entry": the newest time-index entry, so records younger
// than keep.age_ms were trimmed. (load() read the newest entry the same way.)
TEST_CASE("a failing time-index seek while trimming by age is an error and trims nothing young",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("aged", {"g"}, 1, 0, 10000));
  auto f = std::make_shared<faulty_lmdb>();
  auto s = open_store(options(dir.path, uint64_t{64} << 20, durability::process, f), l);
  const uint64_t t0 = 1'700'000'000'000;
  auto a = outputs(0, 0, 0, 10), b = outputs(0, 0, 10, 10);
  auto m = cursor_move(0, 0, 0, 20);
  REQUIRE(!store_test_access::apply_at(*s, {&a}, t0));
  REQUIRE(!store_test_access::apply_at(*s, {&b, &m}, t0 + 5000));
  REQUIRE(time_index(*s, "aged").size() == 2);
  // At t0 + 10001 only the records appended by t0 (seq < 10) are old enough.
  f->fail(faulty_lmdb::call::cursor_get, EIO); // the first seek of the trim
  auto n = store_test_access::trim_all_at(*s, t0 + 10001);
  CHECK(f->failures(faulty_lmdb::call::cursor_get) == 1);
  CHECK(!n);
  CHECK(part(*s->reader(), 0, 0).tail == 0);
  f->clear();
  n = store_test_access::trim_all_at(*s, t0 + 10001);
  REQUIRE(n);
  CHECK(*n == 10);
  CHECK(part(*s->reader(), 0, 0).tail == 10);

  // Opening reads the newest entry the same way: a failed seek fails the open.
  s.reset();
  f->fail(faulty_lmdb::call::cursor_get, EIO); // no stages: the first is the seek
  auto reopened = store::open(options(dir.path, uint64_t{64} << 20, durability::process, f), l);
  CHECK(f->failures(faulty_lmdb::call::cursor_get) == 2);
  CHECK(!reopened);
}
