// The node's LMDB store. The on-disk layout is described in runtime/STORE_FORMAT.md; the short
// version: `meta`, `edges` (heads, tails, time index), `cursors`, one `log/<edge>` per edge, one
// `state/<stage>` and one `dead/<stage>` per stage.
//
// The writer keeps each edge's head, tail, cursors and newest time-index entry in memory
// (`edge_rt`). apply() works on pending copies of them and publishes the copies only after the
// transaction commits, so a failed transaction leaves memory exactly as it leaves the disk.
//
// An edge's log holds chunks of consecutive records, one LMDB entry each: apply() gathers a
// group commit's outputs per edge and appends them as one chunk (split at chunk_max_records /
// chunk_max_bytes), and trimming deletes whole chunks. One entry per record made the writer
// spend most of its time in per-record puts and deletes.
#include "store/store.hpp"

#include "store/store_impl.hpp"

#include <lmdb.h>
#include <cerrno>
#include <cstring>
#include <unistd.h>
#include <sys/file.h>
#include <fcntl.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <filesystem>

namespace troupe {

using namespace detail;

namespace {

constexpr const char* layout_version = "2";   // 2: log values are chunks of records
// Reader slots: one per stage worker (each holds a read transaction), with room to spare for
// the node's own readers and tools.
unsigned reader_slots(const store_layout& layout) {
  uint64_t workers = 0;
  for (const auto& s : layout.stages)
    workers += s.workers;
  return static_cast<unsigned>(std::max<uint64_t>(126, 2 * workers + 16));
}
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

// ---- the writer's transaction: deltas, time index, trimming -----------------------------------

caf::error store::impl::apply_delta(const step_delta& d) {
  const auto& edge_specs = layout->edges;
  for (const auto& o : d.outputs) {
    if (o.edge >= e.size())
      return invalid("store: apply: output to unknown edge id " + std::to_string(o.edge));
    if (o.offset > d.arena.size() || o.size > d.arena.size() - o.offset)
      return invalid("store: apply: an output of edge '" + edge_specs[o.edge].name +
                     "' lies outside its delta's arena");
    auto& r = touch(o.edge);
    r.p_records.push_back(d.output_bytes(o)); // written by append_chunks, after all deltas
    ++r.p_head;
    r.appended = true;
    dirty = true;
  }
  if (!d.state.empty() || !d.dead.empty()) {
    if (d.stage >= s.size())
      return invalid("store: apply: state or dead letters for unknown stage id " +
                     std::to_string(d.stage));
  }
  if (!d.state.empty()) {
    const auto& spec = layout->stages[d.stage];
    if (d.worker >= spec.workers)
      return invalid("store: apply: state for worker " + std::to_string(d.worker) + " of stage '" +
                     spec.name + "', which has " + std::to_string(spec.workers) + " workers");
    auto dbi = s[d.stage].state;
    for (const auto& w : d.state) {
      state_key(key, d.worker, w.space, w.key);
      MDB_val k = to_val(key);
      int rc;
      if (w.value) {
        MDB_val v = to_val(*w.value);
        rc = mdb_put(txn, dbi, &k, &v, 0);
      } else {
        rc = mdb_del(txn, dbi, &k, nullptr);
        if (rc == MDB_NOTFOUND)
          rc = 0;
      }
      if (rc != 0)
        return lmdb_error(rc, "store: apply: writing state of stage '" + spec.name + "'");
      dirty = true;
    }
  }
  for (const auto& c : d.cursors) {
    if (c.edge >= e.size())
      return invalid("store: apply: cursor on unknown edge id " + std::to_string(c.edge));
    auto& r = touch(c.edge);
    const auto& name = edge_specs[c.edge].name;
    if (c.next > r.p_head)
      return invalid("store: apply: cursor of group '" + c.group + "' on edge '" + name +
                     "' moves to " + std::to_string(c.next) + ", past the edge's head " +
                     std::to_string(r.p_head));
    cursor_key(key, name, c.group);
    char buf[8];
    put_le64(buf, c.next);
    MDB_val k = to_val(key);
    MDB_val v{8, buf};
    if (int rc = mdb_put(txn, cursors, &k, &v, 0); rc != 0)
      return lmdb_error(rc, "store: apply: moving a cursor on edge '" + name + "'");
    if (auto i = r.group_index.find(c.group); i != r.group_index.end())
      r.p_pos[i->second] = c.next;
    r.consumed = true;
    dirty = true;
  }
  if (!d.dead.empty()) {
    auto& st = touch_stage(d.stage);
    for (const auto& dl : d.dead) {
      uint64_t seq = st.p_dead_head;
      MDB_val k{sizeof seq, &seq};
      MDB_val v = to_val(dl.bytes);
      if (int rc = mdb_put(txn, st.dead, &k, &v, MDB_APPEND); rc != 0)
        return lmdb_error(rc, "store: apply: appending to dead/" + layout->stages[d.stage].name);
      ++st.p_dead_head;
      dirty = true;
    }
  }
  return {};
}

// Writes the edge's records of this transaction as chunks, at the end of its log.
caf::error store::impl::append_chunks(edge_id id) {
  auto& r = e[id];
  const auto& recs = r.p_records;
  if (recs.empty())
    return {};
  const auto& name = layout->edges[id].name;
  if (!r.cur)
    if (int rc = mdb_cursor_open(txn, r.log, &r.cur); rc != 0) {
      r.cur = nullptr;
      return lmdb_error(rc, "store: apply: opening log/" + name);
    }
  uint64_t seq = r.p_head - recs.size(); // the first record's; the others follow without gaps
  for (size_t i = 0; i < recs.size();) {
    size_t n = 0, area = 0;
    while (i + n < recs.size() && n < chunk_max_records) {
      size_t grown = area + align8(recs[i + n].size());
      if (n > 0 && chunk_header_size(n + 1) + grown > chunk_max_bytes)
        break;
      area = grown;
      ++n;
    }
    // MDB_RESERVE: LMDB makes room in the page and the chunk is encoded straight into it.
    MDB_val k{sizeof seq, &seq}, v{chunk_header_size(n) + area, nullptr};
    if (int rc = mdb_cursor_put(r.cur, &k, &v, MDB_APPEND | MDB_RESERVE); rc != 0)
      return lmdb_error(rc, "store: apply: appending to log/" + name);
    encode_chunk(static_cast<char*>(v.mv_data), recs.data() + i, n);
    seq += n;
    i += n;
  }
  assert(seq == r.p_head);
  r.p_records.clear();
  return {};
}

// The seq S of the newest time-index entry older than cutoff_ms (records below S were appended
// before the cutoff), or 0 when there is none.
caf::expected<uint64_t> store::impl::age_limit(edge_id id, uint64_t cutoff_ms) {
  if (auto err = open_edges_cursor())
    return err;
  const auto& name = layout->edges[id].name;
  time_key(key, name, cutoff_ms);
  MDB_val k = to_val(key), v;
  int rc = mdb_cursor_get(edges_cur, &k, &v, MDB_SET_RANGE);
  rc = mdb_cursor_get(edges_cur, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
  if (rc == MDB_NOTFOUND)
    return uint64_t{0};
  if (rc != 0)
    return lmdb_error(rc, "store: reading the time index of edge '" + name + "'");
  if (k.mv_size != name.size() + 9 || !has_prefix(k, name) ||
      static_cast<const char*>(k.mv_data)[name.size()] != '\0' || v.mv_size != 8)
    return uint64_t{0};
  return get_le64(v.mv_data);
}

caf::error store::impl::trim_edge(edge_id id, uint64_t now_ms, uint64_t& budget,
                                  uint64_t& removed) {
  auto& r = e[id];
  const auto& spec = layout->edges[id];
  uint64_t consumed_to = r.p_head; // the slowest group's position: nothing at or above it goes
  for (auto p : r.p_pos)
    consumed_to = std::min(consumed_to, p);
  uint64_t limit = r.p_tail;
  if (spec.keep.count > 0 && consumed_to > spec.keep.count)
    limit = std::max(limit, consumed_to - spec.keep.count);
  if (spec.keep.age_ms > 0 && now_ms > spec.keep.age_ms) {
    auto s_or = age_limit(id, now_ms - spec.keep.age_ms);
    if (!s_or)
      return s_or.error();
    limit = std::max(limit, std::min(*s_or, consumed_to));
  }
  if (limit <= r.p_tail || budget == 0)
    return {};
  if (!r.cur)
    if (int rc = mdb_cursor_open(txn, r.log, &r.cur); rc != 0) {
      r.cur = nullptr;
      return lmdb_error(rc, "store: trim: opening log/" + spec.name);
    }
  // Whole chunks go, from the front, while their last record is below the limit; the first
  // chunk that stays sets the tail. So a chunk's trimmable records may outlive `limit`.
  MDB_val k, v;
  int rc = mdb_cursor_get(r.cur, &k, &v, MDB_FIRST);
  uint64_t new_tail = limit;
  while (rc == 0) {
    uint64_t first = get_native64(k);
    chunk_view chunk;
    if (!chunk.parse(v))
      return make_error(errc::store_io, "store: trim: the chunk at " + std::to_string(first) +
                                          " of log/" + spec.name + " is damaged");
    if (first + chunk.count() > limit || budget == 0) {
      new_tail = first; // the rest stays, or goes next time when the budget ran out
      break;
    }
    uint64_t count = chunk.count(); // `v` is gone after the delete
    if ((rc = mdb_cursor_del(r.cur, 0)) != 0)
      break;
    --budget;
    removed += count;
    dirty = true;
    rc = mdb_cursor_get(r.cur, &k, &v, MDB_NEXT); // after a delete: the chunk that followed
  }
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: trimming log/" + spec.name);
  r.p_tail = std::max(r.p_tail, new_tail);
  // Time-index entries at or below the tail say nothing any more.
  if (auto err = open_edges_cursor())
    return err;
  time_key(key, spec.name, 0);
  key.resize(spec.name.size() + 1);
  MDB_val ik = to_val(key), iv;
  rc = mdb_cursor_get(edges_cur, &ik, &iv, MDB_SET_RANGE);
  while (rc == 0 && ik.mv_size == spec.name.size() + 9 && has_prefix(ik, key) &&
         iv.mv_size == 8 && get_le64(iv.mv_data) <= r.p_tail) {
    if ((rc = mdb_cursor_del(edges_cur, 0)) != 0)
      break;
    rc = mdb_cursor_get(edges_cur, &ik, &iv, MDB_NEXT);
  }
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: trimming the time index of edge '" + spec.name + "'");
  return {};
}

// After the deltas: index the append time, trim, and record head and tail of a touched edge.
caf::error store::impl::finish_edge(edge_id id, uint64_t now_ms, uint64_t& budget,
                                    uint64_t& removed) {
  auto& r = e[id];
  const auto& spec = layout->edges[id];
  // Index only where age retention needs it. Entries only move forward in time, so a clock
  // stepping back delays trimming instead of trimming early.
  if (spec.keep.age_ms > 0 && r.p_head > r.p_index_seq &&
      (r.p_index_ms == 0 || now_ms >= r.p_index_ms + time_index_step_ms)) {
    time_key(key, spec.name, now_ms);
    char buf[8];
    put_le64(buf, r.p_head);
    MDB_val k = to_val(key), v{8, buf};
    if (int rc = mdb_put(txn, edges, &k, &v, 0); rc != 0)
      return lmdb_error(rc, "store: indexing the append time of edge '" + spec.name + "'");
    r.p_index_ms = now_ms;
    r.p_index_seq = r.p_head;
    dirty = true;
  }
  if (auto err = trim_edge(id, now_ms, budget, removed))
    return err;
  if (r.p_head != r.head || r.p_tail != r.tail) {
    char buf[16];
    put_le64(buf, r.p_head);
    put_le64(buf + 8, r.p_tail);
    MDB_val k = to_val(spec.name), v{16, buf};
    if (int rc = mdb_put(txn, edges, &k, &v, 0); rc != 0)
      return lmdb_error(rc, "store: recording head and tail of edge '" + spec.name + "'");
    dirty = true;
  }
  return {};
}

// ---- store ------------------------------------------------------------------------------------

store::store(store_options options, store_layout layout)
  : options_(std::move(options)), layout_(std::move(layout)), impl_(std::make_unique<impl>()) {
  impl_->layout = &layout_;
}

store::~store() {
  if (impl_ && impl_->txn)
    impl_->abort();
  if (env_)
    mdb_env_close(env_);
  if (lock_fd_ >= 0)
    ::close(lock_fd_); // releases the data dir
}

caf::expected<std::unique_ptr<store>> store::open(store_options options, store_layout layout) {
  if (options.dir.empty())
    return invalid("store: no data dir given");
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec)
    return make_error(errc::store_io,
                      "store: cannot create data dir '" + options.dir + "': " + ec.message());
  std::unique_ptr<store> s{new store(std::move(options), std::move(layout))};
  if (auto err = s->lock_dir())
    return err;
  if (auto err = s->open_env())
    return err;
  return s;
}

// One node per data dir: LMDB's own lock file lets several processes write in turn, which would
// interleave two nodes' steps. An exclusive flock on troupe.lock, held while the store is open,
// refuses the second one (and a second open in the same process).
caf::error store::lock_dir() {
  auto path = options_.dir + "/troupe.lock";
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0)
    return make_error(errc::store_io, "store: cannot open " + path + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    auto why = errno == EWOULDBLOCK ? std::string{"another node (or tool) has it open"}
                                    : std::string{std::strerror(errno)};
    return make_error(errc::store_io,
                      "store: the data dir " + options_.dir + " is in use: " + why);
  }
  return {};
}

caf::error store::open_env() {
  auto& d = *impl_;
  // Names become keys and database names: non-empty, no NUL, short enough for LMDB's 511 bytes.
  constexpr size_t max_name = 200;
  auto check_name = [](const std::string& n, const char* what) -> caf::error {
    if (n.empty() || n.size() > max_name || n.find('\0') != std::string::npos)
      return invalid(std::string{"store: bad "} + what + " name '" + n +
                     "' (1 to 200 bytes, no NUL)");
    return {};
  };
  for (edge_id i = 0; i < layout_.edges.size(); ++i) {
    const auto& spec = layout_.edges[i];
    if (auto err = check_name(spec.name, "edge"))
      return err;
    for (const auto& g : spec.groups)
      if (auto err = check_name(g, "consumer group"))
        return err;
    if (!d.edge_names.emplace(spec.name, i).second)
      return invalid("store: edge '" + spec.name + "' is declared twice");
  }
  for (stage_id i = 0; i < layout_.stages.size(); ++i) {
    if (auto err = check_name(layout_.stages[i].name, "stage"))
      return err;
    if (!d.stage_names.emplace(layout_.stages[i].name, i).second)
      return invalid("store: stage '" + layout_.stages[i].name + "' is declared twice");
  }
  uint64_t dbs_needed = 3 + layout_.edges.size() + 2 * layout_.stages.size();
  if (dbs_needed > options_.max_dbs)
    return invalid("store: the app needs " + std::to_string(dbs_needed) +
                   " LMDB databases (3, one per edge and two per stage); a node holds at most " +
                   std::to_string(options_.max_dbs) + ": split the app across nodes");

  int rc = mdb_env_create(&env_);
  if (rc != 0) {
    env_ = nullptr;
    return lmdb_error(rc, "store: creating the LMDB environment");
  }
  if ((rc = mdb_env_set_mapsize(env_, options_.map_size)) != 0)
    return lmdb_error(rc, "store: setting store.map_size");
  if ((rc = mdb_env_set_maxdbs(env_, options_.max_dbs)) != 0)
    return lmdb_error(rc, "store: setting store.max_dbs");
  if ((rc = mdb_env_set_maxreaders(env_, reader_slots(layout_))) != 0)
    return lmdb_error(rc, "store: setting the reader table size");
  unsigned flags = MDB_NOTLS;
  if (options_.mode == durability::process)
    flags |= MDB_NOSYNC;
  if ((rc = mdb_env_open(env_, options_.dir.c_str(), flags, 0644)) != 0)
    return lmdb_error(rc, "store: opening the LMDB environment in '" + options_.dir + "'");
  // Reader slots left by a killed process (say troupectl reading this dir) would pin old pages.
  int stale = 0;
  mdb_reader_check(env_, &stale);

  if (auto err = d.begin(env_))
    return err;
  auto fail = [&](caf::error err) {
    d.abort();
    return err;
  };
  auto open_db = [&](const std::string& name, unsigned f, MDB_dbi& dbi) -> caf::error {
    if (int rc = mdb_dbi_open(d.txn, name.c_str(), f | MDB_CREATE, &dbi); rc != 0)
      return lmdb_error(rc, "store: opening database '" + name + "'");
    return {};
  };
  // Reads meta[key]; writes `want` if absent; returns the stored value otherwise.
  auto meta_check = [&](const std::string& key, const std::string& want,
                        std::optional<std::string>& found) -> caf::error {
    MDB_val k = to_val(key), v;
    int rc = mdb_get(d.txn, d.meta, &k, &v);
    if (rc == 0) {
      found = std::string{to_view(v)};
      return {};
    }
    if (rc != MDB_NOTFOUND)
      return lmdb_error(rc, "store: reading meta " + key);
    MDB_val nv = to_val(want);
    if ((rc = mdb_put(d.txn, d.meta, &k, &nv, 0)) != 0)
      return lmdb_error(rc, "store: writing meta " + key);
    return {};
  };
  if (auto err = open_db("meta", 0, d.meta))
    return fail(err);
  if (auto err = open_db("edges", 0, d.edges))
    return fail(err);
  if (auto err = open_db("cursors", 0, d.cursors))
    return fail(err);
  std::optional<std::string> found;
  if (auto err = meta_check("layout_version", layout_version, found))
    return fail(err);
  if (found && *found != layout_version)
    return fail(make_error(errc::layout_mismatch,
                           "store: data dir '" + options_.dir + "' has store layout version " +
                             *found + "; this build reads only version " + layout_version +
                             " (see runtime/STORE_FORMAT.md); there is no migration: use a "
                             "build that reads version " + *found + ", or a new data dir"));

  d.s.resize(layout_.stages.size());
  for (stage_id i = 0; i < layout_.stages.size(); ++i) {
    const auto& spec = layout_.stages[i];
    auto want = std::to_string(spec.workers);
    found.reset();
    if (auto err = meta_check("workers/" + spec.name, want, found))
      return fail(err);
    if (found && *found != want)
      return fail(make_error(
        errc::layout_mismatch,
        "store: stage '" + spec.name + "' now has " + want + " workers but its data in '" +
          options_.dir + "' was written by " + *found +
          " workers; drain the stage and reset its state and cursors before changing workers"));
    auto& st = d.s[i];
    if (auto err = open_db("state/" + spec.name, 0, st.state))
      return fail(err);
    if (auto err = open_db("dead/" + spec.name, MDB_INTEGERKEY, st.dead))
      return fail(err);
    MDB_cursor* c = nullptr;
    if ((rc = mdb_cursor_open(d.txn, st.dead, &c)) != 0)
      return fail(lmdb_error(rc, "store: opening dead/" + spec.name));
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    mdb_cursor_close(c);
    if (rc == 0)
      st.dead_head = get_native64(k) + 1;
    else if (rc != MDB_NOTFOUND)
      return fail(lmdb_error(rc, "store: reading dead/" + spec.name));
  }

  d.e.resize(layout_.edges.size());
  for (edge_id i = 0; i < layout_.edges.size(); ++i) {
    const auto& spec = layout_.edges[i];
    auto& r = d.e[i];
    if (auto err = open_db("log/" + spec.name, MDB_INTEGERKEY, r.log))
      return fail(err);
    MDB_val k = to_val(spec.name), v;
    rc = mdb_get(d.txn, d.edges, &k, &v);
    if (rc == 0 && v.mv_size == 16) {
      r.head = get_le64(v.mv_data);
      r.tail = get_le64(static_cast<const char*>(v.mv_data) + 8);
    } else if (rc == 0) {
      return fail(make_error(errc::store_io, "store: the `edges` record of edge '" + spec.name +
                                               "' is " + std::to_string(v.mv_size) +
                                               " bytes, not 16: the data dir is damaged"));
    } else if (rc != MDB_NOTFOUND) {
      return fail(lmdb_error(rc, "store: reading the head of edge '" + spec.name + "'"));
    }
    // The newest time-index entry: the last key below "<edge>\1".
    if (auto err = d.open_edges_cursor())
      return fail(err);
    d.key.assign(spec.name);
    d.key.push_back('\1');
    k = to_val(d.key);
    rc = mdb_cursor_get(d.edges_cur, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(d.edges_cur, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    if (rc == 0 && k.mv_size == spec.name.size() + 9 && has_prefix(k, spec.name) &&
        static_cast<const char*>(k.mv_data)[spec.name.size()] == '\0' && v.mv_size == 8) {
      r.index_ms = get_be64(static_cast<const char*>(k.mv_data) + spec.name.size() + 1);
      r.index_seq = get_le64(v.mv_data);
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
      return fail(lmdb_error(rc, "store: reading the time index of edge '" + spec.name + "'"));
    }
    r.pos.assign(spec.groups.size(), 0);
    r.p_pos.reserve(spec.groups.size());
    for (size_t g = 0; g < spec.groups.size(); ++g) {
      r.group_index.emplace(spec.groups[g], g);
      cursor_key(d.key, spec.name, spec.groups[g]);
      k = to_val(d.key);
      rc = mdb_get(d.txn, d.cursors, &k, &v);
      if (rc == 0 && v.mv_size == 8)
        r.pos[g] = get_le64(v.mv_data);
      else if (rc != 0 && rc != MDB_NOTFOUND)
        return fail(lmdb_error(rc, "store: reading a cursor of edge '" + spec.name + "'"));
    }
  }
  d.touched_edges.reserve(d.e.size());
  d.touched_stages.reserve(d.s.size());
  if (auto err = d.commit())
    return err;
  return {};
}

std::optional<edge_id> store::find_edge(std::string_view name) const {
  auto i = impl_->edge_names.find(name);
  if (i == impl_->edge_names.end())
    return std::nullopt;
  return i->second;
}

std::optional<stage_id> store::find_stage(std::string_view name) const {
  auto i = impl_->stage_names.find(name);
  if (i == impl_->stage_names.end())
    return std::nullopt;
  return i->second;
}

uint64_t store::committed_head(edge_id e) const {
  return e < impl_->e.size() ? impl_->e[e].head : 0;
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
  auto& d = *impl_;
  if (auto err = d.begin(env_))
    return err;
  for (const auto* delta : deltas) {
    if (!delta)
      continue;
    if (auto err = d.apply_delta(*delta)) {
      d.abort();
      return err;
    }
  }
  // One chunk per edge for the whole group (more only past the chunk caps), before trimming:
  // a cursor may already have consumed records of this very commit.
  for (auto id : d.touched_edges)
    if (auto err = d.append_chunks(id)) {
      d.abort();
      return err;
    }
  uint64_t budget = trim_budget, removed = 0;
  // finish_edge never touches further edges, so touched_edges is stable here.
  for (auto id : d.touched_edges)
    if (auto err = d.finish_edge(id, now_ms, budget, removed)) {
      d.abort();
      return err;
    }
  for (auto id : d.touched_edges) {
    if (appended && d.e[id].appended)
      appended->push_back(id);
    if (consumed && d.e[id].consumed)
      consumed->push_back(id);
  }
  if (auto err = d.commit()) {
    if (appended)
      appended->clear();
    if (consumed)
      consumed->clear();
    return err;
  }
  return {};
}

caf::expected<uint64_t> store::trim_all() { return trim_all_at(wall_clock_ms()); }

caf::expected<uint64_t> store::trim_all_at(uint64_t now_ms) {
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
    if (auto err = d.commit())
      return err;
    total += removed;
    if (budget > 0) // everything trimmable went in this transaction
      return total;
  }
}

caf::error store::sync() {
  if (int rc = mdb_env_sync(env_, 1); rc != 0)
    return lmdb_error(rc, "store: flushing to disk");
  return {};
}

std::unique_ptr<store_reader> store::reader() {
  return std::unique_ptr<store_reader>{new store_reader(*this)};
}

} // namespace troupe
