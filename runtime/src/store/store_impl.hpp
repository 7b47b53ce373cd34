// What the store's files share (store_*.cpp): the writer's
// in-memory view of the store, which readers consult for database handles, and the open write
// transaction. Private to the store.
//
// The writer keeps each partition's head, tail, byte counts and cursors in memory. apply() works
// on pending copies of them and publishes the copies only after the transaction commits, so a
// failed transaction leaves memory exactly as it leaves the disk.
#pragma once

#include "store/format.hpp"
#include "store/store.hpp"

#include <lmdb.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

inline MDB_val to_val(std::string_view s) { return {s.size(), const_cast<char*>(s.data())}; }
inline std::string_view to_view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}
inline uint64_t get_native64(const MDB_val& v) { // MDB_INTEGERKEY keys may be unaligned in a page
  uint64_t x;
  std::memcpy(&x, v.mv_data, sizeof x);
  return x;
}
// Chunks deleted per transaction at most. A chunk frees up to 1 MiB of pages, so this bounds a
// transaction's free list at about 1 GiB of pages (2 MiB of page numbers).
inline constexpr uint64_t trim_budget = 1024;

// Wall-clock milliseconds since the Unix epoch: the time index's clock.
inline uint64_t wall_clock_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
    duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

inline caf::error invalid(std::string what) {
  return make_error(errc::config_invalid, std::move(what));
}
inline caf::error damaged(std::string what) {
  return make_error(errc::store_corrupt,
                    std::move(what) + ": the data dir is damaged (run `troupe check` on it)");
}

// Whether `key`, which `dbi` answered MDB_NOTFOUND for, is really absent: the entries beside where
// it would be (the first after it and the one before) pass their checksums. Every value but
// meta's starts with a checksum seeded with its key, so an entry whose key was damaged on disk,
// which a lookup of its old key misses, fails there: that is damage, not absence (a missing
// cursor would otherwise mean "read from the start", a missing state value "no state yet").
// Damage in a branch page that sends the lookup to another leaf is not caught here.
caf::error confirm_absent(lmdb_api& api, MDB_txn* txn, MDB_dbi dbi, std::string_view key,
                          const std::string& what);

// One partition of an edge, as committed (and, while a transaction is open, as pending).
struct part_rt {
  store_format::head_body at;               // committed
  std::vector<store_format::cursor_body> pos; // committed cursor of each group (0 if none)
  bool touched = false;
  store_format::head_body p_at;
  std::vector<store_format::cursor_body> p_pos;
  // This transaction's outputs to the partition, in order (views into the deltas' arenas); they
  // become chunks once all deltas are in. Reused, so steady appends do not allocate.
  std::vector<std::string_view> p_records;
};

struct edge_rt {
  MDB_dbi log = 0;
  std::vector<part_rt> parts;
  std::vector<bool> holds; // per group: its cursor holds the backlog and trimming (not slow: skip)
  // Newest time-index entry: its time and every partition's head at that time.
  uint64_t index_ms = 0;
  std::vector<uint64_t> index_heads;
  // Pending while a write transaction is open.
  bool touched = false, appended = false, consumed = false;
  uint64_t p_index_ms = 0;
  std::vector<uint64_t> p_index_heads;
  std::vector<partition_id> touched_parts;
  MDB_cursor* cur = nullptr; // on `log`, open within the transaction
};

struct stage_rt {
  MDB_dbi state = 0, dead = 0;
  uint64_t dead_head = 0, p_dead_head = 0;
  bool touched = false;
};

struct store::impl {
  lmdb_api* api = nullptr;
  MDB_dbi meta = 0, heads = 0, times = 0, cursors = 0;
  std::vector<edge_rt> e;
  std::vector<stage_rt> s;
  std::map<std::string, edge_id, std::less<>> edge_names;
  std::map<std::string, stage_id, std::less<>> stage_names;
  const store_layout* layout = nullptr;
  bool pressure = false; // trim consumed records regardless of retention
  // The most bytes a chunk of several records takes: 1 MiB, less in a smaller map (store_open.cpp
  // says why).
  size_t chunk_bytes = size_t{1} << 20;

  // The open write transaction and what it touched.
  MDB_txn* txn = nullptr;
  std::vector<edge_id> touched_edges;
  std::vector<stage_id> touched_stages;
  bool dirty = false;
  std::string key, key2, value; // scratch

  edge_rt& touch(edge_id id);
  part_rt& touch(edge_id id, partition_id p);
  stage_rt& touch_stage(stage_id id);

  caf::error begin(MDB_env* env);
  void abort();
  caf::error commit();

  caf::error apply_delta(const step_delta& d);
  caf::error append_chunks(edge_id id, partition_id p);
  caf::error finish_edge(edge_id id, uint64_t now_ms, uint64_t& budget, uint64_t& removed);
  caf::error trim_partition(edge_id id, partition_id p, uint64_t age_limit, uint64_t& budget,
                            uint64_t& removed);
  caf::error index_time(edge_id id, uint64_t now_ms);
  caf::expected<std::vector<uint64_t>> age_limits(edge_id id, uint64_t cutoff_ms);
  caf::error put_sealed(MDB_dbi dbi, std::string_view key, std::string_view body, const char* what);
  caf::error open_cursor(edge_rt& r, const std::string& name);

private:
  void close_cursors();
  void forget_pending();
};

} // namespace troupe
