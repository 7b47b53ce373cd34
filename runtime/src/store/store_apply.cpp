// Applying step deltas in the writer's transaction (runtime/STORE_FORMAT.md, "Commits"): outputs,
// state, cursors and dead letters, then one chunk per partition for the whole group commit.
//
// An edge's partitions each hold chunks of consecutive records, one LMDB entry each: apply()
// gathers a group commit's outputs per partition and appends them as one chunk (split at
// chunk_max_records / chunk_max_bytes), and trimming (store_trim.cpp) deletes whole chunks.
#include "store/store_impl.hpp"

#include <algorithm>
#include <cassert>

namespace troupe {

using namespace store_format;

namespace {

// A chunk holds at most chunk_max_records records, and more than one record only while its value
// (header included) stays within impl::chunk_bytes (1 MiB, less in a small map: see
// store_open.cpp); a bigger record gets a chunk of its own.
constexpr size_t chunk_max_records = 4096;

} // namespace

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
  if ((!d.state.empty() || !d.dead.empty() || !d.remove_dead.empty()) && d.stage >= s.size())
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
  if (!d.remove_dead.empty()) {
    auto& st = touch_stage(d.stage);
    for (uint64_t seq : d.remove_dead) {
      MDB_val k{sizeof seq, &seq};
      if (int rc = api->del(txn, st.dead, &k, nullptr); rc == MDB_NOTFOUND)
        return make_error(errc::not_found, "stage '" + layout->stages[d.stage].name +
                                             "' has no dead letter " + std::to_string(seq) +
                                             " (retried or purged already?)");
      else if (rc != 0)
        return lmdb_error(rc, "store: apply: removing from dead/" + layout->stages[d.stage].name);
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
      if (n > 0 && chunk_header_size(n + 1) + grown > chunk_bytes)
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
      if (delta && !delta->outputs.empty() && delta->cursors.empty())
        return pressure_refusal();
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
  for (const auto* delta : deltas)
    if (delta)
      for (const auto& o : delta->outputs)
        grown_since_measure_ += o.size;
  return {};
}

caf::error store::pressure_refusal() {
  return make_error(errc::store_pressure,
                    "store: the map is nearly full; intake waits while consumers free room "
                    "(raise store.map_size to give it more)");
}

bool store::admit_under_pressure(const step_delta& d) {
  if (d.outputs.empty())
    return true;
  if (d.cursors.empty())
    return false; // intake waits
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
  if (added <= consumed)
    return true;
  // Charged twice its record bytes: keys, chunk framing and the pages a copy-on-write touches.
  // What it consumes is freed only once trimmed and two commits later, so it is not credited.
  uint64_t cost = 2 * added;
  if (cost > growth_budget_)
    return false;
  growth_budget_ -= cost;
  return true;
}

void store::publish_backlog(edge_id id) {
  const auto& r = impl_->e[id];
  backlog_info b;
  for (const auto& part : r.parts) {
    store_format::cursor_body slowest{part.at.head, part.at.bytes_head};
    for (size_t g = 0; g < part.pos.size(); ++g)
      if (r.holds[g] && part.pos[g].next < slowest.next) // slow: skip holds nobody back
        slowest = part.pos[g];
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
