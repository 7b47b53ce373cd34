// Opening the store: the data dir's checks, the environment and the databases (the load of the
// writer's in-memory view is store_load.cpp), and finding edges, stages and groups by name.
#include "store/store_impl.hpp"

#include "base/log.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace troupe {

using namespace store_format;

namespace {

// A fault for the power-cut tests to find (tests/powercut/README.md), never for use:
// TROUPE_TEST_FAULT=skip-meta-sync opens the store with MDB_NOMETASYNC, which drops the one
// fdatasync LMDB makes after writing a commit's meta page. A power cut then loses the last
// commit although its records were acknowledged; the tests prove they see that.
// TROUPE_TEST_FAULT=crash-in-verify makes the child that verifies a data file after an unclean
// end die of SIGSEGV, as LMDB can on noise: the tests prove the node reports it as damage.
caf::expected<unsigned> test_fault_flags() {
  const char* fault = std::getenv("TROUPE_TEST_FAULT");
  if (!fault || !*fault)
    return 0u;
  if (std::string_view(fault) == "crash-in-verify")
    return 0u; // store_recover.cpp
  if (std::string_view(fault) != "skip-meta-sync")
    return invalid(std::string("TROUPE_TEST_FAULT=") + fault +
                   " is not a fault troupe knows (only skip-meta-sync and crash-in-verify, for "
                   "tests)");
  log_event(log_level::warn, "store",
            "TROUPE_TEST_FAULT=skip-meta-sync: commits are not durable (a test fault)");
  return static_cast<unsigned>(MDB_NOMETASYNC);
}

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

} // namespace

namespace {

// The most bytes a chunk of several records takes (see store::impl::chunk_bytes). A chunk bigger
// than half a page is an LMDB value on a run of contiguous overflow pages (8-aligned, so records
// are read in place). Once a map's file reached the end of the map, every page comes from the free
// list, where long runs are rare: a small map would fill with free pages no chunk can use, and
// stall. So in a map below 256 MiB a chunk takes at most one overflow page (the page less its
// 16-byte header); a larger map keeps most of its room as never-used pages at its end for long,
// and gets chunks of a 2048th of it (128 KiB to 1 MiB).
size_t chunk_cap(uint64_t map_size) {
  if (map_size < (uint64_t{256} << 20))
    return static_cast<size_t>(sysconf(_SC_PAGESIZE)) - 16; // LMDB's page size, less its header
  return static_cast<size_t>(
    std::clamp<uint64_t>(map_size / 2048, uint64_t{128} << 10, uint64_t{1} << 20));
}

} // namespace

store::store(store_options options, store_layout layout)
  : options_(std::move(options)), layout_(std::move(layout)), impl_(std::make_unique<impl>()) {
  lmdb_ = options_.lmdb ? options_.lmdb : default_lmdb();
  impl_->api = lmdb_.get();
  impl_->layout = &layout_;
  impl_->chunk_bytes = chunk_cap(options_.map_size);
  auto n = layout_.edges.size();
  backlog_records_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  backlog_bytes_ = std::make_unique<std::atomic<uint64_t>[]>(n);
}

store::~store() {
  if (impl_ && impl_->txn)
    impl_->abort();
  // A clean close, after the last flush, empties troupe.lock's note: the next open need not
  // verify the data file (store_recover.cpp).
  if (noted_open_ && env_ &&
      (options_.mode == durability::sync || (!failed_ && lmdb_->env_sync(env_, 1) == 0)))
    if (::ftruncate(lock_fd_, 0) != 0)
      log_event(log_level::warn, "store",
                std::string{"cannot empty troupe.lock: "} + std::strerror(errno) +
                  " (the next open verifies the data file)");
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
  if (auto err = s->verify_after_unclean_end())
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
  if (auto err = s->note_open())
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
    return make_error(errc::store_io, "store: the data dir " + options_.dir + " is in use: " + why);
  }
  // What the last run left in it: a line while it had the store open (store_recover.cpp).
  char buf[512];
  ssize_t n = ::pread(lock_fd_, buf, sizeof buf, 0);
  last_run_.assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return {};
}

// A data dir that held a store must still hold its data file: LMDB would take a missing or
// empty one for a new store and start from nothing.
caf::error store::check_dir() {
  bool data_exists = false, lock_exists = false, marker_exists = false;
  auto data_size = file_size(options_.dir + "/data.mdb", data_exists);
  file_size(options_.dir + "/lock.mdb", lock_exists);
  file_size(options_.dir + "/" + marker_file, marker_exists);
  held_store_ = marker_exists;
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
  auto fault = test_fault_flags();
  if (!fault)
    return fault.error();
  flags |= *fault;
  if ((rc = api.env_open(env_, options_.dir.c_str(), flags, 0644)) != 0) {
    if (rc == MDB_INVALID || rc == MDB_CORRUPTED) // no meta page LMDB can read (a power cut, say)
      return damaged("store: LMDB cannot open " + options_.dir + ": " + mdb_strerror(rc));
    return lmdb_error(rc, "store: opening the LMDB environment in '" + options_.dir + "'");
  }
  lmdb_note_map(env_, map_);
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
  return geometry{static_cast<uint64_t>(info.me_last_pgno) + 1, st.ms_psize,
                  static_cast<uint64_t>(info.me_mapsize)};
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

std::vector<std::string> data_dir_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const char* name : {"data.mdb", "lock.mdb", marker_file, "admin.json"})
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
