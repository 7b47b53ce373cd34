// Damage in a real data file: one byte of a stored value flipped on disk (found through LMDB: the
// map is the file), then the store opened or read. Every value but meta's is checksummed, so the
// damage must be reported as store_corrupt naming what and where, and never read as data.
#include "store_support.hpp"

#include "store/store_check.hpp"

#include <fstream>

using namespace troupe;
using namespace troupe::store_test;

namespace {

// Edge "a" (2 partitions, age retention, so it has a time index) read by s2 and s3.
store_layout damage_layout() {
  auto l = sample_layout();
  l.edges[0].keep.age_ms = 3'600'000;
  return l;
}

// Partition 1 of "a": chunks [0, 5), [5, 10), [10, 15); partition 0: [0, 5). Cursors of both
// groups in partition 1, state in two partitions of s2, three dead letters of s3.
void fill(store& s) {
  for (uint64_t c = 0; c < 3; ++c) {
    auto d = outputs(0, 1, 5 * c, 5);
    if (c == 0)
      add_output(d, 0, 0, rec(0, 0));
    REQUIRE(!s.apply({&d}));
  }
  auto m = cursor_move(0, 0, 1, 2), m2 = cursor_move(0, 1, 1, 4);
  m.stage = 1;
  m.state.push_back({state_scope::partition, 1, state_space::user, "k", std::string{"value-1"}});
  m.state.push_back({state_scope::partition, 1, state_space::user, "l", std::string{"value-2"}});
  m.state.push_back({state_scope::partition, 0, state_space::user, "k", std::string{"value-0"}});
  m2.stage = 2;
  for (int i = 0; i < 3; ++i)
    m2.dead.push_back({"dead-letter-" + std::to_string(i)});
  REQUIRE(!s.apply({&m, &m2}));
}

std::string head_key(const std::string& edge, partition_id p) {
  return edge + '\0' + be32s(p);
}
std::string cursor_key(const std::string& edge, const std::string& group, partition_id p) {
  return edge + '\0' + group + '\0' + be32s(p);
}
std::string log_key(partition_id p, uint64_t seq) {
  return be32s(p) + be64s(seq);
}
std::string state_key(uint8_t scope, uint32_t index, uint8_t space, const std::string& key) {
  return std::string(1, static_cast<char>(scope)) + be32s(index) +
         std::string(1, static_cast<char>(space)) + key;
}
std::string dead_key(uint64_t n) {
  return std::string(reinterpret_cast<const char*>(&n), 8);
}

// The newest time-index key (all are edge "a"'s).
std::string time_key(store& s) {
  raw_txn t{s.env()};
  auto all = t.all("times");
  REQUIRE(!all.empty());
  return all.back().first;
}

// Where, in data.mdb, byte `at` of the value of (db, key) lies (negative: from its end).
uint64_t where(store& s, const std::string& db, const std::string& key, int64_t at) {
  raw_txn t{s.env()};
  MDB_val k{key.size(), const_cast<char*>(key.data())}, v;
  REQUIRE(mdb_get(t.txn, t.db(db), &k, &v) == 0);
  auto pos = at >= 0 ? static_cast<uint64_t>(at) : v.mv_size - static_cast<uint64_t>(-at);
  REQUIRE(pos < v.mv_size);
  return file_offset_of(s, db, key) + pos;
}

void check_corrupt(const caf::error& err, const std::string& names) {
  INFO(describe(err));
  CHECK(code_of(err) == errc::store_corrupt);
  CHECK(describe(err).find(names) != std::string::npos);
  CHECK(describe(err).find("the data dir is damaged") != std::string::npos);
}

template <class T> caf::error error_of(const caf::expected<T>& x) {
  return x ? caf::error{} : x.error();
}

} // namespace

TEST_CASE("a flipped byte in a chunk on disk fails the read of that chunk, with no record of it "
          "delivered",
          "[runtime][store]") {
  temp_dir dir;
  uint64_t offset = 0;
  // The checksum, the count, the flags, an end offset, a record's byte, the last padding byte.
  int64_t at = GENERATE(0, 8, 12, 16, 40, -1);
  {
    auto s = open_store(dir.path, damage_layout());
    fill(*s);
    offset = where(*s, "log/a", log_key(1, 5), at);
  }
  flip_byte(dir.data_file(), offset);
  auto s = open_store(dir.path, damage_layout()); // chunks are verified when read
  auto r = s->reader();
  std::vector<uint64_t> seen;
  auto n = r->read(0, 1, 0, SIZE_MAX, [&](uint64_t seq, std::string_view bytes) {
    CHECK(bytes == rec(seq, 1)); // nothing damaged is handed out
    seen.push_back(seq);
    return true;
  });
  REQUIRE(!n);
  check_corrupt(n.error(), "the chunk at 5 of partition 1 of log/a");
  CHECK(seen == std::vector<uint64_t>{0, 1, 2, 3, 4}); // the chunk before it, and no further
  n = r->read(0, 1, 7, SIZE_MAX, [](uint64_t, std::string_view) { return true; });
  REQUIRE(!n);
  check_contiguous(read_all(*r, 0, 1, 10), 1, 10, 15); // the chunks around it read
  check_contiguous(read_all(*r, 0, 0), 0, 0, 1);       // and so does the other partition
}

TEST_CASE("a flipped byte in a head record, a cursor or the time index on disk refuses the open, "
          "naming it",
          "[runtime][store]") {
  temp_dir dir;
  std::string what;
  uint64_t offset = 0;
  int64_t at = GENERATE(0, -1); // the checksum, the body's last byte
  {
    auto s = open_store(dir.path, damage_layout());
    fill(*s);
    SECTION("head record") {
      offset = where(*s, "heads", head_key("a", 1), at);
      what = "the head record of partition 1 of edge 'a'";
    }
    SECTION("cursor") {
      offset = where(*s, "cursors", cursor_key("a", "s3", 1), at);
      // The open may meet it first beside a cursor that is not there (s2 on partition 0).
      what = "cursor";
    }
    SECTION("time index") {
      offset = where(*s, "times", time_key(*s), at);
      what = "the newest time-index entry of edge 'a'";
    }
  }
  flip_byte(dir.data_file(), offset);
  auto s = store::open(options(dir.path), damage_layout());
  REQUIRE(!s);
  check_corrupt(s.error(), what);
}

TEST_CASE("a flipped byte in a head record or a cursor is reported by a reader of the open store",
          "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, damage_layout());
  fill(*s);
  auto r = s->reader();
  CHECK(part(*r, 0, 1).head == 15);
  flip_byte(dir.data_file(), where(*s, "heads", head_key("a", 1), -3));
  flip_byte(dir.data_file(), where(*s, "cursors", cursor_key("a", "s2", 1), -3));
  REQUIRE(!r->refresh());
  check_corrupt(error_of(r->partition(0, 1)), "the head record of partition 1 of edge 'a'");
  check_corrupt(error_of(r->cursor(0, "s2", 1)),
                "the cursor of group 's2' on partition 1 of edge 'a'");
  CHECK(part(*r, 0, 0).head == 1);
  CHECK(must(r->cursor(0, "s3", 1)) ==
        std::optional<cursor_pos>{cursor_pos{4, rec_bytes(0, 4, 1)}});
}

TEST_CASE("a flipped byte in a state value or a dead letter on disk fails the read of it",
          "[runtime][store]") {
  temp_dir dir;
  uint64_t state_at = 0, dead_at = 0;
  int64_t at = GENERATE(0, -1);
  {
    auto s = open_store(dir.path, damage_layout());
    fill(*s);
    state_at = where(*s, "state/s2", state_key(0, 1, 1, "k"), at);
    dead_at = where(*s, "dead/s3", dead_key(1), at);
  }
  flip_byte(dir.data_file(), state_at);
  flip_byte(dir.data_file(), dead_at);
  auto s = open_store(dir.path, damage_layout());
  auto r = s->reader();
  check_corrupt(error_of(r->state(1, state_scope::partition, 1, state_space::user, "k")),
                "a state value of stage 's2' (partition 1)");
  check_corrupt(r->scan_state(1, state_scope::partition, 1, state_space::user,
                              [](std::string_view, std::string_view v) { CHECK(v != "value-1"); }),
                "a state value of stage 's2'");
  CHECK(must(r->state(1, state_scope::partition, 1, state_space::user, "l")) ==
        std::optional<std::string>{"value-2"});
  CHECK(must(r->state(1, state_scope::partition, 0, state_space::user, "k")) ==
        std::optional<std::string>{"value-0"});

  check_corrupt(error_of(r->dead_letters(2)), "dead letter 1 of stage 's3'");
  auto after = r->dead_letters(2, 2);
  REQUIRE(after);
  REQUIRE(after->size() == 1);
  CHECK((*after)[0].bytes == "dead-letter-2");
  CHECK(r->dead_letter_count(2) == uint64_t{3});
}

TEST_CASE("a value moved to another key fails its checksum", "[runtime][store]") {
  temp_dir dir;
  {
    auto s = open_store(dir.path, damage_layout());
    fill(*s);
  }
  // Copy partition 0's head record over partition 1's, with bare LMDB: both well-formed.
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_set_maxdbs(env, 64) == 0);
  REQUIRE(mdb_env_open(env, dir.path.c_str(), MDB_NOTLS, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi heads;
  REQUIRE(mdb_dbi_open(txn, "heads", 0, &heads) == 0);
  auto k0 = head_key("a", 0), k1 = head_key("a", 1);
  MDB_val kv0{k0.size(), k0.data()}, kv1{k1.size(), k1.data()}, v;
  REQUIRE(mdb_get(txn, heads, &kv0, &v) == 0);
  std::string copy(static_cast<char*>(v.mv_data), v.mv_size);
  MDB_val cv{copy.size(), copy.data()};
  REQUIRE(mdb_put(txn, heads, &kv1, &cv, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
  auto s = store::open(options(dir.path), damage_layout());
  REQUIRE(!s);
  check_corrupt(s.error(), "the head record of partition 1 of edge 'a'");
}

// LMDB trusts its pages: a node whose size field is damaged hands out a value that runs megabytes
// past the end of the file, and reading it (for its checksum) would die of SIGBUS.
TEST_CASE("a value whose size runs past the end of the file is damage, not a crash",
          "[runtime][store]") {
  temp_dir dir;
  uint64_t size_hi_at = 0;
  {
    auto s = open_store(dir.path, damage_layout());
    fill(*s);
    auto key = state_key(0, 1, 1, "k");
    // A leaf node: u16 size low, u16 size high, u16 flags, u16 key size, the key, the value.
    size_hi_at = file_offset_of(*s, "state/s2", key) - key.size() - 8 + 2;
  }
  {
    int fd = ::open(dir.data_file().c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    const unsigned char sixteen_mib[2] = {0x00, 0x01};
    REQUIRE(::pwrite(fd, sixteen_mib, 2, static_cast<off_t>(size_hi_at)) == 2);
    ::close(fd);
  }
  {
    auto s = open_store(dir.path, damage_layout());
    auto r = s->reader();
    check_corrupt(error_of(r->state(1, state_scope::partition, 1, state_space::user, "k")),
                  "state of stage 's2'");
    CHECK(must(r->state(1, state_scope::partition, 0, state_space::user, "k")) ==
          std::optional<std::string>{"value-0"});
  }
  auto report = check_data_dir(dir.path);
  REQUIRE(!report.ok());
  CHECK(report.problems.front().find("state/s2") != std::string::npos);
}

// A damaged key hides its entry from a lookup: without a check that would read as "no state yet"
// or "nothing consumed", and the stage would start over from nothing.
TEST_CASE("an entry whose key was damaged is reported missing, not taken for absent",
          "[runtime][store]") {
  temp_dir dir;
  uint64_t state_key_at = 0, cursor_key_at = 0;
  {
    auto s = open_store(dir.path, damage_layout());
    fill(*s);
    auto key = state_key(0, 1, 1, "k");
    state_key_at = file_offset_of(*s, "state/s2", key) - 1; // the key's last byte
    cursor_key_at = file_offset_of(*s, "cursors", cursor_key("a", "s2", 1)) - 1;
  }
  flip_byte(dir.data_file(), state_key_at);
  {
    auto s = open_store(dir.path, damage_layout());
    auto r = s->reader();
    check_corrupt(error_of(r->state(1, state_scope::partition, 1, state_space::user, "k")),
                  "looking for a state value of stage 's2'");
  }
  flip_byte(dir.data_file(), cursor_key_at);
  auto s = store::open(options(dir.path), damage_layout());
  REQUIRE(!s);
  check_corrupt(s.error(), "looking for a cursor of partition");
}

// A node killed (or cut off) between creating LMDB's file and its first commit leaves a file
// without a database: the next node starts afresh there, and `troupe check` agrees. Once troupe's
// marker says a store was made, the same file is damage.
TEST_CASE("an LMDB file whose first commit never landed is no store yet, unless the marker says "
          "one was made",
          "[runtime][store]") {
  temp_dir dir;
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_open(env, dir.path.c_str(), MDB_NOTLS, 0644) == 0);
  mdb_env_close(env);
  REQUIRE(std::filesystem::file_size(dir.data_file()) > 0);
  auto report = check_data_dir(dir.path);
  CHECK(report.ok());
  CHECK(report.no_store);
  std::ofstream{dir.path + "/troupe.store"} << "troupe store, layout version 3\n";
  report = check_data_dir(dir.path);
  CHECK(!report.no_store);
  REQUIRE(!report.ok());
  CHECK(report.problems.front().find("no `meta` database") != std::string::npos);
}
