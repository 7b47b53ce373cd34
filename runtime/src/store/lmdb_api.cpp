#include "store/lmdb_api.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace troupe {

lmdb_api::~lmdb_api() = default;

bool lmdb_note_map(MDB_env* env, lmdb_map& out) {
  mdb_filehandle_t fd;
  struct stat file;
  if (mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &file) != 0)
    return false;
  std::ifstream maps{"/proc/self/maps"};
  std::string line;
  while (std::getline(maps, line)) {
    // begin-end perms offset major:minor inode path
    unsigned long long begin, end, offset, inode;
    unsigned major, minor;
    char perms[8];
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu", &begin, &end, perms, &offset,
                    &major, &minor, &inode) != 7)
      continue;
    if (inode == file.st_ino && makedev(major, minor) == file.st_dev && offset == 0) {
      out.begin = begin;
      out.end = end;
      mdb_env_set_userctx(env, &out);
      return true;
    }
  }
  return false;
}

bool lmdb_in_file(MDB_txn* txn, const MDB_val& v) {
  MDB_env* env = mdb_txn_env(txn);
  auto* map = static_cast<const lmdb_map*>(mdb_env_get_userctx(env));
  auto at = reinterpret_cast<uintptr_t>(v.mv_data);
  if (!map || at < map->begin || at >= map->end)
    return true; // not bounded, or a dirty page of this write transaction
  MDB_envinfo info;
  MDB_stat st;
  if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0)
    return false;
  uint64_t file_end = (static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
  return v.mv_size <= file_end && at - map->begin <= file_end - v.mv_size;
}

int lmdb_api::get(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data) {
  int rc = mdb_get(txn, dbi, key, data);
  if (rc == 0 && !lmdb_in_file(txn, *data))
    return MDB_CORRUPTED;
  return rc;
}

int lmdb_api::cursor_get(MDB_cursor* cursor, MDB_val* key, MDB_val* data, MDB_cursor_op op) {
  int rc = mdb_cursor_get(cursor, key, data, op);
  if (rc == 0 && (!lmdb_in_file(mdb_cursor_txn(cursor), *key) ||
                  !lmdb_in_file(mdb_cursor_txn(cursor), *data)))
    return MDB_CORRUPTED;
  return rc;
}

std::shared_ptr<lmdb_api> default_lmdb() {
  static auto api = std::make_shared<lmdb_api>();
  return api;
}

void faulty_lmdb::fail(call c, int rc, int count, int skip) {
  auto& f = slot(c);
  f.rc = rc;
  f.skip = skip;
  f.remaining = count;
}

void faulty_lmdb::fail_get_of(std::string needle, int rc, int count) {
  get_needle_ = std::move(needle);
  get_of_.rc = rc;
  get_of_.remaining = count;
}

void faulty_lmdb::clear() {
  for (auto& f : faults_) {
    f.remaining = 0;
    f.skip = 0;
  }
  get_of_.remaining = 0;
}

int faulty_lmdb::inject(call c) {
  auto& f = slot(c);
  if (f.remaining.load() <= 0)
    return 0;
  if (f.skip.load() > 0 && f.skip.fetch_sub(1) > 0)
    return 0;
  if (f.remaining.fetch_sub(1) <= 0)
    return 0;
  ++f.failed;
  return f.rc.load();
}

int faulty_lmdb::env_open(MDB_env* env, const char* path, unsigned flags, mdb_mode_t mode) {
  if (int rc = inject(call::env_open))
    return rc;
  return lmdb_api::env_open(env, path, flags, mode);
}
int faulty_lmdb::env_sync(MDB_env* env, int force) {
  if (int rc = inject(call::env_sync))
    return rc;
  return lmdb_api::env_sync(env, force);
}
int faulty_lmdb::txn_begin(MDB_env* env, MDB_txn* parent, unsigned flags, MDB_txn** txn) {
  if (int rc = inject(call::txn_begin))
    return rc;
  return lmdb_api::txn_begin(env, parent, flags, txn);
}
int faulty_lmdb::txn_commit(MDB_txn* txn) {
  if (int rc = inject(call::txn_commit)) {
    mdb_txn_abort(txn); // a failed commit frees the transaction, as LMDB's does
    return rc;
  }
  return lmdb_api::txn_commit(txn);
}
int faulty_lmdb::txn_renew(MDB_txn* txn) {
  if (int rc = inject(call::txn_renew))
    return rc;
  return lmdb_api::txn_renew(txn);
}
int faulty_lmdb::dbi_open(MDB_txn* txn, const char* name, unsigned flags, MDB_dbi* dbi) {
  if (int rc = inject(call::dbi_open))
    return rc;
  return lmdb_api::dbi_open(txn, name, flags, dbi);
}
int faulty_lmdb::stat(MDB_txn* txn, MDB_dbi dbi, MDB_stat* stat) {
  if (int rc = inject(call::stat))
    return rc;
  return lmdb_api::stat(txn, dbi, stat);
}
int faulty_lmdb::get(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data) {
  if (int rc = inject(call::get))
    return rc;
  if (get_of_.remaining.load() > 0 && !get_needle_.empty() &&
      std::string_view{static_cast<const char*>(key->mv_data), key->mv_size}.find(get_needle_) !=
        std::string_view::npos &&
      get_of_.remaining.fetch_sub(1) > 0) {
    ++slot(call::get).failed;
    return get_of_.rc.load();
  }
  return lmdb_api::get(txn, dbi, key, data);
}
int faulty_lmdb::put(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data, unsigned flags) {
  if (int rc = inject(call::put))
    return rc;
  return lmdb_api::put(txn, dbi, key, data, flags);
}
int faulty_lmdb::del(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data) {
  if (int rc = inject(call::del))
    return rc;
  return lmdb_api::del(txn, dbi, key, data);
}
int faulty_lmdb::cursor_open(MDB_txn* txn, MDB_dbi dbi, MDB_cursor** cursor) {
  if (int rc = inject(call::cursor_open))
    return rc;
  return lmdb_api::cursor_open(txn, dbi, cursor);
}
int faulty_lmdb::cursor_get(MDB_cursor* cursor, MDB_val* key, MDB_val* data, MDB_cursor_op op) {
  if (int rc = inject(call::cursor_get))
    return rc;
  return lmdb_api::cursor_get(cursor, key, data, op);
}
int faulty_lmdb::cursor_put(MDB_cursor* cursor, MDB_val* key, MDB_val* data, unsigned flags) {
  if (int rc = inject(call::cursor_put))
    return rc;
  return lmdb_api::cursor_put(cursor, key, data, flags);
}
int faulty_lmdb::cursor_del(MDB_cursor* cursor, unsigned flags) {
  if (int rc = inject(call::cursor_del))
    return rc;
  return lmdb_api::cursor_del(cursor, flags);
}

} // namespace troupe
