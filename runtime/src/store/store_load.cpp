// Loading the writer's in-memory view when the store opens: the databases opened or created,
// the layout version checked, partition counts resolved (stored with an edge, fixed once it held a
// record), and every head, cursor and newest time-index entry read and verified.
#include "store/store_impl.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace troupe {

using namespace store_format;

caf::error store::load(MDB_txn* txn) {
  auto& d = *impl_;
  auto& api = *lmdb_;
  auto open_db = [&](const std::string& name, unsigned f, MDB_dbi& dbi) -> caf::error {
    if (int rc = api.dbi_open(txn, name.c_str(), f | MDB_CREATE, &dbi); rc != 0) {
      // In a store that was made here, the list of databases LMDB cannot read is damage (a
      // power cut at `process` can leave a meta page pointing at pages never written; LMDB
      // then reads noise: MDB_CORRUPTED, MDB_PAGE_NOTFOUND, or ENOMEM for a size it made up).
      bool unreadable = rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
                        rc == MDB_INCOMPATIBLE || rc == ENOMEM;
      if (held_store_ && unreadable)
        return damaged("store: opening database '" + name + "': " + mdb_strerror(rc));
      return lmdb_error(rc, "store: opening database '" + name + "'");
    }
    return {};
  };
  auto get = [&](MDB_dbi dbi, std::string_view key,
                 const std::string& what) -> caf::expected<std::optional<std::string_view>> {
    MDB_val k = to_val(key), v;
    int rc = api.get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
      if (dbi != d.meta)
        if (auto err = confirm_absent(api, txn, dbi, key, what))
          return err;
      return std::optional<std::string_view>{};
    }
    if (rc != 0)
      return lmdb_error(rc, "store: reading " + what);
    return std::optional<std::string_view>{to_view(v)};
  };
  auto put_meta = [&](const std::string& key, const std::string& value) -> caf::error {
    MDB_val k = to_val(key), v = to_val(value);
    if (int rc = api.put(txn, d.meta, &k, &v, 0); rc != 0)
      return lmdb_error(rc, "store: writing meta " + key);
    return {};
  };
  for (auto [name, dbi] : {std::pair{"meta", &d.meta}, {"heads", &d.heads}, {"times", &d.times},
                           {"cursors", &d.cursors}})
    if (auto err = open_db(name, 0, *dbi))
      return err;

  auto version = get(d.meta, "layout_version", "meta layout_version");
  if (!version)
    return version.error();
  if (!*version) {
    // A power cut at `durability: process` can leave a data file whose newest meta page points
    // at pages that never reached the disk: LMDB then shows an older, or an empty, list of
    // databases. Once a store was created here, that is damage, not a new store.
    if (held_store_)
      return damaged("store: " + options_.dir + " held a store (troupe.store is there) but its "
                     "data file has no layout version");
    if (auto err = put_meta("layout_version", layout_version))
      return err;
  } else if (**version != layout_version) {
    return make_error(errc::layout_mismatch,
                      "store: data dir '" + options_.dir + "' has store layout version " +
                        std::string{**version} + "; this build reads only version " +
                        layout_version + " (see runtime/STORE_FORMAT.md); there is no "
                        "migration: use a build that reads it, or a new data dir");
  }

  // Partition counts: stored with the edge, fixed once it held a record.
  d.e.resize(layout_.edges.size());
  for (edge_id i = 0; i < layout_.edges.size(); ++i) {
    auto& spec = layout_.edges[i];
    auto meta_key = "partitions/" + spec.name;
    auto stored = get(d.meta, meta_key, "meta " + meta_key);
    if (!stored)
      return stored.error();
    uint32_t have = 0;
    if (*stored) {
      have = static_cast<uint32_t>(std::strtoul(std::string{**stored}.c_str(), nullptr, 10));
      if (have == 0)
        return damaged("store: meta " + meta_key + " is '" + std::string{**stored} + "'");
    }
    uint32_t want = spec.partitions ? spec.partitions : (have ? have : spec.default_partitions);
    if (want == 0)
      want = 1;
    if (have && have != want) {
      for (partition_id p = 0; p < have; ++p) { // allowed only while the edge never held data
        head_key(d.key, spec.name, p);
        auto h = get(d.heads, d.key, "the head of edge '" + spec.name + "'");
        if (!h)
          return h.error();
        if (*h)
          return make_error(errc::layout_mismatch,
                            "store: edge '" + spec.name + "' holds data in " +
                              std::to_string(have) + " partitions and the app now asks for " +
                              std::to_string(want) + "; an edge's partition count is fixed once "
                              "it held a record: set edges." + spec.name + ".partitions back to " +
                              std::to_string(have) + ", or reset the app's data");
      }
    }
    if (have != want)
      if (auto err = put_meta(meta_key, std::to_string(want)))
        return err;
    spec.partitions = want;
  }
  for (auto& stage : layout_.stages) {
    stage.partitions = 1;
    for (size_t k = 0; k < stage.inputs.size(); ++k) {
      auto in = stage.inputs[k];
      if (in >= layout_.edges.size())
        return invalid("store: stage '" + stage.name + "' reads an unknown edge id");
      auto p = layout_.edges[in].partitions;
      if (k > 0 && p != stage.partitions)
        return invalid("store: stage '" + stage.name + "' reads edges with different partition "
                       "counts (" + layout_.edges[stage.inputs[0]].name + ": " +
                       std::to_string(stage.partitions) + ", " + layout_.edges[in].name + ": " +
                       std::to_string(p) + "); a stage's inputs must be partitioned alike: set "
                       "the same edges.<edge>.partitions on each");
      stage.partitions = p;
    }
    if (!stage.inputs.empty() && !stage.leasing && stage.workers > stage.partitions)
      return invalid("store: stage '" + stage.name + "' has " + std::to_string(stage.workers) +
                     " workers but its input has " + std::to_string(stage.partitions) +
                     " partitions; each worker needs a partition of its own: lower workers, or "
                     "set edges." + layout_.edges[stage.inputs[0]].name +
                     ".partitions (only while the edge is empty)");
  }

  d.s.resize(layout_.stages.size());
  for (stage_id i = 0; i < layout_.stages.size(); ++i) {
    const auto& spec = layout_.stages[i];
    auto& st = d.s[i];
    if (auto err = open_db("state/" + spec.name, 0, st.state))
      return err;
    if (auto err = open_db("dead/" + spec.name, MDB_INTEGERKEY, st.dead))
      return err;
    MDB_cursor* c = nullptr;
    if (int rc = api.cursor_open(txn, st.dead, &c); rc != 0)
      return lmdb_error(rc, "store: opening dead/" + spec.name);
    MDB_val k, v;
    int rc = api.cursor_get(c, &k, &v, MDB_LAST);
    mdb_cursor_close(c);
    if (rc == 0)
      st.dead_head = get_native64(k) + 1;
    else if (rc != MDB_NOTFOUND)
      return lmdb_error(rc, "store: reading dead/" + spec.name);
  }

  for (edge_id i = 0; i < layout_.edges.size(); ++i) {
    const auto& spec = layout_.edges[i];
    auto& r = d.e[i];
    if (auto err = open_db("log/" + spec.name, 0, r.log))
      return err;
    r.parts.assign(spec.partitions, part_rt{});
    r.index_heads.assign(spec.partitions, 0);
    r.holds.clear();
    for (const auto& g : spec.groups)
      r.holds.push_back(std::find(spec.skipping.begin(), spec.skipping.end(), g) ==
                        spec.skipping.end());
    for (partition_id p = 0; p < spec.partitions; ++p) {
      auto& part = r.parts[p];
      auto where = "partition " + std::to_string(p) + " of edge '" + spec.name + "'";
      head_key(d.key, spec.name, p);
      auto h = get(d.heads, d.key, "the head of " + where);
      if (!h)
        return h.error();
      if (*h) {
        auto body = unseal(d.key, **h);
        auto head = body ? decode_head(*body) : std::nullopt;
        if (!head)
          return damaged("store: the head record of " + where);
        part.at = *head;
      }
      part.pos.assign(spec.groups.size(), cursor_body{});
      part.p_pos.reserve(spec.groups.size());
      for (size_t g = 0; g < spec.groups.size(); ++g) {
        cursor_key(d.key, spec.name, spec.groups[g], p);
        auto c = get(d.cursors, d.key, "a cursor of " + where);
        if (!c)
          return c.error();
        if (!*c)
          continue;
        auto body = unseal(d.key, **c);
        auto pos = body ? decode_cursor(*body) : std::nullopt;
        if (!pos || pos->next > part.at.head)
          return damaged("store: the cursor of group '" + spec.groups[g] + "' on " + where);
        part.pos[g] = *pos;
      }
    }
    // The newest time-index entry of the edge: the last key below "<edge>\1".
    MDB_cursor* c = nullptr;
    if (int rc = api.cursor_open(txn, d.times, &c); rc != 0)
      return lmdb_error(rc, "store: opening `times`");
    d.key.assign(spec.name);
    d.key.push_back('\1');
    MDB_val k = to_val(d.key), v;
    int rc = api.cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == 0 || rc == MDB_NOTFOUND) // MDB_PREV after a failed seek would mean MDB_LAST
      rc = api.cursor_get(c, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    caf::error err;
    if (rc == 0 && k.mv_size == spec.name.size() + 9 &&
        to_view(k).substr(0, spec.name.size()) == spec.name &&
        static_cast<const char*>(k.mv_data)[spec.name.size()] == '\0') {
      auto body = unseal(to_view(k), to_view(v));
      if (!body || body->size() != 8 * spec.partitions) {
        err = damaged("store: the newest time-index entry of edge '" + spec.name + "'");
      } else {
        r.index_ms = get_be64(static_cast<const char*>(k.mv_data) + spec.name.size() + 1);
        for (partition_id p = 0; p < spec.partitions; ++p)
          r.index_heads[p] = get_le64(body->data() + 8 * p);
      }
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
      err = lmdb_error(rc, "store: reading the time index of edge '" + spec.name + "'");
    }
    mdb_cursor_close(c);
    if (err)
      return err;
  }
  d.touched_edges.reserve(d.e.size());
  d.touched_stages.reserve(d.s.size());
  return {};
}

} // namespace troupe
