// Reading the store through a snapshot (an LMDB read transaction); see store.hpp for who may
// read when, and runtime/STORE_FORMAT.md for the keys read here.
#include "store/store.hpp"

#include "store/store_impl.hpp"

#include <lmdb.h>

#include <algorithm>

namespace troupe {

using namespace detail;

store_reader::store_reader(store& owner) : store_(&owner) {}

store_reader::~store_reader() {
  if (txn_)
    mdb_txn_abort(txn_); // also right for a reset transaction
}

caf::error store_reader::ensure_txn() {
  if (active_)
    return {};
  int rc;
  if (!txn_) {
    rc = mdb_txn_begin(store_->env_, nullptr, MDB_RDONLY, &txn_);
    if (rc != 0)
      txn_ = nullptr;
  } else {
    rc = mdb_txn_renew(txn_);
  }
  if (rc != 0)
    return lmdb_error(rc, "store: beginning a read transaction");
  active_ = true;
  return {};
}

caf::error store_reader::refresh() {
  release();
  return ensure_txn();
}

void store_reader::release() {
  if (txn_ && active_)
    mdb_txn_reset(txn_);
  active_ = false;
}

caf::expected<size_t> store_reader::read(edge_id e, uint64_t from, size_t max,
                                          const std::function<bool(uint64_t, std::string_view)>& fn) {
  auto& d = *store_->impl_;
  if (e >= d.e.size())
    return invalid("store: read: unknown edge id " + std::to_string(e));
  if (auto err = ensure_txn())
    return err;
  if (max == 0)
    return size_t{0};
  const auto& name = store_->layout_.edges[e].name;
  MDB_cursor* c = nullptr;
  if (int rc = mdb_cursor_open(txn_, d.e[e].log, &c); rc != 0)
    return lmdb_error(rc, "store: read: opening log/" + name);
  // The chunk holding `from` is the last one whose key (its first seq) is <= from: the first key
  // >= from, or the one before it. Below the first chunk (trimmed), reading starts at the first.
  uint64_t seq = from;
  MDB_val k{sizeof seq, &seq}, v;
  int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  if (rc == MDB_NOTFOUND)
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST); // every chunk starts below `from`, or none is left
  else if (rc == 0 && get_native64(k) > from) {
    rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    if (rc == MDB_NOTFOUND)
      rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
  }
  size_t visited = 0;
  bool more = true;
  caf::error damaged;
  while (rc == 0 && more) {
    uint64_t first = get_native64(k);
    chunk_view chunk;
    if (!chunk.parse(v)) {
      damaged = make_error(errc::store_io, "store: read: the chunk at " + std::to_string(first) +
                                             " of log/" + name + " is damaged");
      break;
    }
    uint64_t skip = from > first ? std::min<uint64_t>(from - first, chunk.count()) : 0;
    for (auto i = static_cast<uint32_t>(skip); i < chunk.count(); ++i) {
      auto bytes = chunk.record(i);
      if (!bytes) {
        damaged = make_error(errc::store_io, "store: read: record " + std::to_string(first + i) +
                                               " of log/" + name + " is damaged");
        break;
      }
      ++visited;
      if (!fn(first + i, *bytes) || visited >= max) {
        more = false;
        break;
      }
    }
    if (damaged)
      break;
    if (more)
      rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  if (damaged)
    return damaged;
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: read: reading log/" + name);
  return visited;
}

namespace {

// head and tail of an edge in a snapshot; {0, 0} when the edge has no record yet.
std::pair<uint64_t, uint64_t> edge_record(MDB_txn* txn, MDB_dbi edges, std::string_view name) {
  MDB_val k = to_val(name), v;
  if (mdb_get(txn, edges, &k, &v) != 0 || v.mv_size != 16)
    return {0, 0};
  return {get_le64(v.mv_data), get_le64(static_cast<const char*>(v.mv_data) + 8)};
}

} // namespace

uint64_t store_reader::head(edge_id e) {
  if (e >= store_->layout_.edges.size() || ensure_txn())
    return 0;
  return edge_record(txn_, store_->impl_->edges, store_->layout_.edges[e].name).first;
}

uint64_t store_reader::tail(edge_id e) {
  if (e >= store_->layout_.edges.size() || ensure_txn())
    return 0;
  return edge_record(txn_, store_->impl_->edges, store_->layout_.edges[e].name).second;
}

uint64_t store_reader::backlog(edge_id e) {
  if (e >= store_->layout_.edges.size() || ensure_txn())
    return 0;
  const auto& spec = store_->layout_.edges[e];
  auto [h, t] = edge_record(txn_, store_->impl_->edges, spec.name);
  uint64_t slowest = h; // no groups: nobody to wait for
  for (const auto& g : spec.groups) {
    // A group that never committed has consumed nothing, but nothing below the tail is left.
    uint64_t p = std::max(cursor(e, g).value_or(0), t);
    slowest = std::min(slowest, p);
  }
  return h - slowest;
}

std::optional<uint64_t> store_reader::cursor(edge_id e, std::string_view group) {
  if (e >= store_->layout_.edges.size() || ensure_txn())
    return std::nullopt;
  cursor_key(key_, store_->layout_.edges[e].name, group);
  MDB_val k = to_val(key_), v;
  if (mdb_get(txn_, store_->impl_->cursors, &k, &v) != 0 || v.mv_size != 8)
    return std::nullopt;
  return get_le64(v.mv_data);
}

std::optional<std::string> store_reader::state(stage_id s, uint32_t worker, state_space space,
                                               std::string_view key) {
  if (s >= store_->impl_->s.size() || ensure_txn())
    return std::nullopt;
  state_key(key_, worker, space, key);
  MDB_val k = to_val(key_), v;
  if (mdb_get(txn_, store_->impl_->s[s].state, &k, &v) != 0)
    return std::nullopt;
  return std::string{to_view(v)};
}

caf::error store_reader::scan_state(
  stage_id s, uint32_t worker, const std::function<void(std::string_view, std::string_view)>& fn) {
  if (s >= store_->impl_->s.size())
    return invalid("store: scan_state: unknown stage id " + std::to_string(s));
  if (auto err = ensure_txn())
    return err;
  MDB_cursor* c = nullptr;
  if (int rc = mdb_cursor_open(txn_, store_->impl_->s[s].state, &c); rc != 0)
    return lmdb_error(rc, "store: scan_state: opening a cursor");
  state_key(key_, worker, state_space::user, {});
  MDB_val k = to_val(key_), v;
  int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && has_prefix(k, key_)) {
    fn(to_view(k).substr(key_.size()), to_view(v));
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: scan_state: reading");
  return {};
}

std::vector<dead_letter_entry> store_reader::dead_letters(stage_id s, uint64_t from, size_t max) {
  std::vector<dead_letter_entry> out;
  if (s >= store_->impl_->s.size() || max == 0 || ensure_txn())
    return out;
  MDB_cursor* c = nullptr;
  if (mdb_cursor_open(txn_, store_->impl_->s[s].dead, &c) != 0)
    return out;
  uint64_t seq = from;
  MDB_val k{sizeof seq, &seq}, v;
  int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && out.size() < max) {
    out.push_back({get_native64(k), std::string{to_view(v)}});
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  return out;
}

uint64_t store_reader::dead_letter_count(stage_id s) {
  if (s >= store_->impl_->s.size() || ensure_txn())
    return 0;
  MDB_stat st;
  if (mdb_stat(txn_, store_->impl_->s[s].dead, &st) != 0)
    return 0;
  return st.ms_entries;
}

std::optional<std::string> store_reader::meta(std::string_view key) {
  if (ensure_txn())
    return std::nullopt;
  MDB_val k = to_val(key), v;
  if (key.empty() || mdb_get(txn_, store_->impl_->meta, &k, &v) != 0)
    return std::nullopt;
  return std::string{to_view(v)};
}

} // namespace troupe
