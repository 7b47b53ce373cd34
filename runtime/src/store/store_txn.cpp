// The writer's write transaction: what it touched, its pending copies of heads and cursors, and
// publishing them only once LMDB committed (store_impl.hpp).
#include "store/store_impl.hpp"

namespace troupe {

using namespace store_format;

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

} // namespace troupe
