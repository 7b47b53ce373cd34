// The fault seam (lmdb_api.hpp): faulty_lmdb fails chosen mdb_* calls, and the store must report
// every failure as an error (never as absence, never as success), leave memory and disk as they
// were when a write transaction fails, and refuse all writes after a failed flush to disk.
//
// The sweeps fail the k-th call of one kind, for k = 0, 1, ... until the operation no longer
// reaches a k-th call: so every call site of that kind on the operation's path is tried.
#include "store_support.hpp"

#include <cerrno>

using namespace troupe;
using namespace troupe::store_test;
using call = faulty_lmdb::call;

namespace {

const std::vector<std::pair<call, const char*>> calls{{call::env_open, "env_open"},
                                                      {call::txn_begin, "txn_begin"},
                                                      {call::txn_commit, "txn_commit"},
                                                      {call::txn_renew, "txn_renew"},
                                                      {call::dbi_open, "dbi_open"},
                                                      {call::get, "get"},
                                                      {call::put, "put"},
                                                      {call::del, "del"},
                                                      {call::cursor_open, "cursor_open"},
                                                      {call::cursor_get, "cursor_get"},
                                                      {call::cursor_put, "cursor_put"},
                                                      {call::cursor_del, "cursor_del"},
                                                      {call::stat, "stat"}};

// Runs `op` with the k-th call of kind `c` failing with EIO, for every k the op reaches; each run
// that met the failure must return an error, after which `unchanged` checks what must hold.
// Returns the number of calls of that kind the op makes when nothing fails.
template <class Op, class Check>
int sweep(faulty_lmdb& f, call c, const char* name, Op op, Check unchanged) {
  for (int k = 0;; ++k) {
    int before = f.failures(c);
    f.fail(c, EIO, 1, k);
    caf::error err = op();
    bool hit = f.failures(c) > before;
    f.clear();
    if (!hit) {
      INFO("the op ran with no " << name << " failing: " << describe(err));
      CHECK(!err);
      return k;
    }
    INFO("call " << k << " of " << name << " failed");
    CHECK(err);
    CHECK(code_of(err) == errc::store_io);
    unchanged();
  }
}

template <class T> caf::error error_of(const caf::expected<T>& x) {
  return x ? caf::error{} : x.error();
}

// An edge "e" of 2 partitions read by stage "g", retained by count and age; a source "src".
store_layout fault_layout() {
  store_layout l;
  l.edges.push_back(edge("e", {"g"}, 2, 5, 10000));
  l.stages.push_back(make_stage("src"));
  l.stages.push_back(make_stage("g", 2, {0}));
  return l;
}

constexpr uint64_t t0 = 1'700'000'000'000;

// What the store holds before the swept step: two commits (two time-index entries), state,
// a cursor and dead letters.
void prepare(store& s) {
  auto a = outputs(0, 0, 0, 10), a1 = outputs(0, 1, 0, 10);
  a.state.push_back({state_scope::partition, 0, state_space::user, "gone", std::string{"x"}});
  auto b = outputs(0, 0, 10, 10), b1 = outputs(0, 1, 10, 10);
  auto c = cursor_move(0, 0, 1, 3);
  c.stage = 1;
  c.dead.push_back({"dl-0"});
  REQUIRE(!store_test_access::apply_at(s, {&a, &a1}, t0));
  REQUIRE(!store_test_access::apply_at(s, {&b, &b1, &c}, t0 + 1500));
}

// The swept step: appends, state written and erased, cursors moved (trimming by count and by
// age, dropping a spent time-index entry), a dead letter, a new time-index entry.
std::vector<step_delta> swept_step() {
  std::vector<step_delta> ds(2);
  ds[0] = outputs(0, 0, 20, 3);
  add_output(ds[0], 0, 1, rec(20, 1));
  ds[1].stage = 1;
  ds[1].cursors.push_back({0, 0, 0, 20, rec_bytes(0, 20, 0)});
  ds[1].cursors.push_back({0, 0, 1, 15, rec_bytes(0, 15, 1)});
  ds[1].state.push_back({state_scope::partition, 1, state_space::user, "k", std::string{"v"}});
  ds[1].state.push_back({state_scope::worker, 1, state_space::runtime, "crash", std::nullopt});
  ds[1].dead.push_back({"dl-1"});
  ds[0].state.push_back({state_scope::partition, 0, state_space::user, "gone", std::nullopt});
  return ds;
}

std::vector<const step_delta*> ptrs(const std::vector<step_delta>& ds) {
  std::vector<const step_delta*> out;
  for (const auto& d : ds)
    out.push_back(&d);
  return out;
}

} // namespace

TEST_CASE("a failing LMDB call in the reader is an error, never absence", "[runtime][store]") {
  temp_dir dir;
  auto f = std::make_shared<faulty_lmdb>();
  auto s =
      open_store(options(dir.path, uint64_t{64} << 20, durability::process, f), sample_layout());
  auto d = outputs(0, 0, 0, 3);
  d.stage = 2;
  d.dead.push_back({"dl"});
  d.state.push_back({state_scope::partition, 0, state_space::user, "k", std::string{"v"}});
  REQUIRE(!apply(*s, {&d}));
  auto r = s->reader();
  auto state = [&](std::string_view key) {
    return error_of(r->state(2, state_scope::partition, 0, state_space::user, key));
  };
  auto each = [&](call c, int rc, errc code, std::function<caf::error()> op) {
    f->fail(c, rc);
    auto err = op();
    f->clear();
    CHECK(code_of(err) == code);
  };
  for (auto [rc, code] : {std::pair{EIO, errc::store_io},
                          {MDB_CORRUPTED, errc::store_corrupt},
                          {MDB_PAGE_NOTFOUND, errc::store_corrupt}}) {
    INFO("rc " << rc);
    each(call::get, rc, code, [&] { return state("k"); });
    each(call::get, rc, code, [&] { return state("absent"); });
    each(call::get, rc, code, [&] { return error_of(r->cursor(0, "s2", 0)); });
    each(call::get, rc, code, [&] { return error_of(r->partition(0, 0)); });
    each(call::get, rc, code, [&] { return error_of(r->partition(0, 1)); }); // no head yet
    each(call::get, rc, code, [&] { return error_of(r->meta("layout_version")); });
    each(call::get, rc, code, [&] { return error_of(r->meta("absent")); });
    auto read = [&] {
      return error_of(r->read(0, 0, 0, 10, [](uint64_t, std::string_view) { return true; }));
    };
    each(call::cursor_get, rc, code, read);
    each(call::cursor_open, rc, code, read);
    each(call::cursor_get, rc, code, [&] { return error_of(r->dead_letters(2)); });
    each(call::cursor_get, rc, code, [&] {
      return r->scan_state(2, state_scope::partition, 0, state_space::user,
                           [](std::string_view, std::string_view) {});
    });
    each(call::stat, rc, code, [&] { return error_of(r->dead_letter_count(2)); });
    r->release();
    each(call::txn_renew, rc, code, [&] { return state("k"); });
    auto fresh = s->reader();
    each(call::txn_begin, rc, code, [&] { return error_of(fresh->meta("layout_version")); });
  }
  // None of it stuck: the same reader reads what is there.
  CHECK(must(r->state(2, state_scope::partition, 0, state_space::user, "k")) ==
        std::optional<std::string>{"v"});
  check_contiguous(read_all(*r, 0, 0), 0, 0, 3);
}

TEST_CASE("every reader call fails when any one of its LMDB calls fails", "[runtime][store]") {
  temp_dir dir;
  auto f = std::make_shared<faulty_lmdb>();
  auto s =
      open_store(options(dir.path, uint64_t{64} << 20, durability::process, f), fault_layout());
  prepare(*s);
  auto r = s->reader();
  auto nothing = [] {};
  std::vector<std::pair<const char*, std::function<caf::error()>>> ops{
      {"read",
       [&] {
         uint64_t n = 0;
         auto x = r->read(0, 1, 2, SIZE_MAX, [&](uint64_t, std::string_view) { return ++n > 0; });
         return x && *x != 18 ? make_error(errc::stage_failed, "short read") : error_of(x);
       }},
      {"dead_letters", [&] { return error_of(r->dead_letters(1)); }},
      {"dead_letter_count", [&] { return error_of(r->dead_letter_count(1)); }},
      {"scan_state",
       [&] {
         return r->scan_state(1, state_scope::partition, 0, state_space::user,
                              [](std::string_view, std::string_view) {});
       }},
      {"state",
       [&] { return error_of(r->state(1, state_scope::worker, 0, state_space::user, "x")); }},
      {"cursor", [&] { return error_of(r->cursor(0, "g", 1)); }},
      {"partition", [&] { return error_of(r->partition(0, 1)); }},
      {"meta", [&] { return error_of(r->meta("partitions/e")); }},
  };
  for (auto& [op_name, op] : ops) {
    auto released = [&, op = op] {
      r->release();
      return op();
    };
    auto renewed = [&, op = op] {
      r = s->reader();
      return op();
    };
    for (auto [c, name] : calls) {
      INFO(op_name << " on a released reader");
      int reached = sweep(*f, c, name, released, nothing);
      if (c == call::txn_renew)
        CHECK(reached == 1);
      INFO(op_name << " on a new reader");
      reached = sweep(*f, c, name, renewed, nothing);
      if (c == call::txn_begin)
        CHECK(reached == 1);
      if (std::string{op_name} == "read" && c == call::cursor_get)
        CHECK(reached >= 3); // a seek and steps over chunks
    }
  }
}

TEST_CASE("a failing LMDB call in apply leaves memory and disk as they were, and a later apply "
          "succeeds",
          "[runtime][store]") {
  temp_dir ref_dir;
  auto ref = open_store(ref_dir.path, fault_layout());
  prepare(*ref);
  auto step = swept_step();
  REQUIRE(!store_test_access::apply_at(*ref, ptrs(step), t0 + 20000));
  auto expected = dump(*ref);
  REQUIRE(part(*ref->reader(), 0, 0).tail == 20); // the step does trim
  REQUIRE(part(*ref->reader(), 0, 1).tail == 10);

  for (auto [c, name] : calls) {
    temp_dir dir;
    auto f = std::make_shared<faulty_lmdb>();
    auto s =
        open_store(options(dir.path, uint64_t{64} << 20, durability::process, f), fault_layout());
    prepare(*s);
    auto before = dump(*s);
    auto backlog = s->backlog(0);
    auto op = [&] { return store_test_access::apply_at(*s, ptrs(step), t0 + 20000); };
    auto unchanged = [&] {
      CHECK(dump(*s) == before);
      CHECK(s->backlog(0).records == backlog.records);
      CHECK(s->backlog(0).bytes == backlog.bytes);
    };
    int reached = sweep(*f, c, name, op, unchanged);
    INFO(name << " calls in the step: " << reached);
    // The step reaches every kind of write call, so each of their sites was failed in turn.
    if (c == call::txn_begin || c == call::txn_commit)
      CHECK(reached == 1);
    if (c == call::put || c == call::del || c == call::cursor_put || c == call::cursor_del)
      CHECK(reached >= 1);
    if (c == call::cursor_get || c == call::cursor_open)
      CHECK(reached >= 3);
    // The step that finally went through wrote exactly what it writes without faults: so no
    // failed attempt left a trace in memory (a head, a cursor, a tail, a time-index entry).
    CHECK(dump(*s) == expected);
    auto r = s->reader();
    check_contiguous(read_all(*r, 0, 0), 0, 20, 23);
    CHECK(s->backlog(0).records == ref->backlog(0).records);
  }
}

TEST_CASE("a failing LMDB call while opening fails the open and changes nothing",
          "[runtime][store]") {
  temp_dir dir;
  {
    auto s = open_store(dir.path, fault_layout());
    prepare(*s);
  }
  auto before = [&] {
    auto s = open_store(dir.path, fault_layout());
    return dump(*s);
  }();
  auto f = std::make_shared<faulty_lmdb>();
  auto open_in = [&](const std::string& at) {
    return [&f, at] {
      auto s = store::open(options(at, uint64_t{64} << 20, durability::process, f), fault_layout());
      return error_of(s);
    };
  };
  for (auto [c, name] : calls) {
    int reached = sweep(*f, c, name, open_in(dir.path), [] {});
    INFO(name << " calls in the open: " << reached);
    if (c == call::get || c == call::cursor_get || c == call::dbi_open)
      CHECK(reached >= 4);
    if (c == call::env_open || c == call::txn_begin || c == call::txn_commit)
      CHECK(reached == 1);
  }
  auto s = open_store(dir.path, fault_layout());
  CHECK(dump(*s) == before);
  check_contiguous(read_all(*s->reader(), 0, 1), 1, 0, 20);

  temp_dir fresh; // creating a store: every failure is an error, and a retry creates it whole
  for (auto [c, name] : calls)
    sweep(*f, c, name, open_in(fresh.path), [] {});
  CHECK(must(open_store(fresh.path, fault_layout())->reader()->meta("partitions/e")) ==
        std::optional<std::string>{"2"});
}

TEST_CASE("a commit that finds the map full keeps intake off until the writer measures room",
          "[runtime][store]") {
  temp_dir dir;
  auto f = std::make_shared<faulty_lmdb>();
  auto s =
      open_store(options(dir.path, uint64_t{64} << 20, durability::process, f), sample_layout());
  auto d = outputs(0, 0, 0, 5);
  f->fail(call::txn_commit, MDB_MAP_FULL);
  auto err = apply(*s, {&d});
  CHECK(code_of(err) == errc::store_full);
  CHECK(text_of(err).find("store.map_size") != std::string::npos);
  CHECK(s->under_pressure());
  CHECK(code_of(apply(*s, {&d})) == errc::store_pressure); // intake waits
  auto consume = cursor_move(0, 0, 0, 0);
  CHECK(!apply(*s, {&consume})); // consumers do not
  REQUIRE(!s->update_pressure());
  CHECK(!s->under_pressure()); // the map is nearly empty
  REQUIRE(!apply(*s, {&d}));
  check_contiguous(read_all(*s->reader(), 0, 0), 0, 0, 5);
}

TEST_CASE("a failed flush to disk is sticky: every later write fails with it", "[runtime][store]") {
  temp_dir dir;
  auto f = std::make_shared<faulty_lmdb>();
  auto s =
      open_store(options(dir.path, uint64_t{64} << 20, durability::process, f), sample_layout());
  auto d = outputs(0, 0, 0, 5);
  REQUIRE(!apply(*s, {&d}));
  REQUIRE(!s->sync());
  f->fail(call::env_sync, EIO);
  auto err = s->sync();
  CHECK(code_of(err) == errc::store_io);
  CHECK(text_of(err).find("flushing to disk failed") != std::string::npos);
  CHECK(text_of(err).find("takes no more writes") != std::string::npos);
  auto more = outputs(0, 0, 5, 1);
  for (int i = 0; i < 3; ++i) {
    CHECK(text_of(apply(*s, {&more})) == text_of(err));
    CHECK(text_of(error_of(s->trim_all())) == text_of(err));
    CHECK(text_of(s->sync()) == text_of(err));
  }
  CHECK(f->failures(call::env_sync) == 1); // not retried: a later success would prove nothing
  // What was committed stays readable, and nothing was added.
  auto r = s->reader();
  check_contiguous(read_all(*r, 0, 0), 0, 0, 5);
  // A new store (a restarted node) writes again.
  r.reset();
  s.reset();
  s = open_store(dir.path, sample_layout());
  REQUIRE(!apply(*s, {&more}));
  check_contiguous(read_all(*s->reader(), 0, 0), 0, 0, 6);
}
