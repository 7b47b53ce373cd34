// (a) The baseline: what LMDB alone does with the same appends, batch size and durability as
// the store, and nothing else (no envelopes, no actors, no cursors, no state, no trimming).
//
// Same environment flags as store.cpp: MDB_NOTLS, no MDB_WRITEMAP; `process` adds MDB_NOSYNC
// and, as the node's writer does at `process`, forces the OS buffers to disk every second
// (flush_interval's default) and once at the end; `sync` uses LMDB's default, an fsync per
// commit. One MDB_INTEGERKEY database; each transaction appends `batch` values of `value_size`
// bytes under consecutive 64-bit keys through a cursor with MDB_APPEND (as store.cpp does).
#include "phase.hpp"

#include <lmdb.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace troupe::bench {

namespace {

std::string lmdb_failure(const char* what, int rc) {
  return std::string{what} + ": " + mdb_strerror(rc);
}

// Owns the environment so every return path closes it.
struct env_guard {
  MDB_env* env = nullptr;
  ~env_guard() {
    if (env)
      mdb_env_close(env);
  }
};

} // namespace

void measure_data_file(const std::string& dir, phase_result& r) {
  struct stat st {};
  if (::stat((dir + "/data.mdb").c_str(), &st) == 0) {
    r.file_bytes = static_cast<uint64_t>(st.st_size);
    r.disk_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  }
}

phase_result run_raw_lmdb(const phase_options& o) {
  phase_result r;
  auto dir = o.dir + "/data";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    r.fail("cannot create " + dir + ": " + ec.message());
    return r;
  }
  env_guard g;
  int rc = mdb_env_create(&g.env);
  if (rc != 0) {
    g.env = nullptr;
    r.fail(lmdb_failure("mdb_env_create", rc));
    return r;
  }
  if ((rc = mdb_env_set_mapsize(g.env, size_t{64} << 30)) != 0) {
    r.fail(lmdb_failure("mdb_env_set_mapsize", rc));
    return r;
  }
  if ((rc = mdb_env_set_maxdbs(g.env, 1)) != 0) {
    r.fail(lmdb_failure("mdb_env_set_maxdbs", rc));
    return r;
  }
  unsigned flags = MDB_NOTLS;
  if (o.mode == durability::process)
    flags |= MDB_NOSYNC;
  if ((rc = mdb_env_open(g.env, dir.c_str(), flags, 0644)) != 0) {
    r.fail(lmdb_failure("mdb_env_open", rc));
    return r;
  }

  MDB_dbi dbi;
  {
    MDB_txn* txn = nullptr;
    if ((rc = mdb_txn_begin(g.env, nullptr, 0, &txn)) != 0) {
      r.fail(lmdb_failure("mdb_txn_begin", rc));
      return r;
    }
    if ((rc = mdb_dbi_open(txn, "log", MDB_INTEGERKEY | MDB_CREATE, &dbi)) != 0 ||
        (rc = mdb_txn_commit(txn)) != 0) {
      r.fail(lmdb_failure("creating the database", rc));
      return r;
    }
  }

  std::vector<char> value(o.value_size, 'x');
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  auto deadline = start + o.budget;
  auto next_flush = start + std::chrono::seconds{1};
  uint64_t seq = 0;
  while (seq < o.records) {
    MDB_txn* txn = nullptr;
    if ((rc = mdb_txn_begin(g.env, nullptr, 0, &txn)) != 0) {
      r.fail(lmdb_failure("mdb_txn_begin", rc));
      return r;
    }
    MDB_cursor* cur = nullptr;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0) {
      mdb_txn_abort(txn);
      r.fail(lmdb_failure("mdb_cursor_open", rc));
      return r;
    }
    auto end = std::min<uint64_t>(o.records, seq + o.batch);
    for (; seq < end; ++seq) {
      size_t key = seq;
      std::memcpy(value.data(), &seq, std::min<size_t>(sizeof seq, value.size()));
      MDB_val k{sizeof key, &key};
      MDB_val v{value.size(), value.data()};
      if ((rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND)) != 0) {
        mdb_txn_abort(txn);
        r.fail(lmdb_failure("mdb_cursor_put", rc));
        return r;
      }
    }
    mdb_cursor_close(cur);
    if ((rc = mdb_txn_commit(txn)) != 0) {
      r.fail(lmdb_failure("mdb_txn_commit", rc));
      return r;
    }
    auto now = clock::now();
    if (o.mode == durability::process && now >= next_flush) {
      if ((rc = mdb_env_sync(g.env, 1)) != 0) {
        r.fail(lmdb_failure("mdb_env_sync", rc));
        return r;
      }
      next_flush = clock::now() + std::chrono::seconds{1};
    }
    if (now >= deadline && seq < o.records) {
      r.stopped_at_budget = true;
      break;
    }
  }
  if ((rc = mdb_env_sync(g.env, 1)) != 0) { // the node's writer flushes at shutdown too
    r.fail(lmdb_failure("mdb_env_sync", rc));
    return r;
  }
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  r.records = seq;
  r.record_bytes = o.value_size;
  measure_data_file(dir, r);
  return r;
}

} // namespace troupe::bench
