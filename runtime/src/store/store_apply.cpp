// The writer's transaction: applying step deltas, appending chunks, indexing append times and
// trimming by retention (runtime/STORE_FORMAT.md, "Commits" and "Trimming").
//
// An edge's partitions each hold chunks of consecutive records, one LMDB entry each: apply()
// gathers a group commit's outputs per partition and appends them as one chunk (split at
// chunk_max_records / chunk_max_bytes), and trimming deletes whole chunks.
#include "store/store_impl.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>

namespace troupe {

using namespace store_format;

namespace {

constexpr uint64_t time_index_step_ms = 1000; // at most one time-index entry per edge per second
// A chunk holds at most chunk_max_records records, and more than one record only while its value
// (header included) stays within chunk_max_bytes; a bigger record gets a chunk of its own.
constexpr size_t chunk_max_records = 4096;
constexpr size_t chunk_max_bytes = size_t{1} << 20;
// Chunks deleted per transaction at most. A chunk frees up to chunk_max_bytes of pages, so this
// bounds the transaction's free list at about 1 GiB of pages (2 MiB of page numbers).
constexpr uint64_t trim_budget = 1024;

uint64_t wall_clock_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
    duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

} // namespace

// ---- the transaction ----------------------------------------------------------------------------

edge_rt& store::impl::touch(edge_id id) {
  auto& r = e[id];
  if (!r.touched) {
    r.touched = true;
    r.appended = r.consumed = false;
    r.p_index_ms = r.index_ms;
    r.p_index_heads = r.index_heads;
    r.touched_parts.clear();
    touched_edges.push_back(id);
  }
  return r;
}

part_rt& store::impl::touch(edge_id id, partition_id p) {
  auto& r = touch(id);
  auto& part = r.parts[p];
  if (!part.touched) {
    part.touched = true;
    part.p_at = part.at;
    part.p_pos = part.pos;
    part.p_records.clear();
    r.touched_parts.push_back(p);
  }
  return part;
}

stage_rt& store::impl::touch_stage(stage_id id) {
  auto& r = s[id];
  if (!r.touched) {
    r.touched = true;
    r.p_dead_head = r.dead_head;
    touched_stages.push_back(id);
  }
  return r;
}

caf::error store::impl::begin(MDB_env* env) {
  touched_edges.clear();
  touched_stages.clear();
  dirty = false;
  if (int rc = api->txn_begin(env, nullptr, 0, &txn); rc != 0) {
    txn = nullptr;
    return lmdb_error(rc, "store: beginning a write transaction");
  }
  return {};
}

void store::impl::close_cursors() {
  for (auto id : touched_edges)
    if (e[id].cur) {
      mdb_cursor_close(e[id].cur);
      e[id].cur = nullptr;
    }
}

void store::impl::forget_pending() {
  for (auto id : touched_edges) {
    auto& r = e[id];
    for (auto p : r.touched_parts) {
      r.parts[p].touched = false;
      r.parts[p].p_records.clear();
    }
    r.touched = false;
  }
  for (auto id : touched_stages)
    s[id].touched = false;
}

void store::impl::abort() {
  close_cursors();
  if (txn)
    mdb_txn_abort(txn);
  txn = nullptr;
  forget_pending();
}

caf::error store::impl::commit() {
  close_cursors();
  int rc = api->txn_commit(txn); // frees the transaction even when it fails
  txn = nullptr;
  if (rc != 0) {
    forget_pending();
    return lmdb_error(rc, "store: committing");
  }
  for (auto id : touched_edges) {
    auto& r = e[id];
    for (auto p : r.touched_parts) {
      auto& part = r.parts[p];
      part.at = part.p_at;
      part.pos.swap(part.p_pos);
      part.touched = false;
    }
    r.index_ms = r.p_index_ms;
    r.index_heads.swap(r.p_index_heads);
    r.touched = false;
  }
  for (auto id : touched_stages) {
    s[id].dead_head = s[id].p_dead_head;
    s[id].touched = false;
  }
  return {};
}

caf::error store::impl::put_sealed(MDB_dbi dbi, std::string_view k, std::string_view body,
                                   const char* what) {
  seal(value, k, body);
  MDB_val kv = to_val(k), vv = to_val(value);
  if (int rc = api->put(txn, dbi, &kv, &vv, 0); rc != 0)
    return lmdb_error(rc, std::string{"store: "} + what);
  dirty = true;
  return {};
}

caf::error store::impl::open_cursor(edge_rt& r, const std::string& name) {
  if (r.cur)
    return {};
  if (int rc = api->cursor_open(txn, r.log, &r.cur); rc != 0) {
    r.cur = nullptr;
    return lmdb_error(rc, "store: opening log/" + name);
  }
  return {};
}

// ---- deltas -------------------------------------------------------------------------------------

caf::error store::impl::apply_delta(const step_delta& d) {
  const auto& edges = layout->edges;
  for (const auto& o : d.outputs) {
    if (o.edge >= e.size())
      return invalid("store: apply: output to unknown edge id " + std::to_string(o.edge));
    if (o.partition >= e[o.edge].parts.size())
      return invalid("store: apply: output to partition " + std::to_string(o.partition) +
                     " of edge '" + edges[o.edge].name + "', which has " +
                     std::to_string(e[o.edge].parts.size()));
    if (o.offset > d.arena.size() || o.size > d.arena.size() - o.offset)
      return invalid("store: apply: an output of edge '" + edges[o.edge].name +
                     "' lies outside its delta's arena");
    auto& part = touch(o.edge, o.partition);
    part.p_records.push_back(d.output_bytes(o)); // written by append_chunks, after all deltas
    ++part.p_at.head;
    part.p_at.bytes_head += o.size;
    e[o.edge].appended = true;
    dirty = true;
  }
  if ((!d.state.empty() || !d.dead.empty()) && d.stage >= s.size())
    return invalid("store: apply: state or dead letters for unknown stage id " +
                   std::to_string(d.stage));
  if (!d.state.empty()) {
    const auto& spec = layout->stages[d.stage];
    auto dbi = s[d.stage].state;
    for (const auto& w : d.state) {
      auto limit = w.scope == state_scope::partition ? spec.partitions : spec.workers;
      if (w.index >= limit)
        return invalid("store: apply: state of " +
                       std::string{w.scope == state_scope::partition ? "partition " : "worker "} +
                       std::to_string(w.index) + " of stage '" + spec.name + "', which has " +
                       std::to_string(limit));
      state_key(key, w.scope, w.index, w.space, w.key);
      if (w.value) {
        if (auto err = put_sealed(dbi, key, *w.value, "apply: writing state"))
          return err;
      } else {
        MDB_val k = to_val(key);
        int rc = api->del(txn, dbi, &k, nullptr);
        if (rc != 0 && rc != MDB_NOTFOUND)
          return lmdb_error(rc, "store: apply: erasing state of stage '" + spec.name + "'");
        dirty = true;
      }
    }
  }
  for (const auto& c : d.cursors) {
    if (c.edge >= e.size() || c.partition >= e[c.edge].parts.size() ||
        c.group >= edges[c.edge].groups.size())
      return invalid("store: apply: a cursor on an unknown edge, partition or group");
    auto& part = touch(c.edge, c.partition);
    const auto& name = edges[c.edge].name;
    if (c.next > part.p_at.head || c.bytes > part.p_at.bytes_head)
      return invalid("store: apply: cursor of group '" + edges[c.edge].groups[c.group] +
                     "' on partition " + std::to_string(c.partition) + " of edge '" + name +
                     "' moves to " + std::to_string(c.next) + ", past the head " +
                     std::to_string(part.p_at.head));
    cursor_key(key, name, edges[c.edge].groups[c.group], c.partition);
    if (auto err = put_sealed(cursors, key, encode(cursor_body{c.next, c.bytes}),
                              "apply: moving a cursor"))
      return err;
    part.p_pos[c.group] = {c.next, c.bytes};
    e[c.edge].consumed = true;
  }
  if (!d.dead.empty()) {
    auto& st = touch_stage(d.stage);
    for (const auto& dl : d.dead) {
      uint64_t seq = st.p_dead_head;
      char k8[8];
      std::memcpy(k8, &seq, 8);
      seal(value, {k8, 8}, dl.bytes);
      MDB_val k{sizeof seq, &seq}, v = to_val(value);
      if (int rc = api->put(txn, st.dead, &k, &v, MDB_APPEND); rc != 0)
        return lmdb_error(rc, "store: apply: appending to dead/" + layout->stages[d.stage].name);
      ++st.p_dead_head;
      dirty = true;
    }
  }
  return {};
}

// Writes the partition's records of this transaction as chunks, at the end of its log.
caf::error store::impl::append_chunks(edge_id id, partition_id p) {
  auto& r = e[id];
  auto& part = r.parts[p];
  const auto& recs = part.p_records;
  if (recs.empty())
    return {};
  const auto& name = layout->edges[id].name;
  if (auto err = open_cursor(r, name))
    return err;
  uint64_t seq = part.p_at.head - recs.size(); // the first record's; the others follow
  for (size_t i = 0; i < recs.size();) {
    size_t n = 0, area = 0;
    while (i + n < recs.size() && n < chunk_max_records) {
      size_t grown = area + align8(recs[i + n].size());
      if (n > 0 && chunk_header_size(n + 1) + grown > chunk_max_bytes)
        break;
      area = grown;
      ++n;
    }
    char kb[log_key_size];
    log_key(kb, p, seq);
    // MDB_RESERVE: LMDB makes room in the page and the chunk is encoded straight into it.
    MDB_val k{log_key_size, kb}, v{chunk_header_size(n) + area, nullptr};
    if (int rc = api->cursor_put(r.cur, &k, &v, MDB_RESERVE); rc != 0)
      return lmdb_error(rc, "store: apply: appending to log/" + name);
    encode_chunk(static_cast<char*>(v.mv_data), {kb, log_key_size}, recs.data() + i, n);
    seq += n;
    i += n;
  }
  assert(seq == part.p_at.head);
  part.p_records.clear();
  return {};
}

// ---- time index and trimming --------------------------------------------------------------------

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
  uint64_t consumed_to = at.head; // the slowest group's position: nothing at or above it goes
  for (const auto& c : pos)
    consumed_to = std::min(consumed_to, c.next);
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

// ---- store ---------------------------------------------------------------------------------------

caf::error store::apply(const std::vector<const step_delta*>& deltas,
                        std::vector<edge_id>* appended, std::vector<edge_id>* consumed) {
  return apply_at(deltas, appended, consumed, wall_clock_ms());
}

caf::error store::apply_at(const std::vector<const step_delta*>& deltas,
                           std::vector<edge_id>* appended, std::vector<edge_id>* consumed,
                           uint64_t now_ms) {
  if (appended)
    appended->clear();
  if (consumed)
    consumed->clear();
  if (failed_)
    return failed_;
  auto& d = *impl_;
  if (pressure_)
    for (const auto* delta : deltas)
      if (delta && !frees_room(*delta))
        return make_error(errc::store_pressure,
                          "store: the map is nearly full; intake waits while consumers free "
                          "room (raise store.map_size to give it more)");
  // Any failure leaves nothing applied; a full map also stops intake until the writer measures
  // room again (update_pressure), and trims consumed records regardless of retention meanwhile.
  auto failed = [&](caf::error err, bool open_txn) {
    if (open_txn)
      d.abort();
    if (appended)
      appended->clear();
    if (consumed)
      consumed->clear();
    if (code_of(err) == errc::store_full)
      pressure_ = d.pressure = true;
    return io_error(std::move(err));
  };
  if (auto err = d.begin(env_))
    return failed(err, false);
  for (const auto* delta : deltas)
    if (delta)
      if (auto err = d.apply_delta(*delta))
        return failed(err, true);
  // One chunk per partition for the whole group (more only past the chunk caps), before
  // trimming: a cursor may already have consumed records of this very commit.
  for (auto id : d.touched_edges)
    for (auto p : d.e[id].touched_parts)
      if (auto err = d.append_chunks(id, p))
        return failed(err, true);
  uint64_t budget = trim_budget, removed = 0;
  for (size_t i = 0; i < d.touched_edges.size(); ++i) // finish_edge touches no further edges
    if (auto err = d.finish_edge(d.touched_edges[i], now_ms, budget, removed))
      return failed(err, true);
  auto touched = d.touched_edges;
  for (auto id : touched) {
    if (appended && d.e[id].appended)
      appended->push_back(id);
    if (consumed && d.e[id].consumed)
      consumed->push_back(id);
  }
  if (auto err = d.commit())
    return failed(err, false);
  count_commit();
  for (auto id : touched)
    publish_backlog(id);
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

bool store::frees_room(const step_delta& d) const {
  if (d.outputs.empty())
    return true;
  uint64_t added = 0, consumed = 0;
  for (const auto& o : d.outputs)
    added += o.size;
  for (const auto& c : d.cursors) {
    if (c.edge >= impl_->e.size() || c.partition >= impl_->e[c.edge].parts.size())
      continue;
    const auto& pos = impl_->e[c.edge].parts[c.partition].pos;
    if (c.group < pos.size() && c.bytes > pos[c.group].bytes)
      consumed += c.bytes - pos[c.group].bytes;
  }
  return added <= consumed;
}

void store::publish_backlog(edge_id id) {
  const auto& r = impl_->e[id];
  backlog_info b;
  for (const auto& part : r.parts) {
    store_format::cursor_body slowest{part.at.head, part.at.bytes_head};
    for (const auto& c : part.pos)
      if (c.next < slowest.next)
        slowest = c;
    // A group that never committed has consumed nothing, but nothing below the tail is left.
    if (slowest.next < part.at.tail)
      slowest = {part.at.tail, part.at.bytes_tail};
    b.records += part.at.head - slowest.next;
    b.bytes += part.at.bytes_head - std::min(part.at.bytes_head, slowest.bytes);
  }
  backlog_records_[id].store(b.records, std::memory_order_relaxed);
  backlog_bytes_[id].store(b.bytes, std::memory_order_relaxed);
}

backlog_info store::backlog(edge_id e) const {
  if (e >= layout_.edges.size())
    return {};
  return {backlog_records_[e].load(std::memory_order_relaxed),
          backlog_bytes_[e].load(std::memory_order_relaxed)};
}

} // namespace troupe
