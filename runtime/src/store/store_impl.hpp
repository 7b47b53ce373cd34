// What the store's two halves share: store.cpp (the writer: open, apply, trim) and
// store_reader.cpp (snapshots). The encoding of keys and values (see runtime/STORE_FORMAT.md)
// and the writer's in-memory view of the store, which readers consult for database handles.
// Private to those two files.
#pragma once

#include "store/store.hpp"

#include <lmdb.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe {

static_assert(sizeof(size_t) == sizeof(uint64_t),
              "MDB_INTEGERKEY databases use 64-bit keys, which LMDB takes only as size_t");

namespace detail {

inline void put_le64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}
inline uint64_t get_le64(const void* data) {
  auto p = static_cast<const unsigned char*>(data);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}
inline void put_be64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<char>(v >> (8 * (7 - i)));
}
inline uint64_t get_be64(const void* data) {
  auto p = static_cast<const unsigned char*>(data);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | p[i];
  return v;
}
inline uint64_t get_native64(const MDB_val& v) { // MDB_INTEGERKEY keys may be unaligned in a page
  uint64_t x;
  std::memcpy(&x, v.mv_data, sizeof x);
  return x;
}

inline MDB_val to_val(std::string_view s) { return {s.size(), const_cast<char*>(s.data())}; }
inline std::string_view to_view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

// Key builders; they reuse `out`'s buffer, so the writer's hot path does not allocate.
inline void cursor_key(std::string& out, std::string_view edge, std::string_view group) {
  out.assign(edge);
  out.push_back('\0');
  out.append(group);
}
inline void time_key(std::string& out, std::string_view edge, uint64_t ms) {
  out.assign(edge);
  out.push_back('\0');
  char be[8];
  put_be64(be, ms);
  out.append(be, 8);
}
inline void state_key(std::string& out, uint32_t worker, state_space space, std::string_view key) {
  out.resize(5);
  for (int i = 0; i < 4; ++i)
    out[i] = static_cast<char>(worker >> (8 * (3 - i)));
  out[4] = static_cast<char>(space);
  out.append(key);
}
inline bool has_prefix(const MDB_val& k, std::string_view prefix) {
  return k.mv_size >= prefix.size() && std::memcmp(k.mv_data, prefix.data(), prefix.size()) == 0;
}

inline caf::error invalid(std::string what) {
  return make_error(errc::config_invalid, std::move(what));
}

// ---- log chunks -------------------------------------------------------------------------------
// A value of `log/<edge>` holds a chunk of consecutive records (STORE_FORMAT.md, "log/<edge>"):
//
//   offset 0          u32 LE  count (>= 1)
//   offset 4          u32 LE  flags, 0
//   offset 8          count x u32 LE: end offset of each record in the record area
//   zero padding to a multiple of 8
//   the record area   record i at align8(end[i-1]) (record 0 at 0), zero-padded to a multiple of 8
//
// Offsets are relative to the record area, which starts at chunk_header_size(count); so when the
// value is 8-aligned (LMDB overflow pages are), so is every record.

inline constexpr size_t align8(size_t n) { return (n + 7) & ~size_t{7}; }
inline constexpr size_t chunk_header_size(size_t count) { return align8(8 + 4 * count); }

inline void put_le32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}
inline uint32_t get_le32(const void* data) {
  auto p = static_cast<const unsigned char*>(data);
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// Writes a chunk of recs[0..n) to `out`, which has room for exactly
// chunk_header_size(n) + the sum of align8(size) over the records. The caller keeps every end
// offset below 2^32 (a chunk of more than one record stays far smaller).
inline void encode_chunk(char* out, const std::string_view* recs, size_t n) {
  put_le32(out, static_cast<uint32_t>(n));
  put_le32(out + 4, 0);
  size_t header = chunk_header_size(n);
  std::memset(out + 8 + 4 * n, 0, header - (8 + 4 * n));
  char* area = out + header;
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    auto size = recs[i].size();
    if (size > 0) // an empty view may have no data pointer
      std::memcpy(area + at, recs[i].data(), size);
    std::memset(area + at + size, 0, align8(size) - size);
    at += size;
    put_le32(out + 8 + 4 * i, static_cast<uint32_t>(at));
    at = align8(at);
  }
}

// A chunk as read from LMDB. Views point into the value: valid as long as the value is.
class chunk_view {
public:
  // Whether `v` starts like a chunk: long enough for its header, count >= 1, flags 0, and the
  // last record's end inside the value. Damaged values fail here or in record().
  bool parse(const MDB_val& v) {
    data_ = static_cast<const char*>(v.mv_data);
    if (v.mv_size < 8)
      return false;
    count_ = get_le32(data_);
    if (count_ == 0 || get_le32(data_ + 4) != 0 || v.mv_size < chunk_header_size(count_))
      return false;
    area_ = data_ + chunk_header_size(count_);
    area_size_ = v.mv_size - chunk_header_size(count_);
    return end_of(count_ - 1) <= area_size_;
  }
  uint32_t count() const { return count_; }
  // Record i (< count), or nullopt when its offsets do not fit the value.
  std::optional<std::string_view> record(uint32_t i) const {
    size_t start = i == 0 ? 0 : align8(end_of(i - 1));
    size_t end = end_of(i);
    if (start > end || end > area_size_)
      return std::nullopt;
    return std::string_view{area_ + start, end - start};
  }

private:
  size_t end_of(uint32_t i) const { return get_le32(data_ + 8 + 4 * size_t{i}); }

  const char* data_ = nullptr;
  const char* area_ = nullptr;
  size_t area_size_ = 0;
  uint32_t count_ = 0;
};

} // namespace detail

// ---- the writer's in-memory view --------------------------------------------------------------

struct edge_rt {
  MDB_dbi log = 0;
  uint64_t head = 0, tail = 0; // committed
  uint64_t index_ms = 0;       // newest time-index entry: its time and the head it recorded
  uint64_t index_seq = 0;
  std::vector<uint64_t> pos;   // committed cursor of each group of the edge_spec (0 if none)
  std::unordered_map<std::string, size_t> group_index;
  // Pending values while a write transaction is open; published on commit.
  bool touched = false, appended = false, consumed = false;
  uint64_t p_head = 0, p_tail = 0, p_index_ms = 0, p_index_seq = 0;
  std::vector<uint64_t> p_pos;
  // This transaction's outputs to the edge, in order (views into the deltas' arenas); they
  // become chunks once all deltas are in. Reused, so steady appends do not allocate.
  std::vector<std::string_view> p_records;
  MDB_cursor* cur = nullptr; // on `log`, open within the transaction
};

struct stage_rt {
  MDB_dbi state = 0, dead = 0;
  uint64_t dead_head = 0, p_dead_head = 0;
  bool touched = false;
};

struct store::impl {
  MDB_dbi meta = 0, edges = 0, cursors = 0;
  std::vector<edge_rt> e;
  std::vector<stage_rt> s;
  std::map<std::string, edge_id, std::less<>> edge_names;
  std::map<std::string, stage_id, std::less<>> stage_names;

  // The open write transaction and what it touched.
  MDB_txn* txn = nullptr;
  MDB_cursor* edges_cur = nullptr;
  std::vector<edge_id> touched_edges;
  std::vector<stage_id> touched_stages;
  bool dirty = false;
  std::string key, key2; // scratch
  const store_layout* layout = nullptr;

  edge_rt& touch(edge_id id) {
    auto& r = e[id];
    if (!r.touched) {
      r.touched = true;
      r.appended = r.consumed = false;
      r.p_head = r.head;
      r.p_tail = r.tail;
      r.p_index_ms = r.index_ms;
      r.p_index_seq = r.index_seq;
      r.p_pos.assign(r.pos.begin(), r.pos.end());
      r.p_records.clear();
      touched_edges.push_back(id);
    }
    return r;
  }
  stage_rt& touch_stage(stage_id id) {
    auto& r = s[id];
    if (!r.touched) {
      r.touched = true;
      r.p_dead_head = r.dead_head;
      touched_stages.push_back(id);
    }
    return r;
  }

  caf::error begin(MDB_env* env) {
    touched_edges.clear();
    touched_stages.clear();
    dirty = false;
    if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != 0) {
      txn = nullptr;
      return lmdb_error(rc, "store: beginning a write transaction");
    }
    return {};
  }
  // Closes the transaction's cursors (they die with it anyway; closing keeps it explicit).
  void close_cursors() {
    for (auto id : touched_edges)
      if (e[id].cur) {
        mdb_cursor_close(e[id].cur);
        e[id].cur = nullptr;
      }
    if (edges_cur) {
      mdb_cursor_close(edges_cur);
      edges_cur = nullptr;
    }
  }
  void forget_pending() {
    for (auto id : touched_edges) {
      e[id].touched = false;
      e[id].p_records.clear();
    }
    for (auto id : touched_stages)
      s[id].touched = false;
  }
  void abort() {
    close_cursors();
    if (txn)
      mdb_txn_abort(txn);
    txn = nullptr;
    forget_pending();
  }
  caf::error commit() {
    close_cursors();
    int rc = mdb_txn_commit(txn); // frees the transaction even when it fails
    txn = nullptr;
    if (rc != 0) {
      forget_pending();
      return lmdb_error(rc, "store: committing");
    }
    for (auto id : touched_edges) {
      auto& r = e[id];
      r.head = r.p_head;
      r.tail = r.p_tail;
      r.index_ms = r.p_index_ms;
      r.index_seq = r.p_index_seq;
      r.pos.swap(r.p_pos);
      r.touched = false;
    }
    for (auto id : touched_stages) {
      s[id].dead_head = s[id].p_dead_head;
      s[id].touched = false;
    }
    return {};
  }

  caf::error apply_delta(const step_delta& d);
  caf::error append_chunks(edge_id id);
  caf::error finish_edge(edge_id id, uint64_t now_ms, uint64_t& budget, uint64_t& removed);
  caf::error trim_edge(edge_id id, uint64_t now_ms, uint64_t& budget, uint64_t& removed);
  caf::error open_edges_cursor() {
    if (edges_cur)
      return {};
    if (int rc = mdb_cursor_open(txn, edges, &edges_cur); rc != 0) {
      edges_cur = nullptr;
      return lmdb_error(rc, "store: opening a cursor on `edges`");
    }
    return {};
  }
  caf::expected<uint64_t> age_limit(edge_id id, uint64_t cutoff_ms);
};

} // namespace troupe
