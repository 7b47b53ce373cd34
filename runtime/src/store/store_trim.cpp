// Time index and trimming (runtime/STORE_FORMAT.md, "The time index" and "Trimming"): consumed
// records go a whole chunk at a time, per partition, once retention lets them.
#include "store/store_impl.hpp"

#include <algorithm>

namespace troupe {

using namespace store_format;

namespace {
constexpr uint64_t time_index_step_ms = 1000; // at most one time-index entry per edge per second
} // namespace

// Every partition's head as of the newest time-index entry older than cutoff_ms (records below it
// were appended before the cutoff); zeros when there is none.
caf::expected<std::vector<uint64_t>> store::impl::age_limits(edge_id id, uint64_t cutoff_ms) {
  const auto& name = layout->edges[id].name;
  std::vector<uint64_t> heads(e[id].parts.size(), 0);
  MDB_cursor* c = nullptr;
  if (int rc = api->cursor_open(txn, times, &c); rc != 0)
    return lmdb_error(rc, "store: opening `times`");
  time_key(key, name, cutoff_ms);
  MDB_val k = to_val(key), v;
  int rc = api->cursor_get(c, &k, &v, MDB_SET_RANGE);
  // A failed seek leaves the cursor unpositioned, and MDB_PREV from there means MDB_LAST.
  if (rc == 0 || rc == MDB_NOTFOUND)
    rc = api->cursor_get(c, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
  caf::error err;
  if (rc == 0 && k.mv_size == name.size() + 9 && to_view(k).substr(0, name.size()) == name &&
      static_cast<const char*>(k.mv_data)[name.size()] == '\0') {
    auto body = unseal(to_view(k), to_view(v));
    if (!body || body->size() != 8 * heads.size())
      err = damaged("store: a time-index entry of edge '" + name + "'");
    else
      for (size_t p = 0; p < heads.size(); ++p)
        heads[p] = get_le64(body->data() + 8 * p);
  } else if (rc != 0 && rc != MDB_NOTFOUND) {
    err = lmdb_error(rc, "store: reading the time index of edge '" + name + "'");
  }
  mdb_cursor_close(c);
  if (err)
    return err;
  return heads;
}

caf::error store::impl::index_time(edge_id id, uint64_t now_ms) {
  auto& r = e[id];
  const auto& spec = layout->edges[id];
  bool moved = false;
  for (size_t p = 0; p < r.parts.size(); ++p) {
    auto head = r.parts[p].touched ? r.parts[p].p_at.head : r.parts[p].at.head;
    moved = moved || head > r.p_index_heads[p];
  }
  // Entries only move forward in time, so a clock stepping back delays trimming instead of
  // trimming early.
  if (spec.keep.age_ms == 0 || !moved ||
      (r.p_index_ms != 0 && now_ms < r.p_index_ms + time_index_step_ms))
    return {};
  std::string body;
  for (size_t p = 0; p < r.parts.size(); ++p) {
    r.p_index_heads[p] = r.parts[p].touched ? r.parts[p].p_at.head : r.parts[p].at.head;
    append_le64(body, r.p_index_heads[p]);
  }
  time_key(key2, spec.name, now_ms);
  if (auto err = put_sealed(times, key2, body, "indexing append times"))
    return err;
  r.p_index_ms = now_ms;
  return {};
}

caf::error store::impl::trim_partition(edge_id id, partition_id p, uint64_t age_limit,
                                       uint64_t& budget, uint64_t& removed) {
  auto& r = e[id];
  const auto& spec = layout->edges[id];
  auto& part = r.parts[p];
  const auto& at = part.touched ? part.p_at : part.at;
  const auto& pos = part.touched ? part.p_pos : part.pos;
  // The slowest holding group's position: nothing at or above it goes (a `slow: skip` group's
  // unread records go with retention like consumed ones).
  uint64_t consumed_to = at.head;
  for (size_t g = 0; g < pos.size(); ++g)
    if (r.holds[g])
      consumed_to = std::min(consumed_to, pos[g].next);
  uint64_t limit = at.tail;
  if (pressure)
    limit = std::max(limit, consumed_to);
  if (spec.keep.count > 0 && consumed_to > spec.keep.count)
    limit = std::max(limit, consumed_to - spec.keep.count);
  if (spec.keep.age_ms > 0)
    limit = std::max(limit, std::min(age_limit, consumed_to));
  if (limit <= at.tail || budget == 0)
    return {};
  // Whole chunks go, from the front, while their last record is below the limit; the first
  // chunk that stays sets the tail. So a chunk's trimmable records may outlive `limit`.
  auto& w = touch(id, p);
  if (auto err = open_cursor(r, spec.name))
    return err;
  char kb[log_key_size];
  log_key(kb, p, w.p_at.tail);
  MDB_val k{log_key_size, kb}, v;
  int rc = api->cursor_get(r.cur, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size == log_key_size && log_key_partition(k.mv_data) == p) {
    uint64_t first = log_key_seq(k.mv_data);
    chunk_view chunk;
    // Only the count and sizes are needed to delete it; damage is reported by readers.
    if (chunk.parse(to_view(k), to_view(v), /*verify=*/false) != chunk_view::status::ok)
      return damaged("store: trim: the chunk at " + std::to_string(first) + " of partition " +
                     std::to_string(p) + " of log/" + spec.name);
    if (first != w.p_at.tail)
      return damaged("store: trim: partition " + std::to_string(p) + " of log/" + spec.name +
                     " has a chunk at " + std::to_string(first) + " where its tail " +
                     std::to_string(w.p_at.tail) + " should be");
    if (first + chunk.count() > limit || budget == 0)
      break; // the rest stays, or goes next time when the budget ran out
    uint64_t count = chunk.count(), bytes = chunk.record_bytes(); // `v` is gone after the delete
    if ((rc = api->cursor_del(r.cur, 0)) != 0)
      break;
    --budget;
    removed += count;
    w.p_at.tail += count;
    w.p_at.bytes_tail += bytes;
    dirty = true;
    rc = api->cursor_get(r.cur, &k, &v, MDB_NEXT); // after a delete: the chunk that followed
  }
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: trimming log/" + spec.name);
  return {};
}

// After the deltas: index the append time, trim, record heads, drop spent time-index entries.
caf::error store::impl::finish_edge(edge_id id, uint64_t now_ms, uint64_t& budget,
                                    uint64_t& removed) {
  auto& r = e[id];
  const auto& spec = layout->edges[id];
  if (auto err = index_time(id, now_ms))
    return err;
  std::vector<uint64_t> ages(r.parts.size(), 0);
  if (spec.keep.age_ms > 0 && now_ms > spec.keep.age_ms) {
    auto limits = age_limits(id, now_ms - spec.keep.age_ms);
    if (!limits)
      return limits.error();
    ages = std::move(*limits);
  }
  for (partition_id p = 0; p < r.parts.size(); ++p)
    if (auto err = trim_partition(id, p, ages[p], budget, removed))
      return err;
  bool tail_moved = false;
  for (auto p : r.touched_parts) {
    const auto& part = r.parts[p];
    if (part.p_at.head == part.at.head && part.p_at.tail == part.at.tail)
      continue;
    tail_moved = tail_moved || part.p_at.tail != part.at.tail;
    head_key(key, spec.name, p);
    if (auto err = put_sealed(heads, key, encode(part.p_at), "recording a partition's head"))
      return err;
  }
  if (!tail_moved || spec.keep.age_ms == 0)
    return {};
  // Time-index entries at or below every partition's tail say nothing any more.
  MDB_cursor* c = nullptr;
  if (int rc = api->cursor_open(txn, times, &c); rc != 0)
    return lmdb_error(rc, "store: opening `times`");
  time_key(key, spec.name, 0);
  MDB_val k = to_val(key), v;
  int rc = api->cursor_get(c, &k, &v, MDB_SET_RANGE);
  auto prefix = std::string_view{key}.substr(0, spec.name.size() + 1); // "<edge>\0"
  while (rc == 0 && k.mv_size == spec.name.size() + 9 && to_view(k).substr(0, prefix.size()) == prefix) {
    auto body = unseal(to_view(k), to_view(v));
    if (!body || body->size() != 8 * r.parts.size())
      break; // damaged entries are left for `troupe check` to report
    bool spent = true;
    for (size_t p = 0; p < r.parts.size() && spent; ++p) {
      const auto& part = r.parts[p];
      spent = get_le64(body->data() + 8 * p) <= (part.touched ? part.p_at.tail : part.at.tail);
    }
    if (!spent || (rc = api->cursor_del(c, 0)) != 0)
      break;
    dirty = true;
    rc = api->cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: trimming the time index of edge '" + spec.name + "'");
  return {};
}

caf::expected<uint64_t> store::trim_all() { return trim_all_at(wall_clock_ms()); }

caf::expected<uint64_t> store::trim_all_at(uint64_t now_ms) {
  if (failed_)
    return failed_;
  auto& d = *impl_;
  uint64_t total = 0;
  for (;;) {
    if (auto err = d.begin(env_))
      return err;
    uint64_t budget = trim_budget, removed = 0;
    for (edge_id id = 0; id < d.e.size(); ++id) {
      d.touch(id);
      if (auto err = d.finish_edge(id, now_ms, budget, removed)) {
        d.abort();
        return err;
      }
    }
    if (!d.dirty) {
      d.abort(); // nothing to write: no commit, no fsync
      return total;
    }
    auto touched = d.touched_edges;
    if (auto err = d.commit())
      return io_error(err);
    count_commit();
    for (auto id : touched)
      publish_backlog(id);
    total += removed;
    if (budget > 0) // everything trimmable went in this transaction
      return total;
  }
}

} // namespace troupe
