// Reading the store through a snapshot (an LMDB read transaction); see store.hpp for who may
// read when, and runtime/STORE_FORMAT.md for the keys read here. Every value read is verified
// against its checksum: damage is an error, never data.
#include "store/store_impl.hpp"

#include <lmdb.h>

#include <algorithm>

namespace troupe {

using namespace store_format;

caf::error confirm_absent(lmdb_api& api, MDB_txn* txn, MDB_dbi dbi, std::string_view key,
                          const std::string& what) {
  MDB_cursor* c = nullptr;
  if (int rc = api.cursor_open(txn, dbi, &c); rc != 0)
    return lmdb_error(rc, "store: reading " + what);
  auto sealed = [](const MDB_val& k, const MDB_val& v) {
    return v.mv_size >= seal_size &&
           get_le64(v.mv_data) == checksum(to_view(k), static_cast<const char*>(v.mv_data) + 8,
                                           v.mv_size - 8);
  };
  MDB_val k = to_val(key), v;
  bool ok = true;
  int rc = api.cursor_get(c, &k, &v, MDB_SET_RANGE);
  if (rc == 0)
    ok = sealed(k, v);
  if (ok && (rc == 0 || rc == MDB_NOTFOUND)) {
    rc = api.cursor_get(c, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    if (rc == 0)
      ok = sealed(k, v);
  }
  mdb_cursor_close(c);
  if (!ok)
    return damaged("store: looking for " + what + ", which is not there, an entry beside where "
                   "it would be fails its checksum (a damaged key or value)");
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: reading " + what);
  return {};
}

store_reader::store_reader(store& owner) : store_(&owner) {}

store_reader::~store_reader() {
  if (txn_)
    mdb_txn_abort(txn_); // also right for a reset transaction
}

caf::error store_reader::ensure_txn() {
  if (active_)
    return {};
  auto& api = store_->lmdb();
  int rc;
  if (!txn_) {
    rc = api.txn_begin(store_->env_, nullptr, MDB_RDONLY, &txn_);
    if (rc != 0)
      txn_ = nullptr;
  } else {
    rc = api.txn_renew(txn_);
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

caf::expected<size_t> store_reader::read(edge_id e, partition_id p, uint64_t from, size_t max,
                                          const std::function<bool(uint64_t, std::string_view)>& fn) {
  auto& d = *store_->impl_;
  if (e >= d.e.size() || p >= d.e[e].parts.size())
    return invalid("store: read: unknown edge id or partition");
  if (auto err = ensure_txn())
    return err;
  if (max == 0)
    return size_t{0};
  auto& api = store_->lmdb();
  const auto& name = store_->layout_.edges[e].name;
  MDB_cursor* c = nullptr;
  if (int rc = api.cursor_open(txn_, d.e[e].log, &c); rc != 0)
    return lmdb_error(rc, "store: read: opening log/" + name);
  auto in_partition = [&](const MDB_val& k) {
    return k.mv_size == log_key_size && log_key_partition(k.mv_data) == p;
  };
  // The chunk holding `from` is the last one of the partition whose key (its first seq) is <=
  // from: the entry at `from`, or the one before it. Below the partition's first chunk
  // (trimmed), reading starts at that first chunk.
  char kb[log_key_size];
  log_key(kb, p, from);
  MDB_val k{log_key_size, kb}, v;
  int rc = api.cursor_get(c, &k, &v, MDB_SET_RANGE);
  if (rc != 0 && rc != MDB_NOTFOUND) {
    mdb_cursor_close(c);
    return lmdb_error(rc, "store: read: seeking in log/" + name);
  }
  if (rc != 0 || !in_partition(k) || log_key_seq(k.mv_data) > from) {
    int back = api.cursor_get(c, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    if (back == 0 && in_partition(k)) {
      rc = 0;
    } else if (back == 0 || back == MDB_NOTFOUND) {
      log_key(kb, p, 0); // nothing at or below `from`: the partition's first chunk, if any
      k = {log_key_size, kb};
      rc = api.cursor_get(c, &k, &v, MDB_SET_RANGE);
    } else {
      rc = back;
    }
  }
  size_t visited = 0;
  bool more = true;
  caf::error err;
  while (rc == 0 && more && in_partition(k)) {
    uint64_t first = log_key_seq(k.mv_data);
    bool known = std::any_of(verified_.begin(), verified_.end(), [&](const verified_chunk& c) {
      return c.edge == e && c.partition == p && c.first == first && c.size == v.mv_size;
    });
    chunk_view chunk;
    if (chunk.parse(to_view(k), to_view(v), /*verify=*/!known) != chunk_view::status::ok) {
      err = damaged("store: the chunk at " + std::to_string(first) + " of partition " +
                    std::to_string(p) + " of log/" + name + " failed its checksum");
      break;
    }
    if (!known) {
      verified_[verified_next_] = {e, p, first, v.mv_size};
      verified_next_ = (verified_next_ + 1) % verified_.size();
    }
    uint64_t skip = from > first ? std::min<uint64_t>(from - first, chunk.count()) : 0;
    for (auto i = static_cast<uint32_t>(skip); i < chunk.count(); ++i) {
      ++visited;
      if (!fn(first + i, chunk.record(i)) || visited >= max) {
        more = false;
        break;
      }
    }
    if (more)
      rc = api.cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  if (err)
    return err;
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: read: reading log/" + name);
  return visited;
}

caf::expected<partition_info> store_reader::partition(edge_id e, partition_id p) {
  const auto& layout = store_->layout_;
  if (e >= layout.edges.size() || p >= layout.edges[e].partitions)
    return invalid("store: unknown edge id or partition");
  if (auto err = ensure_txn())
    return err;
  head_key(key_, layout.edges[e].name, p);
  MDB_val k = to_val(key_), v;
  int rc = store_->lmdb().get(txn_, store_->impl_->heads, &k, &v);
  if (rc == MDB_NOTFOUND) {
    if (auto err = confirm_absent(store_->lmdb(), txn_, store_->impl_->heads, key_,
                                  "the head of edge '" + layout.edges[e].name + "'"))
      return err;
    return partition_info{};
  }
  if (rc != 0)
    return lmdb_error(rc, "store: reading the head of edge '" + layout.edges[e].name + "'");
  auto body = unseal(key_, to_view(v));
  auto h = body ? decode_head(*body) : std::nullopt;
  if (!h)
    return damaged("store: the head record of partition " + std::to_string(p) + " of edge '" +
                   layout.edges[e].name + "'");
  return partition_info{h->head, h->tail, h->bytes_head, h->bytes_tail};
}

caf::expected<std::optional<cursor_pos>> store_reader::cursor(edge_id e, std::string_view group,
                                                              partition_id p) {
  const auto& layout = store_->layout_;
  if (e >= layout.edges.size() || p >= layout.edges[e].partitions)
    return invalid("store: unknown edge id or partition");
  if (auto err = ensure_txn())
    return err;
  cursor_key(key_, layout.edges[e].name, group, p);
  MDB_val k = to_val(key_), v;
  int rc = store_->lmdb().get(txn_, store_->impl_->cursors, &k, &v);
  if (rc == MDB_NOTFOUND) {
    if (auto err = confirm_absent(store_->lmdb(), txn_, store_->impl_->cursors, key_,
                                  "a cursor of edge '" + layout.edges[e].name + "'"))
      return err;
    return std::optional<cursor_pos>{};
  }
  if (rc != 0)
    return lmdb_error(rc, "store: reading a cursor of edge '" + layout.edges[e].name + "'");
  auto body = unseal(key_, to_view(v));
  auto c = body ? decode_cursor(*body) : std::nullopt;
  if (!c)
    return damaged("store: the cursor of group '" + std::string{group} + "' on partition " +
                   std::to_string(p) + " of edge '" + layout.edges[e].name + "'");
  return std::optional<cursor_pos>{cursor_pos{c->next, c->bytes}};
}

caf::expected<std::optional<std::string>> store_reader::state(stage_id s, state_scope scope,
                                                              uint32_t index, state_space space,
                                                              std::string_view key) {
  if (s >= store_->impl_->s.size())
    return invalid("store: unknown stage id " + std::to_string(s));
  if (auto err = ensure_txn())
    return err;
  state_key(key_, scope, index, space, key);
  MDB_val k = to_val(key_), v;
  int rc = store_->lmdb().get(txn_, store_->impl_->s[s].state, &k, &v);
  const auto& stage = store_->layout_.stages[s].name;
  if (rc == MDB_NOTFOUND) {
    if (auto err = confirm_absent(store_->lmdb(), txn_, store_->impl_->s[s].state, key_,
                                  "a state value of stage '" + stage + "'"))
      return err;
    return std::optional<std::string>{};
  }
  if (rc != 0)
    return lmdb_error(rc, "store: reading state of stage '" + stage + "'");
  auto body = unseal(key_, to_view(v));
  if (!body)
    return damaged("store: a state value of stage '" + stage + "' (" +
                   (scope == state_scope::partition ? "partition " : "worker ") +
                   std::to_string(index) + ")");
  return std::optional<std::string>{std::string{*body}};
}

caf::error store_reader::scan_state(
  stage_id s, state_scope scope, uint32_t index, state_space space,
  const std::function<void(std::string_view, std::string_view)>& fn, std::string_view after,
  size_t max) {
  if (s >= store_->impl_->s.size())
    return invalid("store: scan_state: unknown stage id " + std::to_string(s));
  if (auto err = ensure_txn())
    return err;
  auto& api = store_->lmdb();
  MDB_cursor* c = nullptr;
  if (int rc = api.cursor_open(txn_, store_->impl_->s[s].state, &c); rc != 0)
    return lmdb_error(rc, "store: scan_state: opening a cursor");
  state_key(key_, scope, index, space, after);
  MDB_val k = to_val(key_), v;
  int rc = api.cursor_get(c, &k, &v, MDB_SET_RANGE);
  if (rc == 0 && !after.empty() && to_view(k) == key_)
    rc = api.cursor_get(c, &k, &v, MDB_NEXT); // strictly after
  key_.resize(key_.size() - after.size()); // the prefix
  caf::error err;
  for (size_t n = 0; rc == 0 && n < max && to_view(k).substr(0, key_.size()) == key_; ++n) {
    auto body = unseal(to_view(k), to_view(v));
    if (!body) {
      err = damaged("store: a state value of stage '" + store_->layout_.stages[s].name + "'");
      break;
    }
    fn(to_view(k).substr(key_.size()), *body);
    rc = api.cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  if (err)
    return err;
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: scan_state: reading");
  return {};
}

caf::expected<std::vector<dead_letter_entry>> store_reader::dead_letters(stage_id s,
                                                                         uint64_t from,
                                                                         size_t max) {
  std::vector<dead_letter_entry> out;
  if (s >= store_->impl_->s.size())
    return invalid("store: unknown stage id " + std::to_string(s));
  if (auto err = ensure_txn())
    return err;
  if (max == 0)
    return out;
  auto& api = store_->lmdb();
  MDB_cursor* c = nullptr;
  if (int rc = api.cursor_open(txn_, store_->impl_->s[s].dead, &c); rc != 0)
    return lmdb_error(rc, "store: opening dead/" + store_->layout_.stages[s].name);
  uint64_t seq = from;
  MDB_val k{sizeof seq, &seq}, v;
  int rc = api.cursor_get(c, &k, &v, MDB_SET_RANGE);
  caf::error err;
  while (rc == 0 && out.size() < max) {
    auto n = get_native64(k);
    char k8[8];
    std::memcpy(k8, &n, 8);
    auto body = unseal({k8, 8}, to_view(v));
    if (!body) {
      err = damaged("store: dead letter " + std::to_string(n) + " of stage '" +
                    store_->layout_.stages[s].name + "'");
      break;
    }
    out.push_back({n, std::string{*body}});
    rc = api.cursor_get(c, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(c);
  if (err)
    return err;
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: reading dead/" + store_->layout_.stages[s].name);
  return out;
}

caf::expected<uint64_t> store_reader::dead_letter_count(stage_id s) {
  if (s >= store_->impl_->s.size())
    return invalid("store: unknown stage id " + std::to_string(s));
  if (auto err = ensure_txn())
    return err;
  MDB_stat st;
  if (int rc = store_->lmdb().stat(txn_, store_->impl_->s[s].dead, &st); rc != 0)
    return lmdb_error(rc, "store: counting dead/" + store_->layout_.stages[s].name);
  return uint64_t{st.ms_entries};
}

caf::expected<std::optional<std::string>> store_reader::meta(std::string_view key) {
  if (auto err = ensure_txn())
    return err;
  if (key.empty())
    return std::optional<std::string>{};
  MDB_val k = to_val(key), v;
  int rc = store_->lmdb().get(txn_, store_->impl_->meta, &k, &v);
  if (rc == MDB_NOTFOUND)
    return std::optional<std::string>{};
  if (rc != 0)
    return lmdb_error(rc, "store: reading meta");
  return std::optional<std::string>{std::string{to_view(v)}};
}

} // namespace troupe
