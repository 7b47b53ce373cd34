// `troupe check`: see store_check.hpp. Read-only: the environment is opened with MDB_RDONLY.
// Each database is read in a read transaction of its own (LMDB fails a transaction for good once
// it met a bad page, and the walk goes on), so on a node that is running, heads and logs may
// come from different commits: check a stopped node's data dir (`troupe check` says so when the
// node's lock is held).
#include "store/store_check.hpp"

#include "store/format.hpp"
#include "store/store_impl.hpp"

#include <fcntl.h>
#include <lmdb.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

namespace fs = std::filesystem;

namespace troupe {

using namespace store_format;

namespace {

std::string rc_text(int rc) { return mdb_strerror(rc); }

struct walker {
  check_report& report;
  MDB_txn* txn = nullptr;
  std::map<std::pair<std::string, partition_id>, head_body> heads;

  void problem(std::string what) { report.problems.push_back(std::move(what)); }

  // Calls fn(key, value) for every entry of `dbi`; false when reading failed.
  template <class F>
  bool each(MDB_dbi dbi, const std::string& name, F&& fn) {
    MDB_cursor* c = nullptr;
    if (int rc = mdb_cursor_open(txn, dbi, &c); rc != 0) {
      problem(name + ": cannot be read: " + rc_text(rc));
      return false;
    }
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      if (!lmdb_in_file(txn, k) || !lmdb_in_file(txn, v)) {
        rc = MDB_CORRUPTED; // a damaged size: reading the entry would run past the file's end
        break;
      }
      ++report.entries;
      fn(to_view(k), to_view(v));
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND) {
      problem(name + ": reading stopped: " + rc_text(rc));
      return false;
    }
    return true;
  }

  static std::string edge_of(std::string_view key, size_t tail_size) {
    return std::string{key.substr(0, key.size() - tail_size)};
  }

  // LMDB's free list (database 0): each entry, keyed by the transaction that freed them, is a
  // count and that many page numbers, in descending order, of pages the file holds. LMDB's writer
  // trusts it: merging a list of noise (a power cut at `process` can leave one) crashes it.
  // The number of pages it lists, or nothing when it could not be read whole.
  std::optional<size_t> check_free_list(size_t last_pgno, size_t last_txnid) {
    size_t lists = 0, pages = 0;
    size_t problems_before = report.problems.size();
    bool ok = each(0, "the free list", [&](std::string_view k, std::string_view v) {
      size_t txnid = 0, count = 0;
      if (k.size() == sizeof txnid)
        std::memcpy(&txnid, k.data(), sizeof txnid);
      if (v.size() >= sizeof count)
        std::memcpy(&count, v.data(), sizeof count);
      auto where = "the free list's entry " + std::to_string(++lists);
      if (k.size() != sizeof txnid || txnid > last_txnid) {
        problem(where + ": a key that names no past transaction");
        return;
      }
      if (v.size() % sizeof count != 0 || v.size() / sizeof count != count + 1) {
        problem(where + ": " + std::to_string(v.size()) + " bytes cannot hold its count of " +
                std::to_string(count) + " pages");
        return;
      }
      size_t previous = last_pgno + 1;
      for (size_t i = 1; i <= count; ++i) {
        size_t pgno = 0;
        std::memcpy(&pgno, v.data() + i * sizeof pgno, sizeof pgno);
        if (pgno < 2 || pgno >= previous) { // pages 0 and 1 are the meta pages
          problem(where + ": page " + std::to_string(pgno) +
                  (pgno > last_pgno ? " is past the file's last page"
                                    : " is out of order or a meta page"));
          return;
        }
        previous = pgno;
      }
      pages += count;
    });
    if (!ok || report.problems.size() != problems_before)
      return std::nullopt;
    report.notes.push_back("free list: " + std::to_string(pages) + " pages in " +
                           std::to_string(lists) + " lists");
    return pages;
  }

  // LMDB's own audit (mdb_audit, run at commit in its debug builds): every page of the file up
  // to the last is a meta page, a page of some database (the free list and the list of databases
  // included) or a free one. A file of old and new pages (a power cut at `process`) rarely adds
  // up, and a free list that names pages still in use, which the writer would overwrite, never.
  void check_page_count(MDB_env* env, const std::vector<std::string>& names, size_t free_pages,
                        size_t last_pgno) {
    if (txn)
      mdb_txn_abort(txn);
    txn = nullptr;
    if (int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn); rc != 0) {
      problem("cannot begin a read transaction: " + rc_text(rc));
      return;
    }
    size_t in_use = 0;
    auto count = [&](MDB_dbi dbi) {
      MDB_stat st;
      if (mdb_stat(txn, dbi, &st) != 0)
        return false;
      in_use += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
      return true;
    };
    bool ok = count(0) && count(1); // the free list and the list of databases
    for (const auto& name : names) {
      MDB_dbi dbi = 0;
      ok = ok && mdb_dbi_open(txn, name.c_str(), 0, &dbi) == 0 && count(dbi);
    }
    if (!ok) // the walk reported what could not be read
      return;
    if (2 + in_use + free_pages != last_pgno + 1)
      problem("the file's pages do not add up: " + std::to_string(in_use) +
              " in use by the databases and " + std::to_string(free_pages) +
              " free, with the 2 meta pages, make " + std::to_string(2 + in_use + free_pages) +
              ", but LMDB's meta page says " + std::to_string(last_pgno + 1));
  }

  void check_heads(MDB_dbi dbi) {
    each(dbi, "heads", [&](std::string_view k, std::string_view v) {
      if (k.size() < 6 || k[k.size() - 5] != '\0') {
        problem("heads: a key of " + std::to_string(k.size()) + " bytes that names no partition");
        return;
      }
      auto edge = edge_of(k, 5);
      auto p = get_be32(k.data() + k.size() - 4);
      auto body = unseal(k, v);
      auto h = body ? decode_head(*body) : std::nullopt;
      if (!h) {
        problem("heads: the head record of partition " + std::to_string(p) + " of edge '" + edge +
                "' failed its checksum");
        return;
      }
      heads[{edge, p}] = *h;
    });
  }

  void check_cursors(MDB_dbi dbi) {
    each(dbi, "cursors", [&](std::string_view k, std::string_view v) {
      auto nul = k.find('\0');
      if (nul == std::string_view::npos || k.size() < nul + 6) {
        problem("cursors: a key that names no edge, group and partition");
        return;
      }
      std::string edge{k.substr(0, nul)};
      std::string group{k.substr(nul + 1, k.size() - nul - 6)};
      auto p = get_be32(k.data() + k.size() - 4);
      auto where = "the cursor of group '" + group + "' on partition " + std::to_string(p) +
                   " of edge '" + edge + "'";
      auto body = unseal(k, v);
      auto c = body ? decode_cursor(*body) : std::nullopt;
      if (!c) {
        problem("cursors: " + where + " failed its checksum");
        return;
      }
      auto h = heads.find({edge, p});
      if (h != heads.end() && c->next > h->second.head)
        problem("cursors: " + where + " is at " + std::to_string(c->next) +
                ", past the partition's head " + std::to_string(h->second.head));
    });
  }

  void check_sealed(MDB_dbi dbi, const std::string& name) {
    uint64_t bad = 0, first_bad = 0, n = 0;
    each(dbi, name, [&](std::string_view k, std::string_view v) {
      if (!unseal(k, v) && bad++ == 0)
        first_bad = n;
      ++n;
    });
    if (bad > 0)
      problem(name + ": " + std::to_string(bad) + " of " + std::to_string(n) +
              " values failed their checksum (the first is entry " + std::to_string(first_bad) +
              ")");
  }

  void check_log(MDB_dbi dbi, const std::string& edge) {
    // Where each partition's next chunk must start; unknown after a damaged chunk.
    std::map<partition_id, std::optional<uint64_t>> next;
    std::map<partition_id, uint64_t> chunks;
    auto name = "log/" + edge;
    each(dbi, name, [&](std::string_view k, std::string_view v) {
      if (k.size() != log_key_size) {
        problem(name + ": a key of " + std::to_string(k.size()) + " bytes, not 12");
        return;
      }
      auto p = log_key_partition(k.data());
      auto first = log_key_seq(k.data());
      auto where = name + " partition " + std::to_string(p) + ", chunk at " + std::to_string(first);
      auto h = heads.find({edge, p});
      if (!next.count(p)) {
        auto tail = h == heads.end() ? 0 : h->second.tail;
        if (first != tail)
          problem(where + ": the partition's first chunk should start at its tail " +
                  std::to_string(tail));
      } else if (next[p] && first != *next[p]) {
        problem(where + ": expected a chunk at " + std::to_string(*next[p]) + " (records " +
                std::to_string(*next[p]) + " to " + std::to_string(first) + " are missing or " +
                "overlap)");
      }
      chunk_view chunk;
      if (chunk.parse(k, v) != chunk_view::status::ok) {
        problem(where + ": damaged (checksum or shape)");
        next[p] = std::nullopt; // its length is not known
        return;
      }
      report.records += chunk.count();
      next[p] = first + chunk.count();
      ++chunks[p];
    });
    for (const auto& [key, h] : heads) {
      if (key.first != edge)
        continue;
      auto at = next.count(key.second) ? next[key.second] : std::optional<uint64_t>{h.tail};
      if (at && *at != h.head)
        problem(name + " partition " + std::to_string(key.second) + ": its records end at " +
                std::to_string(*at) + " but its head says " + std::to_string(h.head));
    }
  }
};

} // namespace

check_report check_data_dir(const std::string& dir, bool stopped) {
  check_report report;
  std::error_code ec;
  auto data = fs::path(dir) / "data.mdb";
  if (!fs::exists(dir, ec)) {
    report.no_store = true; // an app that never ran here: nothing is damaged
    return report;
  }
  if (!fs::is_directory(dir, ec)) {
    report.problems.push_back(dir + " is not a directory");
    return report;
  }
  bool traces = false;
  for (const char* name : {"data.mdb", "lock.mdb", "troupe.store"})
    traces = traces || fs::exists(fs::path(dir) / name, ec);
  if (!traces) {
    report.no_store = true;
    return report;
  }
  // A shared hold of the node's lock keeps a node from starting while we read; when a node
  // holds it already, the report says so.
  auto lock_path = (fs::path(dir) / "troupe.lock").string();
  int lock_fd = stopped ? -1 : ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  bool node_running = lock_fd >= 0 && ::flock(lock_fd, LOCK_SH | LOCK_NB) != 0;
  if (node_running)
    report.notes.push_back("a node has this data dir open: its databases are read at slightly "
                           "different commits, so stop the node for an exact report");
  struct lock_holder {
    int fd;
    ~lock_holder() {
      if (fd >= 0)
        ::close(fd);
    }
  } hold{lock_fd};
  if (!fs::exists(data, ec) || fs::file_size(data, ec) == 0) {
    report.problems.push_back(data.string() + " is " +
                              (fs::exists(data, ec) ? "empty" : "missing") +
                              (fs::exists(fs::path(dir) / "troupe.store", ec)
                                 ? ", though the dir held a store (troupe.store is there)"
                                 : ""));
    return report;
  }
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc == 0)
    rc = mdb_env_set_maxdbs(env, 1 << 16);
  if (rc == 0)
    rc = mdb_env_open(env, dir.c_str(), MDB_RDONLY | MDB_NOTLS, 0644);
  if (rc != 0) {
    report.problems.push_back("LMDB cannot open " + dir + ": " + rc_text(rc));
    if (env)
      mdb_env_close(env);
    return report;
  }
  lmdb_map map;
  lmdb_note_map(env, map);
  MDB_envinfo info;
  MDB_stat st;
  mdb_env_info(env, &info);
  mdb_env_stat(env, &st);
  uint64_t needed = (static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
  auto size = fs::file_size(data, ec);
  if (size < needed) { // reading on would die of SIGBUS
    report.problems.push_back(data.string() + " holds " + std::to_string(size) +
                              " bytes but its last page ends at byte " + std::to_string(needed) +
                              " (the file was cut short)");
    mdb_env_close(env);
    return report;
  }
  walker w{report, nullptr, {}};
  if ((rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &w.txn)) != 0) {
    report.problems.push_back("cannot begin a read transaction: " + rc_text(rc));
    mdb_env_close(env);
    return report;
  }
  // The main database lists the named ones.
  std::vector<std::string> names;
  MDB_dbi main = 0;
  if ((rc = mdb_dbi_open(w.txn, nullptr, 0, &main)) == 0)
    w.each(main, "the list of databases", [&](std::string_view k, std::string_view) {
      names.emplace_back(k);
    });
  // An LMDB file that never held a database, in a dir without troupe's marker: the node that made
  // it died (or lost power) before its first commit reached the disk, and the next one starts
  // afresh, as on an empty dir.
  if (report.ok() && names.empty() && !fs::exists(fs::path(dir) / "troupe.store", ec)) {
    report.no_store = true;
    mdb_txn_abort(w.txn);
    mdb_env_close(env);
    return report;
  }
  // The free list, in a transaction of its own (as each database below).
  mdb_txn_abort(w.txn);
  w.txn = nullptr;
  std::optional<size_t> free_pages;
  if ((rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &w.txn)) == 0)
    free_pages = w.check_free_list(info.me_last_pgno, info.me_last_txnid);
  else
    w.problem("cannot begin a read transaction: " + rc_text(rc));
  if (free_pages && report.ok() && !node_running)
    w.check_page_count(env, names, *free_pages, info.me_last_pgno);
  // Each database in a transaction of its own: LMDB fails a transaction for good once it met a
  // bad page, and the walk goes on to report what else is damaged.
  auto open = [&](const std::string& name, unsigned flags, MDB_dbi& dbi) {
    mdb_txn_abort(w.txn);
    w.txn = nullptr;
    if (int r = mdb_txn_begin(env, nullptr, MDB_RDONLY, &w.txn); r != 0) {
      w.problem("cannot begin a read transaction: " + rc_text(r));
      return false;
    }
    if (int r = mdb_dbi_open(w.txn, name.c_str(), flags, &dbi); r != 0) {
      w.problem(name + ": cannot be opened: " + rc_text(r));
      return false;
    }
    return true;
  };
  MDB_dbi dbi = 0;
  if (std::find(names.begin(), names.end(), "meta") == names.end()) {
    w.problem("no `meta` database: this is not a troupe store");
  } else if (open("meta", 0, dbi)) {
    MDB_val k = to_val("layout_version"), v;
    if (mdb_get(w.txn, dbi, &k, &v) != 0 || !lmdb_in_file(w.txn, v))
      w.problem("meta: no layout_version");
    else if (to_view(v) != layout_version)
      w.problem("meta: layout version " + std::string{to_view(v)} + "; this build checks version " +
                layout_version);
    else
      report.notes.push_back("store layout version " + std::string{layout_version});
  }
  if (report.ok()) {
    if (open("heads", 0, dbi))
      w.check_heads(dbi);
    if (open("cursors", 0, dbi))
      w.check_cursors(dbi);
    if (open("times", 0, dbi))
      w.check_sealed(dbi, "times");
    for (const auto& name : names) {
      if (name.rfind("log/", 0) == 0) {
        if (open(name, 0, dbi))
          w.check_log(dbi, name.substr(4));
      } else if (name.rfind("state/", 0) == 0) {
        if (open(name, 0, dbi))
          w.check_sealed(dbi, name);
      } else if (name.rfind("dead/", 0) == 0) {
        if (open(name, MDB_INTEGERKEY, dbi))
          w.check_sealed(dbi, name);
      }
    }
    std::map<std::string, uint64_t> per_edge;
    for (const auto& [key, h] : w.heads)
      per_edge[key.first] += h.head - h.tail;
    for (const auto& [edge, n] : per_edge)
      report.notes.push_back("edge " + edge + ": " + std::to_string(n) + " records stored");
  }
  if (w.txn)
    mdb_txn_abort(w.txn);
  mdb_env_close(env);
  return report;
}

} // namespace troupe
