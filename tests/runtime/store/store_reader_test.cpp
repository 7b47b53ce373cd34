// Reading the store (store_reader.cpp): snapshots, reads from any sequence number of a partition,
// below its tail and past its head, and records of any size.
#include "store_support.hpp"

#include <algorithm>

using namespace troupe;
using namespace troupe::store_test;

TEST_CASE("a reader sees one consistent snapshot until it refreshes", "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, sample_layout());
  auto r = s->reader(); // the snapshot starts at first use, not here
  auto d1 = outputs(0, 0, 0, 5);
  REQUIRE(!apply(*s, {&d1}));
  CHECK(part(*r, 0, 0).head == 5);

  auto d2 = outputs(0, 0, 5, 5);
  add_output(d2, 0, 1, rec(0, 1));
  d2.state.push_back({state_scope::partition, 0, state_space::user, "k", std::string{"v"}});
  REQUIRE(!apply(*s, {&d2}));
  CHECK(part(*r, 0, 0).head == 5);
  CHECK(part(*r, 0, 1).head == 0);
  check_contiguous(read_all(*r, 0, 0), 0, 0, 5);
  CHECK(read_all(*r, 0, 1).empty());
  CHECK(must(r->state(0, state_scope::partition, 0, state_space::user, "k")) ==
        std::optional<std::string>{});

  REQUIRE(!r->refresh());
  CHECK(part(*r, 0, 0).head == 10);
  CHECK(part(*r, 0, 1).head == 1);
  check_contiguous(read_all(*r, 0, 0), 0, 0, 10);
  CHECK(must(r->state(0, state_scope::partition, 0, state_space::user, "k")) ==
        std::optional<std::string>{"v"});

  r->release();
  auto d3 = outputs(0, 0, 10, 1);
  REQUIRE(!apply(*s, {&d3}));
  CHECK(part(*r, 0, 0).head == 11); // a released reader renews at its next use
}

TEST_CASE("records of any size round-trip, and records of a multiple of 8 bytes are 8-aligned",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("odd", {"g"}, 2));
  auto s = open_store(dir.path, l, uint64_t{1} << 30); // a map whose chunks span pages
  std::vector<std::string> recs;
  for (size_t size : {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 4095, 4097, 0, 24})
    recs.push_back(std::string(size, static_cast<char>('0' + recs.size() % 10)));
  // Big enough for LMDB overflow pages, whose data is 8-aligned: aligned records are read in place.
  for (int i = 0; i < 3; ++i)
    recs.push_back(std::string(4000 + 8 * i, 'w'));
  step_delta d;
  for (const auto& x : recs)
    add_output(d, 0, 1, x);
  REQUIRE(!apply(*s, {&d}));
  auto r = s->reader();
  for (uint64_t from = 0; from <= recs.size(); ++from) {
    std::vector<std::string> back;
    REQUIRE(r->read(0, 1, from, SIZE_MAX, [&](uint64_t seq, std::string_view bytes) {
      CHECK(seq == from + back.size());
      if (bytes.size() % 8 == 0 && !bytes.empty())
        CHECK(reinterpret_cast<uintptr_t>(bytes.data()) % 8 == 0);
      back.emplace_back(bytes);
      return true;
    }));
    CHECK(back == std::vector<std::string>(recs.begin() + from, recs.end()));
  }
  auto chunks = raw_chunks(*s, "odd", 1);
  REQUIRE(chunks.size() == 1);
  CHECK(chunks[0].records == recs);
  CHECK(read_all(*r, 0, 0).empty()); // the other partition holds nothing
}

TEST_CASE("reading from every seq of a multi-chunk partition returns exactly the records from "
          "there on, whatever its neighbours hold",
          "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("e", {"g"}, 3, 5));
  auto s = open_store(dir.path, l);
  // Partition 1 is read; partitions 0 and 2 around it hold chunks with keys that would match a
  // careless seek (the same seqs, and more of them).
  uint64_t head = 0;
  for (uint64_t n : {1, 7, 1, 30, 2, 50, 3}) {
    auto d = outputs(0, 1, head, n);
    auto before = outputs(0, 0, head, n + 1);
    auto after = outputs(0, 2, 2 * head, 2 * n);
    REQUIRE(!apply(*s, {&before, &d, &after}));
    head += n;
  }
  CHECK(chunk_keys(*s, "e", 1) == std::vector<uint64_t>{0, 1, 8, 9, 39, 41, 91});
  auto check_reads = [&](store_reader& r, uint64_t tail) {
    for (uint64_t from = 0; from <= head + 2; ++from) {
      INFO("from " << from);
      check_contiguous(read_all(r, 0, 1, from), 1, std::min(std::max(from, tail), head), head);
      // `max` stops the scan, across chunk boundaries too.
      std::vector<uint64_t> seen;
      auto n = r.read(0, 1, from, 3, [&](uint64_t seq, std::string_view bytes) {
        CHECK(bytes == rec(seq, 1));
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
  auto m = cursor_move(0, 0, 1, 20);
  REQUIRE(!apply(*s, {&m}));
  REQUIRE(!r->refresh());
  CHECK(part(*r, 0, 1).tail == 9);
  check_reads(*r, 9);
  // The last partition of the last edge: a seek past everything finds nothing after it.
  check_contiguous(read_all(*r, 0, 2, 2 * head), 2, 2 * head, 2 * head);
  check_contiguous(read_all(*r, 0, 2, 2 * head - 1), 2, 2 * head - 1, 2 * head);
  // Reading nothing is not an error.
  auto none = r->read(0, 1, 0, 0, [](uint64_t, std::string_view) { return true; });
  REQUIRE(none);
  CHECK(*none == 0);
}
