// Room and durability: flushing to disk (a failed flush is sticky), telling a full file system
// from other I/O errors, measuring how full the map is (pressure), and small meta writes.
#include "store/store_impl.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace troupe {

using namespace store_format;

namespace {

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

namespace {

// The oldest transaction a reader of this environment still reads (SIZE_MAX: none). LMDB tells it
// only as text: a header line, then "pid thread txnid" per reader slot, txnid "-" when idle.
size_t oldest_reader(MDB_env* env) {
  size_t oldest = SIZE_MAX;
  mdb_reader_list(
    env,
    [](const char* line, void* ctx) -> int {
      auto* out = static_cast<size_t*>(ctx);
      unsigned long long pid = 0, txnid = 0;
      char thread[32];
      if (std::sscanf(line, "%llu %31s %llu", &pid, thread, &txnid) == 3)
        *out = std::min<size_t>(*out, static_cast<size_t>(txnid));
      return 0;
    },
    &oldest);
  return oldest;
}

} // namespace

caf::error store::update_pressure() {
  auto g = map_geometry();
  if (!g)
    return g.error();
  // Free pages inside the file: the free list (database 0) maps transaction ids to lists of page
  // numbers, each list a size_t count followed by that many page numbers.
  MDB_txn* txn = nullptr;
  if (int rc = lmdb_->txn_begin(env_, nullptr, MDB_RDONLY, &txn); rc != 0)
    return lmdb_error(rc, "store: beginning a read transaction");
  // The pages the last commit freed are listed under its id; the next write transaction cannot use
  // them yet (LMDB keeps them for one more commit: see recycle_freed), so they are not room for
  // the steps about to commit.
  // So are the pages freed since the oldest snapshot a reader still holds.
  size_t last_txn = std::min<size_t>(mdb_txn_id(txn), oldest_reader(env_));
  MDB_cursor* c = nullptr;
  uint64_t free_pages = 0, pending_pages = 0;
  int rc = lmdb_->cursor_open(txn, 0, &c);
  if (rc == 0) {
    MDB_val k, v;
    for (rc = lmdb_->cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = lmdb_->cursor_get(c, &k, &v, MDB_NEXT)) {
      if (v.mv_size < sizeof(size_t))
        continue;
      free_pages += get_native64(v);
      if (k.mv_size == sizeof(size_t) && get_native64(k) >= last_txn)
        pending_pages += get_native64(v);
    }
    mdb_cursor_close(c);
  }
  mdb_txn_abort(txn);
  if (rc != 0 && rc != MDB_NOTFOUND)
    return lmdb_error(rc, "store: reading the free list");
  uint64_t capacity = g->map_size / g->page_size;
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
  uint64_t room = capacity - std::min(capacity, used + pending_pages);
  reserve_bytes_ = reserve * g->page_size;
  grown_since_measure_ = 0;
  growth_budget_ = room > reserve / 2 ? (room - reserve / 2) * g->page_size : 0;
  if (was && !pressure_)
    return recycle_freed();
  return {};
}

caf::error store::recycle_freed() {
  // LMDB reuses the pages a transaction freed only once a later transaction committed (the
  // previous meta page may still point at them). When everything waited on the full map, the last
  // commit was the one that freed room: a small commit makes that room usable.
  auto stamp = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count());
  return put_meta("room_made_at", stamp);
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

} // namespace troupe
