// What the store's tests share: temporary data dirs, layouts, step deltas built from readable
// records, reading a partition back, and raw access to the LMDB files that decodes values by
// runtime/STORE_FORMAT.md alone (xxHash called directly, not through store/format.hpp), so a
// test of the format does not trust the code it tests.
#pragma once

#include "store/store.hpp"

#include <catch2/catch.hpp>
#include <lmdb.h>
#include <xxhash.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <utility>
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

namespace troupe::store_test {

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
  std::string data_file() const { return path + "/data.mdb"; }
};

inline edge_spec edge(std::string name, std::vector<std::string> groups, uint32_t partitions = 1,
                      uint64_t keep_count = 0, uint64_t keep_age_ms = 0) {
  edge_spec e;
  e.name = std::move(name);
  e.groups = std::move(groups);
  e.partitions = partitions;
  e.keep.count = keep_count;
  e.keep.age_ms = keep_age_ms;
  return e;
}

inline stage_spec make_stage(std::string name, uint32_t workers = 1,
                             std::vector<edge_id> inputs = {}) {
  stage_spec s;
  s.name = std::move(name);
  s.workers = workers;
  s.inputs = std::move(inputs);
  return s;
}

// Edge "a" (2 partitions) is read by s2 (2 workers) and by s3; edge "b" (1 partition) by s4.
// s1 is a source. So "a" has consumer groups "s2" (index 0) and "s3" (index 1).
inline store_layout sample_layout() {
  store_layout l;
  l.edges.push_back(edge("a", {"s2", "s3"}, 2));
  l.edges.push_back(edge("b", {"s4"}, 1));
  l.stages.push_back(make_stage("s1"));
  l.stages.push_back(make_stage("s2", 2, {0}));
  l.stages.push_back(make_stage("s3", 1, {0}));
  l.stages.push_back(make_stage("s4", 1, {1}));
  return l;
}

inline store_options options(const std::string& dir, uint64_t map_size = uint64_t{64} << 20,
                             durability mode = durability::process,
                             std::shared_ptr<lmdb_api> lmdb = nullptr) {
  store_options o;
  o.dir = dir;
  o.map_size = map_size;
  o.mode = mode;
  o.lmdb = std::move(lmdb);
  return o;
}

inline std::unique_ptr<store> open_store(store_options o, store_layout layout) {
  auto s = store::open(std::move(o), std::move(layout));
  if (!s)
    FAIL("store::open failed: " << describe(s.error()));
  return std::move(*s);
}

inline std::unique_ptr<store> open_store(const std::string& dir, store_layout layout,
                                         uint64_t map_size = uint64_t{64} << 20,
                                         durability mode = durability::process) {
  return open_store(options(dir, map_size, mode), std::move(layout));
}

// Record i of partition p: readable, and of a length that varies with i.
inline std::string rec(uint64_t i, partition_id p = 0) {
  return "record-" + std::to_string(p) + "." + std::to_string(i);
}
// The bytes of records [from, to) of partition p, as rec() makes them.
inline uint64_t rec_bytes(uint64_t from, uint64_t to, partition_id p = 0) {
  uint64_t n = 0;
  for (auto i = from; i < to; ++i)
    n += rec(i, p).size();
  return n;
}

inline void add_output(step_delta& d, edge_id e, partition_id p, std::string_view bytes) {
  d.outputs.push_back({e, p, d.arena.size(), static_cast<uint32_t>(bytes.size())});
  d.arena.append(bytes);
}

// A delta appending records [first, first + n) of partition p to edge e.
inline step_delta outputs(edge_id e, partition_id p, uint64_t first, uint64_t n, stage_id st = 0) {
  step_delta d;
  d.stage = st;
  for (auto i = first; i < first + n; ++i)
    add_output(d, e, p, rec(i, p));
  return d;
}

// A delta moving group `g` of edge e in partition p to `next`, past records made by rec().
inline step_delta cursor_move(edge_id e, uint32_t g, partition_id p, uint64_t next) {
  step_delta d;
  d.cursors.push_back({e, g, p, next, rec_bytes(0, next, p)});
  return d;
}

inline caf::error apply(store& s, std::initializer_list<const step_delta*> deltas,
                        std::vector<edge_id>* appended = nullptr,
                        std::vector<edge_id>* consumed = nullptr) {
  return s.apply(std::vector<const step_delta*>(deltas), appended, consumed);
}

using records = std::vector<std::pair<uint64_t, std::string>>;

// (seq, bytes) of the records of partition p of edge e from `from` on.
inline records read_all(store_reader& r, edge_id e, partition_id p, uint64_t from = 0) {
  records out;
  auto n = r.read(e, p, from, SIZE_MAX, [&](uint64_t seq, std::string_view bytes) {
    out.emplace_back(seq, std::string{bytes});
    return true;
  });
  if (!n)
    FAIL("read failed: " << describe(n.error()));
  CHECK(*n == out.size());
  return out;
}

inline void check_contiguous(const records& recs, partition_id p, uint64_t first, uint64_t end) {
  REQUIRE(recs.size() == end - first);
  for (uint64_t i = 0; i < recs.size(); ++i) {
    REQUIRE(recs[i].first == first + i);
    REQUIRE(recs[i].second == rec(first + i, p));
  }
}

inline partition_info part(store_reader& r, edge_id e, partition_id p) {
  auto info = r.partition(e, p);
  if (!info)
    FAIL("partition() failed: " << describe(info.error()));
  return *info;
}

inline std::string text_of(const caf::error& e) {
  return describe(e);
}

// The value of a read that must succeed (a failure fails the test, naming the error).
template <class T> T must(caf::expected<T> x) {
  if (!x)
    FAIL("store call failed: " << describe(x.error()));
  return std::move(*x);
}

// ---- raw LMDB, decoded by STORE_FORMAT.md ---------------------------------------------------

inline uint64_t le64(const void* data) {
  uint64_t v = 0;
  auto p = static_cast<const unsigned char*>(data);
  for (int i = 7; i >= 0; --i)
    v = v << 8 | p[i];
  return v;
}
inline uint32_t le32(const void* data) {
  auto p = static_cast<const unsigned char*>(data);
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t be_n(const void* data, int n) {
  uint64_t v = 0;
  auto p = static_cast<const unsigned char*>(data);
  for (int i = 0; i < n; ++i)
    v = v << 8 | p[i];
  return v;
}
inline std::string be32s(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i)
    s[i] = static_cast<char>(v >> (8 * (3 - i)));
  return s;
}
inline std::string be64s(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<char>(v >> (8 * (7 - i)));
  return s;
}
inline size_t pad8(size_t n) {
  return (n + 7) / 8 * 8;
}

// The checksum a sealed value or a chunk starts with: XXH3-64 of the bytes after it, seeded
// with XXH3-64 of the key.
inline uint64_t doc_checksum(std::string_view key, std::string_view rest) {
  return XXH3_64bits_withSeed(rest.data(), rest.size(), XXH3_64bits(key.data(), key.size()));
}

// A read transaction on the store's own environment.
struct raw_txn {
  MDB_txn* txn = nullptr;
  explicit raw_txn(MDB_env* env) { REQUIRE(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0); }
  ~raw_txn() { mdb_txn_abort(txn); }
  MDB_dbi db(const std::string& name) const {
    MDB_dbi dbi;
    REQUIRE(mdb_dbi_open(txn, name.c_str(), 0, &dbi) == 0);
    return dbi;
  }
  // Every (key, value) of a database, in key order.
  std::vector<std::pair<std::string, std::string>> all(const std::string& name) const {
    std::vector<std::pair<std::string, std::string>> out;
    MDB_cursor* c = nullptr;
    REQUIRE(mdb_cursor_open(txn, db(name), &c) == 0);
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
      out.emplace_back(std::string(static_cast<char*>(k.mv_data), k.mv_size),
                       std::string(static_cast<char*>(v.mv_data), v.mv_size));
    mdb_cursor_close(c);
    CHECK(rc == MDB_NOTFOUND);
    return out;
  }
};

// Everything the environment holds: each named database (as listed by LMDB's main database)
// with its entries, in order. Two equal dumps are two equal stores.
inline std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>
dump(store& s) {
  raw_txn t{s.env()};
  std::vector<std::string> names;
  MDB_dbi main_db;
  REQUIRE(mdb_dbi_open(t.txn, nullptr, 0, &main_db) == 0);
  MDB_cursor* c = nullptr;
  REQUIRE(mdb_cursor_open(t.txn, main_db, &c) == 0);
  MDB_val k, v;
  for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    names.emplace_back(static_cast<char*>(k.mv_data), k.mv_size);
  mdb_cursor_close(c);
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> out;
  for (const auto& n : names)
    out.emplace_back(n, t.all(n));
  return out;
}

// The body of a sealed value (checksum checked), as the format page defines it.
inline std::string doc_unseal(const std::string& key, const std::string& value) {
  REQUIRE(value.size() >= 8);
  auto body = value.substr(8);
  REQUIRE(le64(value.data()) == doc_checksum(key, body));
  return body;
}

// One stored chunk of a partition: its first record's seq and its records.
struct raw_chunk {
  uint64_t first;
  std::vector<std::string> records;
};

// The chunks of one partition of an edge's log, read straight from `log/<edge>` and decoded by
// the format page alone; checks the checksum, header, offsets and zero padding on the way.
inline std::vector<raw_chunk> raw_chunks(store& s, const std::string& edge_name, partition_id p) {
  raw_txn t{s.env()};
  std::vector<raw_chunk> out;
  for (const auto& [k, v] : t.all("log/" + edge_name)) {
    REQUIRE(k.size() == 12);
    if (be_n(k.data(), 4) != p)
      continue;
    raw_chunk chunk{be_n(k.data() + 4, 8), {}};
    REQUIRE(v.size() >= 16);
    CHECK(le64(v.data()) == doc_checksum(k, std::string_view{v}.substr(8)));
    auto u = reinterpret_cast<const unsigned char*>(v.data());
    uint32_t count = le32(u + 8);
    REQUIRE(count >= 1);
    REQUIRE(le32(u + 12) == 0); // flags
    size_t area = pad8(16 + 4 * size_t{count});
    REQUIRE(v.size() >= area);
    for (size_t i = 16 + 4 * size_t{count}; i < area; ++i)
      REQUIRE(u[i] == 0);
    size_t start = 0;
    for (uint32_t i = 0; i < count; ++i) {
      size_t end = le32(u + 16 + 4 * size_t{i});
      REQUIRE(start <= end);
      REQUIRE(area + pad8(end) <= v.size());
      chunk.records.emplace_back(v.data() + area + start, end - start);
      for (size_t j = end; j < pad8(end); ++j)
        REQUIRE(u[area + j] == 0);
      start = pad8(end);
    }
    CHECK(v.size() == area + start); // the value ends with the last record's padding
    out.push_back(std::move(chunk));
  }
  return out;
}

inline std::vector<uint64_t> chunk_keys(store& s, const std::string& edge_name, partition_id p) {
  std::vector<uint64_t> keys;
  for (const auto& c : raw_chunks(s, edge_name, p))
    keys.push_back(c.first);
  return keys;
}

// Time-index entries of an edge from `times`: (ms, every partition's head).
inline std::vector<std::pair<uint64_t, std::vector<uint64_t>>>
time_index(store& s, const std::string& edge_name) {
  raw_txn t{s.env()};
  std::vector<std::pair<uint64_t, std::vector<uint64_t>>> out;
  auto prefix = edge_name + '\0';
  for (const auto& [k, v] : t.all("times")) {
    if (k.size() != prefix.size() + 8 || k.compare(0, prefix.size(), prefix) != 0)
      continue;
    auto body = doc_unseal(k, v);
    REQUIRE(body.size() % 8 == 0);
    std::vector<uint64_t> heads;
    for (size_t i = 0; i < body.size(); i += 8)
      heads.push_back(le64(body.data() + i));
    out.emplace_back(be_n(k.data() + prefix.size(), 8), std::move(heads));
  }
  return out;
}

// ---- the data file ----------------------------------------------------------------------------

// Where the store's environment maps data.mdb, from /proc/self/maps (LMDB's me_mapaddr is only
// set for MDB_FIXEDMAP). LMDB maps the whole file from offset 0.
inline const char* map_base(store& s) {
  auto path = std::filesystem::canonical(s.options().dir + "/data.mdb").string();
  std::ifstream maps{"/proc/self/maps"};
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() < path.size() || line.compare(line.size() - path.size(), path.size(), path))
      continue;
    unsigned long long start = 0, end = 0, offset = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx", &start, &end, perms, &offset) == 4 &&
        offset == 0)
      return reinterpret_cast<const char*>(static_cast<uintptr_t>(start));
  }
  FAIL("data.mdb is not mapped: " << path);
  return nullptr;
}

// Where in data.mdb the value stored under `key` in database `db` lies, as the store's
// environment maps it (the map is the file, page for page).
inline uint64_t file_offset_of(store& s, const std::string& db, std::string_view key) {
  raw_txn t{s.env()};
  MDB_val k{key.size(), const_cast<char*>(key.data())}, v;
  REQUIRE(mdb_get(t.txn, t.db(db), &k, &v) == 0);
  auto at = static_cast<const char*>(v.mv_data) - map_base(s);
  REQUIRE(at > 0);
  REQUIRE(static_cast<uint64_t>(at) + v.mv_size <=
          std::filesystem::file_size(s.options().dir + "/data.mdb"));
  return static_cast<uint64_t>(at);
}

// Flips the bits of one byte of a file in place (the page cache LMDB maps sees it at once).
inline void flip_byte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  unsigned char b = 0;
  REQUIRE(::pread(fd, &b, 1, static_cast<off_t>(offset)) == 1);
  b ^= 0xff;
  REQUIRE(::pwrite(fd, &b, 1, static_cast<off_t>(offset)) == 1);
  ::close(fd);
}

} // namespace troupe::store_test
