// The seam between the store and LMDB, in the manner of LevelDB's Env: every checked mdb_* call
// the store makes goes through one virtual here, so a test can make any of them fail (EIO,
// ENOSPC, MDB_MAP_FULL, MDB_CORRUPTED ...) and check that the store reports it as an error,
// never as absence, and that nothing committed is lost. The default forwards to LMDB.
//
// Calls that cannot fail in LMDB's API (txn_abort, txn_reset, cursor_close, env_close) are not
// part of the seam. Thread-safety is LMDB's: one object is shared by the writer and readers.
#pragma once

#include <lmdb.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace troupe {

class lmdb_api {
public:
  virtual ~lmdb_api();

  virtual int env_create(MDB_env** env) { return mdb_env_create(env); }
  virtual int env_set_mapsize(MDB_env* env, size_t size) { return mdb_env_set_mapsize(env, size); }
  virtual int env_set_maxdbs(MDB_env* env, MDB_dbi n) { return mdb_env_set_maxdbs(env, n); }
  virtual int env_set_maxreaders(MDB_env* env, unsigned n) { return mdb_env_set_maxreaders(env, n); }
  virtual int env_open(MDB_env* env, const char* path, unsigned flags, mdb_mode_t mode) {
    return mdb_env_open(env, path, flags, mode);
  }
  virtual int env_sync(MDB_env* env, int force) { return mdb_env_sync(env, force); }
  virtual int env_info(MDB_env* env, MDB_envinfo* info) { return mdb_env_info(env, info); }
  virtual int env_stat(MDB_env* env, MDB_stat* stat) { return mdb_env_stat(env, stat); }
  virtual int reader_check(MDB_env* env, int* dead) { return mdb_reader_check(env, dead); }
  virtual int txn_begin(MDB_env* env, MDB_txn* parent, unsigned flags, MDB_txn** txn) {
    return mdb_txn_begin(env, parent, flags, txn);
  }
  virtual int txn_commit(MDB_txn* txn) { return mdb_txn_commit(txn); }
  virtual int txn_renew(MDB_txn* txn) { return mdb_txn_renew(txn); }
  virtual int dbi_open(MDB_txn* txn, const char* name, unsigned flags, MDB_dbi* dbi) {
    return mdb_dbi_open(txn, name, flags, dbi);
  }
  virtual int stat(MDB_txn* txn, MDB_dbi dbi, MDB_stat* stat) { return mdb_stat(txn, dbi, stat); }
  // get and cursor_get answer MDB_CORRUPTED for a value that would run past the end of the
  // data file (see lmdb_in_file below) instead of handing it out.
  virtual int get(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data);
  virtual int put(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data, unsigned flags) {
    return mdb_put(txn, dbi, key, data, flags);
  }
  virtual int del(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data) {
    return mdb_del(txn, dbi, key, data);
  }
  virtual int cursor_open(MDB_txn* txn, MDB_dbi dbi, MDB_cursor** cursor) {
    return mdb_cursor_open(txn, dbi, cursor);
  }
  virtual int cursor_get(MDB_cursor* cursor, MDB_val* key, MDB_val* data, MDB_cursor_op op);
  virtual int cursor_put(MDB_cursor* cursor, MDB_val* key, MDB_val* data, unsigned flags) {
    return mdb_cursor_put(cursor, key, data, flags);
  }
  virtual int cursor_del(MDB_cursor* cursor, unsigned flags) {
    return mdb_cursor_del(cursor, flags);
  }
};

// Where an environment's data file is mapped: found once after mdb_env_open by lmdb_note_map,
// which makes it the environment's user context (mdb_env_set_userctx). It must outlive the env.
struct lmdb_map {
  uintptr_t begin = 0, end = 0;
};
// Finds `env`'s data file in /proc/self/maps (LMDB does not tell where it mapped it); false when
// it is not there, and then values are not bounded.
bool lmdb_note_map(MDB_env* env, lmdb_map& out);

// Whether `v`, as LMDB handed it out in `txn`, lies where it may: inside the map below the end of
// the last page the data file holds, or outside the map altogether (a page this write transaction
// made, in memory). LMDB trusts its pages: a damaged size in a node makes a value that runs past
// the end of the file, and reading it (to check its checksum) dies of SIGBUS. So every value is
// bounded before anyone reads it.
bool lmdb_in_file(MDB_txn* txn, const MDB_val& v);

// The LMDB the store uses when its options name none.
std::shared_ptr<lmdb_api> default_lmdb();

// For tests: forwards to LMDB, except that the next `count` calls of one kind fail with `rc`
// (after `skip` calls of that kind succeed). Settable from any thread while the store runs.
class faulty_lmdb : public lmdb_api {
public:
  enum class call {
    env_open, env_sync, txn_begin, txn_commit, txn_renew, dbi_open, get, put, del,
    cursor_open, cursor_get, cursor_put, cursor_del, stat, count_
  };
  void fail(call c, int rc, int count = 1, int skip = 0);
  // Only `get` calls whose key contains `needle` fail (the next `count` of them), e.g. the reads
  // of one state key. Set before the store runs; clear() removes it.
  void fail_get_of(std::string needle, int rc, int count);
  void clear();
  int failures(call c) const { return slot(c).failed.load(); } // calls failed so far

  int env_open(MDB_env* env, const char* path, unsigned flags, mdb_mode_t mode) override;
  int env_sync(MDB_env* env, int force) override;
  int txn_begin(MDB_env* env, MDB_txn* parent, unsigned flags, MDB_txn** txn) override;
  int txn_commit(MDB_txn* txn) override;
  int txn_renew(MDB_txn* txn) override;
  int dbi_open(MDB_txn* txn, const char* name, unsigned flags, MDB_dbi* dbi) override;
  int stat(MDB_txn* txn, MDB_dbi dbi, MDB_stat* stat) override;
  int get(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data) override;
  int put(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data, unsigned flags) override;
  int del(MDB_txn* txn, MDB_dbi dbi, MDB_val* key, MDB_val* data) override;
  int cursor_open(MDB_txn* txn, MDB_dbi dbi, MDB_cursor** cursor) override;
  int cursor_get(MDB_cursor* cursor, MDB_val* key, MDB_val* data, MDB_cursor_op op) override;
  int cursor_put(MDB_cursor* cursor, MDB_val* key, MDB_val* data, unsigned flags) override;
  int cursor_del(MDB_cursor* cursor, unsigned flags) override;

private:
  struct fault {
    std::atomic<int> rc{0}, remaining{0}, skip{0}, failed{0};
  };
  fault& slot(call c) { return faults_[static_cast<size_t>(c)]; }
  const fault& slot(call c) const { return faults_[static_cast<size_t>(c)]; }
  // The injected code when this call should fail, else 0.
  int inject(call c);

  std::array<fault, static_cast<size_t>(call::count_)> faults_;
  std::string get_needle_; // empty: gets fail by count alone
  fault get_of_;
};

} // namespace troupe
