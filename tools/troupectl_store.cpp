#include "troupectl_store.hpp"

#include "store/format.hpp"

#include "envelope.capnp.h"

#include <capnp/serialize.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace troupe::ctl {

std::optional<offline_store> offline_store::open(const std::string& dir, std::string& why, int& code) {
  if (!fs::exists(fs::path(dir) / "data.mdb")) {
    why = dir + " holds no troupe store (no data.mdb)";
    code = exit_not_found;
    return std::nullopt;
  }
  offline_store s;
  int rc = mdb_env_create(&s.env_);
  if (rc == 0)
    rc = mdb_env_set_maxdbs(s.env_, 1 << 16);
  if (rc == 0)
    rc = mdb_env_open(s.env_, dir.c_str(), MDB_RDONLY | MDB_NOTLS, 0644);
  if (rc == 0)
    rc = mdb_txn_begin(s.env_, nullptr, MDB_RDONLY, &s.txn_);
  if (rc != 0) {
    why = "cannot read the store in " + dir + ": " + mdb_strerror(rc) + " (try `troupe check " +
          dir + "`)";
    code = exit_failed;
    return std::nullopt;
  }
  return s;
}
offline_store::offline_store(offline_store&& o) noexcept : env_(o.env_), txn_(o.txn_) {
o.env_ = nullptr;
o.txn_ = nullptr;
}

offline_store::~offline_store() {
  if (txn_)
    mdb_txn_abort(txn_);
  if (env_)
    mdb_env_close(env_);
}

std::vector<std::string> offline_store::stages_with_dead_letters() {
  std::vector<std::string> out;
  MDB_dbi main;
  MDB_cursor* c = nullptr;
  if (mdb_dbi_open(txn_, nullptr, 0, &main) != 0 || mdb_cursor_open(txn_, main, &c) != 0)
    return out;
  MDB_val k, v;
  for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    std::string name(static_cast<const char*>(k.mv_data), k.mv_size);
    if (name.rfind("dead/", 0) == 0)
      out.push_back(name.substr(5));
  }
  mdb_cursor_close(c);
  return out;
}

bool offline_store::dead_letters(const std::string& stage, std::optional<uint64_t> only,
                  std::vector<dead_letter>& out, std::string& problem) {
  MDB_dbi dbi;
  if (mdb_dbi_open(txn_, ("dead/" + stage).c_str(), MDB_INTEGERKEY, &dbi) != 0)
    return false;
  MDB_cursor* c = nullptr;
  if (int rc = mdb_cursor_open(txn_, dbi, &c); rc != 0) {
    problem = mdb_strerror(rc);
    return true;
  }
  MDB_val k, v;
  size_t id = only.value_or(0);
  k = {sizeof id, &id};
  int rc = mdb_cursor_get(c, &k, &v, only ? MDB_SET_KEY : MDB_FIRST);
  for (; rc == 0; rc = only ? MDB_NOTFOUND : mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    std::memcpy(&id, k.mv_data, sizeof id);
    std::string_view key(static_cast<const char*>(k.mv_data), k.mv_size);
    auto body = troupe::store_format::unseal(key, {static_cast<const char*>(v.mv_data), v.mv_size});
    if (!body || body->size() % 8 != 0) {
      problem = "dead letter " + std::to_string(id) + " of stage '" + stage +
                "' is damaged (it fails its checksum): run `troupe check`";
      break;
    }
    auto words = kj::heapArray<capnp::word>(body->size() / 8);
    std::memcpy(words.begin(), body->data(), body->size());
    try {
      capnp::FlatArrayMessageReader msg{words.asPtr()};
      auto dl = msg.getRoot<troupe::schema::DeadLetter>();
      auto rec = dl.getRecord();
      out.push_back({stage, id, dl.getError().cStr(), dl.getInput().cStr(), dl.getAttempts(),
                     dl.getPartition(), dl.getFailedAt(), dl.getInputSeq(),
                     dl.getSourcePosition(),
                     std::string(reinterpret_cast<const char*>(rec.begin()), rec.size())});
    } catch (const kj::Exception& e) {
      problem = "dead letter " + std::to_string(id) + " does not decode: " + e.getDescription().cStr();
      break;
    }
  }
  mdb_cursor_close(c);
  return true;
}

uint64_t offline_store::dead_letter_count(const std::string& stage) {
  MDB_dbi dbi;
  MDB_stat st;
  if (mdb_dbi_open(txn_, ("dead/" + stage).c_str(), MDB_INTEGERKEY, &dbi) != 0 ||
      mdb_stat(txn_, dbi, &st) != 0)
    return 0;
  return st.ms_entries;
}

namespace {

uint32_t be32(const char* p) {
  return (uint32_t(uint8_t(p[0])) << 24) | (uint32_t(uint8_t(p[1])) << 16) |
         (uint32_t(uint8_t(p[2])) << 8) | uint32_t(uint8_t(p[3]));
}

// Calls fn(key, unsealed body) for each entry of a sealed database; false and `problem` at the
// first damaged one.
template <class F>
bool each_sealed(MDB_txn* txn, const char* db, std::string& problem, F&& fn) {
  MDB_dbi dbi;
  MDB_cursor* c = nullptr;
  if (mdb_dbi_open(txn, db, 0, &dbi) != 0 || mdb_cursor_open(txn, dbi, &c) != 0)
    return true; // no such database: nothing there
  MDB_val k, v;
  bool ok = true;
  for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    std::string_view key(static_cast<const char*>(k.mv_data), k.mv_size);
    auto body = store_format::unseal(key, {static_cast<const char*>(v.mv_data), v.mv_size});
    if (!body) {
      problem = std::string("a value of `") + db + "` fails its checksum: run `troupe check`";
      ok = false;
      break;
    }
    fn(key, *body);
  }
  mdb_cursor_close(c);
  return ok;
}

} // namespace

std::map<std::string, edge_status> offline_store::edges(std::string& problem) {
  std::map<std::string, edge_status> out;
  // heads: edge NUL u32 BE partition -> head body; cursors: edge NUL group NUL u32 BE partition.
  std::map<std::pair<std::string, uint32_t>, store_format::head_body> heads;
  each_sealed(txn_, "heads", problem, [&](std::string_view key, std::string_view body) {
    auto nul = key.find('\0');
    auto h = store_format::decode_head(body);
    if (nul == std::string_view::npos || key.size() != nul + 5 || !h)
      return;
    std::string edge(key.substr(0, nul));
    heads[{edge, be32(key.data() + nul + 1)}] = *h;
    auto& e = out[edge];
    ++e.partitions;
    e.appended += h->head;
    e.stored += h->head - h->tail;
  });
  std::map<std::string, std::map<uint32_t, uint64_t>> next; // "edge NUL group" -> partition -> next
  each_sealed(txn_, "cursors", problem, [&](std::string_view key, std::string_view body) {
    auto first = key.find('\0');
    auto second = first == std::string_view::npos ? first : key.find('\0', first + 1);
    auto c = store_format::decode_cursor(body);
    if (second == std::string_view::npos || key.size() != second + 5 || !c)
      return;
    next[std::string(key.substr(0, second))][be32(key.data() + second + 1)] = c->next;
  });
  for (const auto& [edge_group, parts] : next) {
    auto nul = edge_group.find('\0');
    std::string edge = edge_group.substr(0, nul), group = edge_group.substr(nul + 1);
    auto& e = out[edge];
    uint64_t consumed = 0, lag = 0;
    for (const auto& [key, h] : heads) {
      if (key.first != edge)
        continue;
      auto at = parts.count(key.second) ? std::max(parts.at(key.second), h.tail) : h.tail;
      consumed += at;
      lag += h.head - std::min(at, h.head);
    }
    e.consumed[group] = consumed;
    e.lag[group] = lag;
  }
  return out;
}

bool offline_store::records(const std::string& edge, std::optional<uint32_t> only, uint64_t from,
                            size_t max,
                            const std::function<void(uint32_t, uint64_t, std::string_view)>& fn,
                            std::string& problem) {
  MDB_dbi dbi;
  if (mdb_dbi_open(txn_, ("log/" + edge).c_str(), 0, &dbi) != 0)
    return false;
  MDB_cursor* c = nullptr;
  if (int rc = mdb_cursor_open(txn_, dbi, &c); rc != 0) {
    problem = mdb_strerror(rc);
    return true;
  }
  char start[store_format::log_key_size];
  store_format::log_key(start, only.value_or(0), 0);
  MDB_val k{sizeof start, start}, v;
  size_t seen = 0;
  store_format::chunk_view chunk;
  for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && seen < max;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (k.mv_size != store_format::log_key_size)
      continue;
    auto p = store_format::log_key_partition(k.mv_data);
    if (only && p != *only)
      break;
    std::string_view key{static_cast<const char*>(k.mv_data), k.mv_size};
    std::string_view value{static_cast<const char*>(v.mv_data), v.mv_size};
    if (chunk.parse(key, value) != store_format::chunk_view::status::ok) {
      problem = "a chunk of edge '" + edge + "' (partition " + std::to_string(p) +
                ") is damaged: run `troupe check`";
      break;
    }
    auto first = store_format::log_key_seq(k.mv_data);
    for (uint32_t i = 0; i < chunk.count() && seen < max; ++i)
      if (first + i >= from) {
        fn(p, first + i, chunk.record(i));
        ++seen;
      }
  }
  mdb_cursor_close(c);
  return true;
}

} // namespace troupe::ctl
