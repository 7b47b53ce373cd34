// Opening the store: the data dir's checks, the environment, the databases, partition counts, and
// the writer's in-memory view loaded (and verified) from disk. Also sync, pressure and the
// translation of I/O errors on a full file system.
#include "store/store_impl.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace troupe {

using namespace store_format;

namespace {

// Reader slots: one per stage worker (each holds a read transaction), with room to spare for
// the node's own readers and tools.
unsigned reader_slots(const store_layout& layout) {
  uint64_t workers = 0;
  for (const auto& s : layout.stages)
    workers += s.workers;
  return static_cast<unsigned>(std::max<uint64_t>(126, 2 * workers + 16));
}

// Written into the data dir once a store was created in it: from then on a missing or empty
// data.mdb is damage, not a new store.
constexpr const char* marker_file = "troupe.store";

uint64_t file_size(const std::string& path, bool& exists) {
  struct stat st {};
  exists = ::stat(path.c_str(), &st) == 0;
  return exists ? static_cast<uint64_t>(st.st_size) : 0;
}

// The mount point of the file system holding `dir`: the highest ancestor on the same device.
std::string mount_point(const std::string& dir) {
  struct stat st {};
  fs::path p = fs::absolute(dir);
  if (::stat(p.c_str(), &st) != 0)
    return dir;
  while (p.has_parent_path() && p.parent_path() != p) {
    struct stat up {};
    if (::stat(p.parent_path().c_str(), &up) != 0 || up.st_dev != st.st_dev)
      break;
    p = p.parent_path();
  }
  return p.string();
}

} // namespace

store::store(store_options options, store_layout layout)
  : options_(std::move(options)), layout_(std::move(layout)), impl_(std::make_unique<impl>()) {
  lmdb_ = options_.lmdb ? options_.lmdb : default_lmdb();
  impl_->api = lmdb_.get();
  impl_->layout = &layout_;
  auto n = layout_.edges.size();
  backlog_records_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  backlog_bytes_ = std::make_unique<std::atomic<uint64_t>[]>(n);
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
  fs::create_directories(options.dir, ec);
  if (ec)
    return make_error(errc::store_io,
                      "store: cannot create data dir '" + options.dir + "': " + ec.message());
  std::unique_ptr<store> s{new store(std::move(options), std::move(layout))};
  if (auto err = s->lock_dir())
    return err;
  if (auto err = s->check_dir())
    return err;
  if (auto err = s->open_env())
    return err;
  if (auto err = s->check_file_size())
    return err;
  auto& d = *s->impl_;
  if (auto err = d.begin(s->env_))
    return err;
  if (auto err = s->load(d.txn)) {
    d.abort();
    return err;
  }
  if (auto err = d.commit())
    return err;
  for (edge_id e = 0; e < s->layout_.edges.size(); ++e)
    s->publish_backlog(e);
  auto marker = s->options_.dir + "/" + marker_file;
  if (!fs::exists(marker, ec)) {
    std::ofstream out{marker};
    out << "troupe store, layout version " << layout_version << "\n";
  }
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
    return make_error(errc::store_io, "store: the data dir " + options_.dir + " is in use: " + why);
  }
  return {};
}

// A data dir that held a store must still hold its data file: LMDB would take a missing or
// empty one for a new store and start from nothing.
caf::error store::check_dir() {
  bool data_exists = false, lock_exists = false, marker_exists = false;
  auto data_size = file_size(options_.dir + "/data.mdb", data_exists);
  file_size(options_.dir + "/lock.mdb", lock_exists);
  file_size(options_.dir + "/" + marker_file, marker_exists);
  if ((marker_exists || lock_exists) && (!data_exists || data_size == 0))
    return damaged("store: " + options_.dir + " held a store (" +
                   (marker_exists ? std::string{marker_file} : std::string{"lock.mdb"}) +
                   " is there) but its data.mdb is " + (data_exists ? "empty" : "missing") +
                   "; restore it from a copy, or `troupe reset` the app to start afresh");
  return {};
}

caf::error store::open_env() {
  auto& d = *impl_;
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
  uint64_t dbs_needed = 4 + layout_.edges.size() + 2 * layout_.stages.size();
  if (dbs_needed > options_.max_dbs)
    return invalid("store: the app needs " + std::to_string(dbs_needed) +
                   " LMDB databases (4, one per edge and two per stage); a node holds at most " +
                   std::to_string(options_.max_dbs) + ": split the app across nodes");
  auto& api = *lmdb_;
  int rc = api.env_create(&env_);
  if (rc != 0) {
    env_ = nullptr;
    return lmdb_error(rc, "store: creating the LMDB environment");
  }
  if ((rc = api.env_set_mapsize(env_, options_.map_size)) != 0)
    return lmdb_error(rc, "store: setting store.map_size");
  if ((rc = api.env_set_maxdbs(env_, options_.max_dbs)) != 0)
    return lmdb_error(rc, "store: setting the number of databases");
  if ((rc = api.env_set_maxreaders(env_, reader_slots(layout_))) != 0)
    return lmdb_error(rc, "store: setting the reader table size");
  unsigned flags = MDB_NOTLS;
  if (options_.mode == durability::process)
    flags |= MDB_NOSYNC;
  if ((rc = api.env_open(env_, options_.dir.c_str(), flags, 0644)) != 0)
    return lmdb_error(rc, "store: opening the LMDB environment in '" + options_.dir + "'");
  // Reader slots left by a killed process (say a tool reading this dir) would pin old pages.
  int stale = 0;
  api.reader_check(env_, &stale);
  return {};
}

caf::expected<store::geometry> store::map_geometry() const {
  MDB_envinfo info;
  MDB_stat st;
  if (int rc = lmdb_->env_info(env_, &info); rc != 0)
    return lmdb_error(rc, "store: reading the environment's info");
  if (int rc = lmdb_->env_stat(env_, &st); rc != 0)
    return lmdb_error(rc, "store: reading the environment's page size");
  return geometry{static_cast<uint64_t>(info.me_last_pgno) + 1, st.ms_psize};
}

// LMDB maps the data file and would die of SIGBUS reading a page past its end: a file cut short
// (a copy that stopped half-way) is refused here instead.
caf::error store::check_file_size() {
  auto g = map_geometry();
  if (!g)
    return g.error();
  bool exists = false;
  auto size = file_size(options_.dir + "/data.mdb", exists);
  uint64_t needed = g->file_pages * g->page_size;
  if (size < needed)
    return damaged("store: " + options_.dir + "/data.mdb holds " + std::to_string(size) +
                   " bytes but its last page ends at byte " + std::to_string(needed) +
                   " (the file was cut short)");
  return {};
}

caf::error store::load(MDB_txn* txn) {
  auto& d = *impl_;
  auto& api = *lmdb_;
  auto open_db = [&](const std::string& name, unsigned f, MDB_dbi& dbi) -> caf::error {
    if (int rc = api.dbi_open(txn, name.c_str(), f | MDB_CREATE, &dbi); rc != 0)
      return lmdb_error(rc, "store: opening database '" + name + "'");
    return {};
  };
  auto get = [&](MDB_dbi dbi, std::string_view key,
                 const std::string& what) -> caf::expected<std::optional<std::string_view>> {
    MDB_val k = to_val(key), v;
    int rc = api.get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
      return std::optional<std::string_view>{};
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
    if (!stage.inputs.empty() && stage.workers > stage.partitions)
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

std::optional<uint32_t> store::find_group(edge_id edge, std::string_view stage) const {
  if (edge >= layout_.edges.size())
    return std::nullopt;
  const auto& groups = layout_.edges[edge].groups;
  auto i = std::find(groups.begin(), groups.end(), stage);
  if (i == groups.end())
    return std::nullopt;
  return static_cast<uint32_t>(i - groups.begin());
}

caf::error store::sync() {
  if (failed_)
    return failed_;
  ++flushes_;
  if (int rc = lmdb_->env_sync(env_, 1); rc != 0) {
    failed_ = make_error(errc::store_io,
                         std::string{"store: flushing to disk failed ("} + mdb_strerror(rc) +
                           "): what was committed since the last flush may not be on disk, so "
                           "the store takes no more writes; restart the node after checking the "
                           "disk (`troupe check` verifies the data dir)");
    return failed_;
  }
  return {};
}

caf::error store::io_error(caf::error err) const {
  if (code_of(err) != errc::store_io)
    return err;
  struct statvfs fsinfo {};
  if (::statvfs(options_.dir.c_str(), &fsinfo) != 0)
    return err;
  uint64_t free_blocks = ::geteuid() == 0 ? fsinfo.f_bfree : fsinfo.f_bavail;
  uint64_t free_bytes = free_blocks * fsinfo.f_frsize;
  constexpr uint64_t low = uint64_t{64} << 20; // a commit that failed with this little left
  if (free_bytes >= low)
    return err;
  return make_error(errc::disk_full,
                    "store: no space left on the file system at " + mount_point(options_.dir) +
                      " (" + std::to_string(free_bytes) + " bytes free) for " + options_.dir +
                      ": intake stops; free some space and the node resumes, nothing committed "
                      "was lost (" + describe(err) + ")");
}

caf::error store::update_pressure() {
  auto g = map_geometry();
  if (!g)
    return g.error();
  // Free pages inside the file: the free list (database 0) maps transaction ids to lists of page
  // numbers, each list a size_t count followed by that many page numbers.
  MDB_txn* txn = nullptr;
  if (int rc = lmdb_->txn_begin(env_, nullptr, MDB_RDONLY, &txn); rc != 0)
    return lmdb_error(rc, "store: beginning a read transaction");
  MDB_cursor* c = nullptr;
  uint64_t free_pages = 0;
  int rc = lmdb_->cursor_open(txn, 0, &c);
  if (rc == 0) {
    MDB_val k, v;
    for (rc = lmdb_->cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = lmdb_->cursor_get(c, &k, &v, MDB_NEXT))
      if (v.mv_size >= sizeof(size_t))
        free_pages += get_native64(v);
    mdb_cursor_close(c);
  }
  mdb_txn_abort(txn);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: reading the free list");
  uint64_t capacity = options_.map_size / g->page_size;
  uint64_t file_pages = g->file_pages;
  uint64_t used = file_pages - std::min(file_pages, free_pages);
  // Intake stops with a reserve of a sixteenth of the map (at least 4 MiB, but never more than an
  // eighth of the map, or a small map would never leave pressure) left for the steps that free
  // room; it resumes once twice that is free again.
  uint64_t floor = std::min<uint64_t>((uint64_t{4} << 20) / g->page_size, capacity / 8);
  uint64_t reserve = std::max<uint64_t>(capacity / 16, floor);
  bool was = pressure_;
  if (!pressure_ && used + reserve >= capacity)
    pressure_ = true;
  else if (pressure_ && used + 2 * reserve < capacity)
    pressure_ = false;
  impl_->pressure = pressure_;
  if (was && !pressure_) {
    // LMDB reuses the pages a transaction freed only once a later transaction committed (the
    // previous meta page may still point at them). When everything waited on the full map, the
    // last commit was the one that freed room: commit a small one, so intake can use that room.
    auto stamp = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count());
    if (auto err = put_meta("room_made_at", stamp))
      return err;
  }
  return {};
}

caf::error store::put_meta(std::string_view key, std::string_view value) {
  if (failed_)
    return failed_;
  auto& d = *impl_;
  if (auto err = d.begin(env_))
    return err;
  MDB_val k = to_val(key), v = to_val(value);
  if (int rc = lmdb_->put(d.txn, d.meta, &k, &v, 0); rc != 0) {
    d.abort();
    return lmdb_error(rc, "store: writing meta " + std::string{key});
  }
  if (auto err = d.commit())
    return err;
  count_commit();
  return {};
}

std::vector<std::string> data_dir_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const char* name : {"data.mdb", "lock.mdb", marker_file})
    if (fs::exists(fs::path(dir) / name, ec))
      out.emplace_back(name);
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename().string().rfind("crashed-", 0) == 0)
      out.push_back(entry.path().filename().string());
  if (fs::exists(fs::path(dir) / "troupe.lock", ec))
    out.emplace_back("troupe.lock");
  return out;
}

std::unique_ptr<store_reader> store::reader() {
  return std::unique_ptr<store_reader>{new store_reader(*this)};
}

} // namespace troupe
