// The store's commits (store_apply.cpp): appends per partition, group commits that land whole or
// not at all, cursors per group and partition, the backlog, keyed state and dead letters, and the
// chunks a commit writes (decoded from the raw LMDB by runtime/STORE_FORMAT.md).
#include "store_support.hpp"

using namespace troupe;
using namespace troupe::store_test;

TEST_CASE("appended records read back per partition with sequence numbers from 0, and heads "
          "survive a reopen",
          "[runtime][store]") {
  temp_dir dir;
  {
    auto s = open_store(dir.path, sample_layout(), uint64_t{64} << 20, durability::sync);
    for (uint64_t batch = 0; batch < 3; ++batch) {
      auto d = outputs(0, 0, batch * 10, 10);
      for (uint64_t i = 0; i < 4; ++i) // partition 1 grows more slowly
        add_output(d, 0, 1, rec(batch * 4 + i, 1));
      std::vector<edge_id> appended, consumed{7};
      REQUIRE(!apply(*s, {&d}, &appended, &consumed));
      CHECK(appended == std::vector<edge_id>{0});
      CHECK(consumed.empty());
    }
    auto r = s->reader();
    check_contiguous(read_all(*r, 0, 0), 0, 0, 30);
    check_contiguous(read_all(*r, 0, 1), 1, 0, 12);
    auto p0 = part(*r, 0, 0), p1 = part(*r, 0, 1);
    CHECK(p0.head == 30);
    CHECK(p0.tail == 0);
    CHECK(p0.bytes_head == rec_bytes(0, 30, 0));
    CHECK(p0.bytes_tail == 0);
    CHECK(p1.head == 12);
    CHECK(p1.bytes_head == rec_bytes(0, 12, 1));
    CHECK(part(*r, 1, 0).head == 0);
    // `max` and an early stop both end the scan.
    std::vector<uint64_t> seen;
    auto n = r->read(0, 0, 25, 3, [&](uint64_t seq, std::string_view) {
      seen.push_back(seq);
      return true;
    });
    REQUIRE(n);
    CHECK(*n == 3);
    CHECK(seen == std::vector<uint64_t>{25, 26, 27});
    n = r->read(0, 0, 5, 100, [](uint64_t seq, std::string_view) { return seq < 6; });
    REQUIRE(n);
    CHECK(*n == 2);
    CHECK(code_of(r->read(0, 2, 0, 1, [](uint64_t, std::string_view) { return true; }).error()) ==
          errc::config_invalid);
    CHECK(code_of(r->partition(0, 2).error()) == errc::config_invalid);
  }
  auto s = open_store(dir.path, sample_layout());
  auto d = outputs(0, 1, 12, 5);
  REQUIRE(!apply(*s, {&d}));
  auto r = s->reader();
  check_contiguous(read_all(*r, 0, 0), 0, 0, 30);
  check_contiguous(read_all(*r, 0, 1), 1, 0, 17);
  CHECK(must(r->meta("layout_version")) == std::optional<std::string>{"3"});
  CHECK(must(r->meta("partitions/a")) == std::optional<std::string>{"2"});
  CHECK(must(r->meta("partitions/b")) == std::optional<std::string>{"1"});
  CHECK(must(r->meta("nothing")) == std::optional<std::string>{});
  CHECK(s->find_edge("b") == std::optional<edge_id>{1});
  CHECK(!s->find_edge("zz"));
  CHECK(s->find_stage("s3") == std::optional<stage_id>{2});
  CHECK(s->find_group(0, "s3") == std::optional<uint32_t>{1});
  CHECK(!s->find_group(1, "s3"));
  CHECK(s->layout().stages[1].partitions == 2); // resolved from its input
  CHECK(s->layout().stages[0].partitions == 1); // a source has one
}

TEST_CASE("a group commit of deltas from several stages lands whole or not at all",
          "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, sample_layout());

  step_delta d1 = outputs(0, 1, 0, 4, 0); // s1 writes to a, keeps state
  d1.state.push_back({state_scope::partition, 0, state_space::user, "k1", std::string{"v1"}});
  step_delta d2 = outputs(1, 0, 0, 2, 2); // s3 reads a, writes b, dead-letters one record
  d2.cursors.push_back({0, 1, 1, 3, rec_bytes(0, 3, 1)});
  d2.dead.push_back({"dead-0"});
  d2.state.push_back({state_scope::worker, 0, state_space::runtime, "crash", std::string{"m"}});

  auto check_nothing = [&] {
    auto r = s->reader();
    CHECK(part(*r, 0, 1).head == 0);
    CHECK(part(*r, 1, 0).head == 0);
    CHECK(read_all(*r, 0, 1).empty());
    CHECK(read_all(*r, 1, 0).empty());
    CHECK(must(r->state(0, state_scope::partition, 0, state_space::user, "k1")) ==
          std::optional<std::string>{});
    CHECK(must(r->state(2, state_scope::worker, 0, state_space::runtime, "crash")) ==
          std::optional<std::string>{});
    CHECK(must(r->cursor(0, "s3", 1)) == std::optional<cursor_pos>{});
    CHECK(r->dead_letter_count(2) == uint64_t{0});
    CHECK(s->backlog(0).records == 0);
  };

  SECTION("a bad delta after good ones applies none of them") {
    std::vector<step_delta> bad(9);
    bad[0].outputs.push_back({99, 0, 0, 0}); // unknown edge
    bad[1].outputs.push_back({0, 2, 0, 0});  // a has partitions 0 and 1
    add_output(bad[2], 0, 0, "x");
    bad[2].outputs.back().size = 2;               // past the arena
    bad[3].cursors.push_back({0, 0, 0, 1000, 0}); // past the head
    bad[4].cursors.push_back({0, 2, 0, 0, 0});    // a has groups 0 and 1
    bad[5].stage = 1;
    bad[5].state.push_back({state_scope::worker, 2, state_space::user, "k", std::string{"v"}});
    bad[6].stage = 3; // s4 reads b: one partition
    bad[6].state.push_back({state_scope::partition, 1, state_space::user, "k", std::string{"v"}});
    bad[7].stage = 42; // unknown stage
    bad[7].dead.push_back({"x"});
    bad[8].cursors.push_back({0, 1, 1, 4, rec_bytes(0, 4, 1) + 1}); // more bytes than appended
    for (auto& b : bad) {
      std::vector<edge_id> appended{5}, consumed{5};
      auto err = apply(*s, {&d1, &d2, &b}, &appended, &consumed);
      INFO(text_of(err));
      CHECK(code_of(err) == errc::config_invalid);
      CHECK(appended.empty());
      CHECK(consumed.empty());
      check_nothing();
    }
  }
  SECTION("good deltas all land, and in-memory heads did not move on the failures") {
    step_delta bad;
    bad.outputs.push_back({99, 0, 0, 0});
    REQUIRE(apply(*s, {&d1, &d2, &bad}));
    std::vector<edge_id> appended, consumed;
    REQUIRE(!apply(*s, {&d1, &d2}, &appended, &consumed));
    CHECK(appended == std::vector<edge_id>{0, 1});
    CHECK(consumed == std::vector<edge_id>{0});
    auto r = s->reader();
    check_contiguous(read_all(*r, 0, 1), 1, 0, 4); // from seq 0: the failure took no numbers
    check_contiguous(read_all(*r, 1, 0), 0, 0, 2);
    CHECK(must(r->state(0, state_scope::partition, 0, state_space::user, "k1")) ==
          std::optional<std::string>{"v1"});
    CHECK(must(r->state(2, state_scope::worker, 0, state_space::runtime, "crash")) ==
          std::optional<std::string>{"m"});
    CHECK(must(r->cursor(0, "s3", 1)) ==
          std::optional<cursor_pos>{cursor_pos{3, rec_bytes(0, 3, 1)}});
    CHECK(r->dead_letter_count(2) == uint64_t{1});
  }
}

TEST_CASE("cursors are kept per group and partition, survive a reopen, and the backlog sums the "
          "partitions, each from its slowest group",
          "[runtime][store]") {
  temp_dir dir;
  auto expect_backlog = [](store& s, uint64_t records, uint64_t bytes) {
    CHECK(s.backlog(0).records == records);
    CHECK(s.backlog(0).bytes == bytes);
  };
  {
    auto s = open_store(dir.path, sample_layout());
    auto d = outputs(0, 0, 0, 10);
    auto d1 = outputs(0, 1, 0, 6);
    REQUIRE(!apply(*s, {&d, &d1}));
    auto r = s->reader();
    CHECK(must(r->cursor(0, "s2", 0)) == std::optional<cursor_pos>{});
    // No group has committed: nothing is consumed.
    expect_backlog(*s, 16, rec_bytes(0, 10, 0) + rec_bytes(0, 6, 1));

    auto c1 = cursor_move(0, 0, 0, 7); // s2 in partition 0
    std::vector<edge_id> appended, consumed;
    REQUIRE(!apply(*s, {&c1}, &appended, &consumed));
    CHECK(appended.empty());
    CHECK(consumed == std::vector<edge_id>{0});
    REQUIRE(!r->refresh());
    CHECK(must(r->cursor(0, "s2", 0)) ==
          std::optional<cursor_pos>{cursor_pos{7, rec_bytes(0, 7, 0)}});
    CHECK(must(r->cursor(0, "s2", 1)) == std::optional<cursor_pos>{});
    CHECK(must(r->cursor(0, "s3", 0)) == std::optional<cursor_pos>{});
    // s3 still holds everything.
    expect_backlog(*s, 16, rec_bytes(0, 10, 0) + rec_bytes(0, 6, 1));

    auto c2 = cursor_move(0, 1, 0, 4);
    auto c3 = cursor_move(0, 1, 0, 9); // a later move in the same commit wins
    auto c4 = cursor_move(0, 1, 1, 6); // s3 done with partition 1
    auto c5 = cursor_move(0, 0, 1, 2); // s2 is the slowest there
    REQUIRE(!apply(*s, {&c2, &c3, &c4, &c5}, &appended, &consumed));
    CHECK(consumed == std::vector<edge_id>{0});
    REQUIRE(!r->refresh());
    CHECK(must(r->cursor(0, "s3", 0)) ==
          std::optional<cursor_pos>{cursor_pos{9, rec_bytes(0, 9, 0)}});
    // Partition 0: s2 at 7 is the slowest (3 left); partition 1: s2 at 2 (4 left).
    expect_backlog(*s, 3 + 4, rec_bytes(7, 10, 0) + rec_bytes(2, 6, 1));
    CHECK(must(r->cursor(0, "nobody", 0)) == std::optional<cursor_pos>{});
    CHECK(must(r->cursor(1, "s2", 0)) == std::optional<cursor_pos>{}); // cursors are per edge
    CHECK(code_of(r->cursor(0, "s2", 2).error()) == errc::config_invalid);

    auto back = cursor_move(0, 1, 0, 1); // a replay moves a cursor back
    REQUIRE(!apply(*s, {&back}));
    expect_backlog(*s, 9 + 4, rec_bytes(1, 10, 0) + rec_bytes(2, 6, 1));
  }
  auto s = open_store(dir.path, sample_layout());
  auto r = s->reader();
  CHECK(must(r->cursor(0, "s2", 0)) ==
        std::optional<cursor_pos>{cursor_pos{7, rec_bytes(0, 7, 0)}});
  CHECK(must(r->cursor(0, "s2", 1)) ==
        std::optional<cursor_pos>{cursor_pos{2, rec_bytes(0, 2, 1)}});
  CHECK(must(r->cursor(0, "s3", 0)) ==
        std::optional<cursor_pos>{cursor_pos{1, rec_bytes(0, 1, 0)}});
  CHECK(must(r->cursor(0, "s3", 1)) ==
        std::optional<cursor_pos>{cursor_pos{6, rec_bytes(0, 6, 1)}});
  expect_backlog(*s, 9 + 4, rec_bytes(1, 10, 0) + rec_bytes(2, 6, 1)); // loaded, not recounted
}

TEST_CASE("an edge without consumer groups has no backlog", "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("loose", {}, 3));
  auto s = open_store(dir.path, l);
  auto d = outputs(0, 2, 0, 5);
  REQUIRE(!apply(*s, {&d}));
  CHECK(s->backlog(0).records == 0);
  CHECK(s->backlog(0).bytes == 0);
  CHECK(s->backlog(7).records == 0); // an unknown edge has none either
}

TEST_CASE("state is kept per stage, scope, index and space, and scan_state sees one of them",
          "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, sample_layout());
  using sc = state_scope;
  using sp = state_space;
  auto put = [](stage_id st, sc scope, uint32_t i, sp space, std::string k,
                std::optional<std::string> v) {
    step_delta d;
    d.stage = st;
    d.state.push_back({scope, i, space, std::move(k), std::move(v)});
    return d;
  };
  std::vector<step_delta> ds{
      put(1, sc::partition, 0, sp::user, "k", "p0-user"),
      put(1, sc::partition, 1, sp::user, "k", "p1-user"),
      put(1, sc::worker, 0, sp::user, "k", "w0-user"),
      put(1, sc::partition, 0, sp::runtime, "k", "p0-runtime"),
      put(0, sc::partition, 0, sp::user, "k", "s1-user"),
      put(1, sc::partition, 0, sp::user, "b", "p0-b"),
      put(1, sc::partition, 0, sp::user, "a", ""), // an empty value is a value
  };
  std::vector<const step_delta*> ptrs;
  for (auto& d : ds)
    ptrs.push_back(&d);
  REQUIRE(!s->apply(ptrs));
  auto r = s->reader();
  auto get = [&](stage_id st, sc scope, uint32_t i, sp space, std::string_view k) {
    auto v = r->state(st, scope, i, space, k);
    if (!v)
      FAIL(describe(v.error()));
    return *v;
  };
  using opt = std::optional<std::string>;
  CHECK(get(1, sc::partition, 0, sp::user, "k") == opt{"p0-user"});
  CHECK(get(1, sc::partition, 1, sp::user, "k") == opt{"p1-user"});
  CHECK(get(1, sc::worker, 0, sp::user, "k") == opt{"w0-user"});
  CHECK(get(1, sc::partition, 0, sp::runtime, "k") == opt{"p0-runtime"});
  CHECK(get(0, sc::partition, 0, sp::user, "k") == opt{"s1-user"});
  CHECK(get(1, sc::partition, 0, sp::user, "a") == opt{""});
  CHECK(get(2, sc::partition, 0, sp::user, "k") == opt{});
  CHECK(get(1, sc::worker, 1, sp::user, "k") == opt{});
  CHECK(get(1, sc::partition, 0, sp::user, "missing") == opt{});
  CHECK(code_of(r->state(9, sc::partition, 0, sp::user, "k").error()) == errc::config_invalid);

  using kv = std::pair<std::string, std::string>;
  auto scan = [&](stage_id st, sc scope, uint32_t i, sp space) {
    std::vector<kv> out;
    auto err = r->scan_state(st, scope, i, space, [&](std::string_view k, std::string_view v) {
      out.emplace_back(std::string{k}, std::string{v});
    });
    if (err)
      FAIL(describe(err));
    return out;
  };
  CHECK(scan(1, sc::partition, 0, sp::user) ==
        std::vector<kv>{{"a", ""}, {"b", "p0-b"}, {"k", "p0-user"}});
  CHECK(scan(1, sc::partition, 0, sp::runtime) == std::vector<kv>{{"k", "p0-runtime"}});
  CHECK(scan(1, sc::worker, 0, sp::user) == std::vector<kv>{{"k", "w0-user"}});

  auto erase = put(1, sc::partition, 0, sp::user, "k", std::nullopt);
  auto erase_missing = put(1, sc::partition, 0, sp::user, "never-written", std::nullopt);
  REQUIRE(!apply(*s, {&erase, &erase_missing}));
  REQUIRE(!r->refresh());
  CHECK(get(1, sc::partition, 0, sp::user, "k") == opt{});
  CHECK(get(1, sc::partition, 1, sp::user, "k") == opt{"p1-user"});
  CHECK(get(1, sc::worker, 0, sp::user, "k") == opt{"w0-user"});
  CHECK(get(1, sc::partition, 0, sp::runtime, "k") == opt{"p0-runtime"});
  CHECK(scan(1, sc::partition, 1, sp::user) == std::vector<kv>{{"k", "p1-user"}});
  CHECK(code_of(r->scan_state(9, sc::partition, 0, sp::user,
                              [](std::string_view, std::string_view) {})) == errc::config_invalid);

  // On disk: u8 scope, u32 BE index, u8 space, the key; the value sealed with that key.
  raw_txn t{s->env()};
  std::vector<kv> raw;
  for (const auto& [k, v] : t.all("state/s2"))
    raw.emplace_back(k, doc_unseal(k, v));
  using namespace std::string_literals;
  CHECK(raw == std::vector<kv>{{"\0\0\0\0\0\0k"s, "p0-runtime"},
                               {"\0\0\0\0\0\1a"s, ""},
                               {"\0\0\0\0\0\1b"s, "p0-b"},
                               {"\0\0\0\0\1\1k"s, "p1-user"},
                               {"\1\0\0\0\0\1k"s, "w0-user"}});
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
    REQUIRE(all);
    REQUIRE(all->size() == 5);
    for (uint64_t i = 0; i < 5; ++i) {
      CHECK((*all)[i].seq == i);
      CHECK((*all)[i].bytes == "dl-" + std::to_string(i));
    }
    auto some = r->dead_letters(2, 3, 1);
    REQUIRE(some);
    REQUIRE(some->size() == 1);
    CHECK((*some)[0].seq == 3);
    CHECK(r->dead_letter_count(2) == uint64_t{5});
    CHECK(r->dead_letter_count(0) == uint64_t{0});
    // On disk: a native u64 key, the value sealed with those 8 bytes.
    raw_txn t{s->env()};
    auto raw = t.all("dead/s3");
    REQUIRE(raw.size() == 5);
    uint64_t four = 4;
    CHECK(raw[4].first == std::string(reinterpret_cast<char*>(&four), 8));
    CHECK(doc_unseal(raw[4].first, raw[4].second) == "dl-4");
  }
  auto s = open_store(dir.path, sample_layout());
  CHECK(s->reader()->dead_letter_count(2) == uint64_t{5});
  step_delta d;
  d.stage = 2;
  d.dead.push_back({"dl-5"});
  REQUIRE(!apply(*s, {&d}));
  auto all = s->reader()->dead_letters(2, 5);
  REQUIRE(all);
  REQUIRE(all->size() == 1);
  CHECK((*all)[0].seq == 5);
  CHECK((*all)[0].bytes == "dl-5");
}

TEST_CASE("a group commit writes one chunk per partition, whatever the number of deltas",
          "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, sample_layout());
  step_delta d1 = outputs(0, 0, 0, 3, 0);
  add_output(d1, 1, 0, rec(0));
  add_output(d1, 0, 1, rec(0, 1));
  step_delta d2 = outputs(1, 0, 1, 2, 1);
  step_delta d3 = outputs(0, 0, 3, 4, 1);
  add_output(d3, 1, 0, rec(3));
  add_output(d3, 0, 1, rec(1, 1));
  step_delta quiet = cursor_move(0, 0, 0, 2);
  std::vector<edge_id> appended;
  REQUIRE(!apply(*s, {&d1, &d2, &quiet, &d3}, &appended));
  CHECK(appended == std::vector<edge_id>{0, 1});
  auto a0 = raw_chunks(*s, "a", 0);
  REQUIRE(a0.size() == 1);
  CHECK(a0[0].first == 0);
  CHECK(a0[0].records ==
        std::vector<std::string>{rec(0), rec(1), rec(2), rec(3), rec(4), rec(5), rec(6)});
  auto a1 = raw_chunks(*s, "a", 1);
  REQUIRE(a1.size() == 1);
  CHECK(a1[0].records == std::vector<std::string>{rec(0, 1), rec(1, 1)});
  auto b = raw_chunks(*s, "b", 0);
  REQUIRE(b.size() == 1);
  CHECK(b[0].records == std::vector<std::string>{rec(0), rec(1), rec(2), rec(3)});

  // The next commit starts the next chunk of a partition where the previous one ended.
  auto d4 = outputs(0, 0, 7, 2);
  REQUIRE(!apply(*s, {&d4}));
  CHECK(chunk_keys(*s, "a", 0) == std::vector<uint64_t>{0, 7});
  CHECK(chunk_keys(*s, "a", 1) == std::vector<uint64_t>{0});
  auto r = s->reader();
  check_contiguous(read_all(*r, 0, 0), 0, 0, 9);
  check_contiguous(read_all(*r, 1, 0), 0, 0, 4);

  // Heads on disk: edge + NUL + u32 BE partition, sealed {head, tail, bytes_head, bytes_tail}.
  raw_txn t{s->env()};
  auto heads = t.all("heads");
  REQUIRE(heads.size() == 3);
  CHECK(heads[0].first == std::string("a\0", 2) + be32s(0));
  auto h = doc_unseal(heads[0].first, heads[0].second);
  REQUIRE(h.size() == 32);
  CHECK(le64(h.data()) == 9);
  CHECK(le64(h.data() + 8) == 0);
  CHECK(le64(h.data() + 16) == rec_bytes(0, 9));
  CHECK(le64(h.data() + 24) == 0);
  CHECK(heads[1].first == std::string("a\0", 2) + be32s(1));
  CHECK(heads[2].first == std::string("b\0", 2) + be32s(0));
  // Cursors: edge + NUL + group + NUL + u32 BE partition, sealed {next, bytes}.
  auto cursors = t.all("cursors");
  REQUIRE(cursors.size() == 1);
  CHECK(cursors[0].first == std::string("a\0s2\0", 5) + be32s(0));
  auto c = doc_unseal(cursors[0].first, cursors[0].second);
  REQUIRE(c.size() == 16);
  CHECK(le64(c.data()) == 2);
  CHECK(le64(c.data() + 8) == rec_bytes(0, 2));
}

TEST_CASE("a commit's records are split into chunks at 4096 records or 1 MiB", "[runtime][store]") {
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("many", {"g"}, 2));
  l.edges.push_back(edge("large", {"g"}));
  auto s = open_store(dir.path, l, uint64_t{2} << 30); // from 2 GiB up, chunks of 1 MiB

  auto many = outputs(0, 1, 0, 10000);
  REQUIRE(!apply(*s, {&many}));
  auto chunks = raw_chunks(*s, "many", 1);
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[0].first == 0);
  CHECK(chunks[0].records.size() == 4096);
  CHECK(chunks[1].first == 4096);
  CHECK(chunks[1].records.size() == 4096);
  CHECK(chunks[2].first == 8192);
  CHECK(chunks[2].records.size() == 10000 - 8192);
  CHECK(raw_chunks(*s, "many", 0).empty());

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
    add_output(d, 1, 0, x);
  REQUIRE(!apply(*s, {&d}));
  CHECK(chunk_keys(*s, "large", 0) == std::vector<uint64_t>{0, 3, 6, 8, 9});
  auto r = s->reader();
  std::vector<std::string> back;
  REQUIRE(r->read(1, 0, 0, SIZE_MAX, [&](uint64_t seq, std::string_view bytes) {
    CHECK(seq == back.size());
    back.emplace_back(bytes);
    return true;
  }));
  CHECK(back == large);
}

TEST_CASE("in a map below 256 MiB a chunk takes one overflow page at most, or one record",
          "[runtime][store]") {
  // A chunk on several contiguous pages needs a run of free pages, which a small map at its
  // limit seldom has: it would stall with free pages no chunk can use.
  temp_dir dir;
  store_layout l;
  l.edges.push_back(edge("small", {"g"}));
  auto s = open_store(dir.path, l, uint64_t{16} << 20);
  auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  step_delta d;
  std::vector<std::string> recs;
  for (int i = 0; i < 200; ++i)
    recs.push_back(std::string(100 + i % 7, static_cast<char>('a' + i % 26)));
  recs.push_back(std::string(3 * page, 'L')); // alone: bigger than a page
  for (const auto& x : recs)
    add_output(d, 0, 0, x);
  REQUIRE(!apply(*s, {&d}));
  auto chunks = raw_chunks(*s, "small", 0);
  REQUIRE(chunks.size() > 5);
  std::vector<std::string> all;
  for (const auto& c : chunks) {
    size_t bytes = 0;
    for (const auto& r : c.records)
      bytes += (r.size() + 7) / 8 * 8;
    if (c.records.size() > 1)
      CHECK(bytes < page);
    all.insert(all.end(), c.records.begin(), c.records.end());
  }
  CHECK(chunks.back().records.size() == 1);
  CHECK(all == recs);
}
