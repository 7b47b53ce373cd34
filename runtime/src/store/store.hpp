// The node's LMDB store: edge logs, consumer cursors, keyed stage state, dead-letter logs and
// metadata, in one LMDB environment. The key layout is described in runtime/STORE_FORMAT.md.
//
// Threads: exactly one thread writes (the node's writer, see writer.hpp), by calling apply().
// Any number of threads read, each through its own store_reader (the environment is opened
// with MDB_NOTLS, so a reader may move between threads, as CAF actors do, but is used by one
// thread at a time).
#pragma once

#include "base/error.hpp"
#include "store/step_delta.hpp"

#include <troupe/stage.hpp>

#include <caf/expected.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct MDB_env;
struct MDB_txn;

namespace troupe {

// Consumed records are kept so they can be replayed, then trimmed. A consumed record may be
// trimmed once `count` consumed records are newer than it, or once it is older than `age_ms`
// (a limit of 0 is off; with both off nothing is ever trimmed). Unconsumed records are never
// trimmed. Logs are stored in chunks (the records one commit appended to an edge) and trimmed a
// whole chunk at a time, once every record in it may go: so at least the newest `count`
// consumed records stay, often more, up to one chunk's worth. Age is wall-clock time at append,
// tracked with a granularity of about a second, so a record may outlive `age_ms` by a second or
// two (or more, while its chunk holds younger records), never less.
struct retention {
  uint64_t count = 100000;
  uint64_t age_ms = 0;
};

struct edge_spec {
  std::string name;
  uint64_t max_records = 1000000; // backlog cap: producers wait while head - min cursor >= cap
  retention keep;
  // Consumer groups that read this edge ("<stage>/<worker>"); the backlog and trimming
  // follow the slowest of them. A group that has not committed yet sits at 0 (holds everything).
  // An edge with no groups has nobody to wait for (as a Kafka topic without consumers): its
  // backlog is 0 and only `keep` limits what stays.
  std::vector<std::string> groups;
};

struct stage_spec {
  std::string name;
  uint32_t workers = 1;
};

// The shape of the app on this node. Declared once when the store opens; ids are indexes.
struct store_layout {
  std::vector<edge_spec> edges;   // edge_id = index
  std::vector<stage_spec> stages; // stage_id = index
};

struct store_options {
  std::string dir;                      // created if missing
  uint64_t map_size = uint64_t{1} << 30; // bytes; growing it is a config change, not a rebuild
  durability mode = durability::process;
  unsigned max_dbs = 4096;               // needs 3 + edges + 2 * stages
};

// One dead letter as read back.
struct dead_letter_entry {
  uint64_t seq;
  std::string bytes; // a DeadLetter message
};

class store_reader;

class store {
public:
  // Opens (or creates) the environment, checks the on-disk layout version, opens or creates
  // the databases for `layout`, and loads the edges' heads. Fails with layout_mismatch when a
  // stage's worker count differs from the one stored (a rescale needs a drained stage).
  static caf::expected<std::unique_ptr<store>> open(store_options options, store_layout layout);

  // Closes the environment. Every store_reader of this store must be destroyed before.
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  const store_layout& layout() const { return layout_; }
  const store_options& options() const { return options_; }
  std::optional<edge_id> find_edge(std::string_view name) const;
  std::optional<stage_id> find_stage(std::string_view name) const;

  // Writer thread only. Applies the deltas in order in one write transaction and commits it
  // (group commit): each output gets the next sequence number of its edge. Afterwards trims
  // edges past their retention. On any error nothing of any delta is applied.
  // `appended` and `consumed` (optional) are cleared, then receive the edges that got records /
  // whose cursors moved, each once. A delta's `wake` list is not the store's business.
  // Bad input (an unknown edge or stage id, an output outside the arena, a cursor past the
  // edge's head, a state write for a worker the stage does not have) fails with config_invalid.
  // store_full (the map is full) leaves the store usable: committed data is intact and later
  // smaller transactions, or a reopen with a bigger map_size, succeed.
  caf::error apply(const std::vector<const step_delta*>& deltas,
                   std::vector<edge_id>* appended = nullptr,
                   std::vector<edge_id>* consumed = nullptr);

  // Writer thread only: trims every edge by its retention now (apply does it for the edges it
  // touched). Returns the number of records removed. Works in transactions of a bounded size
  // (a bounded number of chunks).
  caf::expected<uint64_t> trim_all();

  // Flushes the OS buffers to disk (mdb_env_sync forced): bounds the loss window at `process`.
  caf::error sync();

  std::unique_ptr<store_reader> reader();

  // The next sequence number each edge will get, as committed (writer's view).
  uint64_t committed_head(edge_id e) const;

  MDB_env* env() const { return env_; }

private:
  friend class store_reader;
  friend struct store_test_access; // tests drive the clock through apply_at / trim_all_at
  struct impl;
  store(store_options options, store_layout layout);
  caf::error lock_dir();
  caf::error open_env();
  // The work of apply() and trim_all() with the wall clock (ms since the Unix epoch) given.
  caf::error apply_at(const std::vector<const step_delta*>& deltas, std::vector<edge_id>* appended,
                      std::vector<edge_id>* consumed, uint64_t now_ms);
  caf::expected<uint64_t> trim_all_at(uint64_t now_ms);

  store_options options_;
  store_layout layout_;
  MDB_env* env_ = nullptr;
  int lock_fd_ = -1; // holds an exclusive flock on <dir>/troupe.lock while open
  std::unique_ptr<impl> impl_;
};

// A consistent snapshot of the store (an LMDB read transaction). Cheap to refresh.
class store_reader {
public:
  ~store_reader();
  store_reader(const store_reader&) = delete;
  store_reader& operator=(const store_reader&) = delete;

  // Moves the snapshot forward to the latest commit. Views handed out before become invalid.
  caf::error refresh();
  // Ends the snapshot (so LMDB can reuse pages) until the next refresh.
  void release();

  // Calls fn(seq, bytes) for the records of edge `e` with seq >= from, in order, until fn
  // returns false or `max` records were visited. `bytes` stays valid until refresh/release.
  // Returns the number of records visited.
  caf::expected<size_t> read(edge_id e, uint64_t from, size_t max,
                             const std::function<bool(uint64_t, std::string_view)>& fn);

  uint64_t head(edge_id e);      // the next sequence number to be appended
  uint64_t tail(edge_id e);      // the first retained sequence number (a chunk's first)
  uint64_t backlog(edge_id e);   // head - the slowest group's cursor (unconsumed records)

  // Next sequence number the group will read; nullopt before its first commit.
  std::optional<uint64_t> cursor(edge_id e, std::string_view group);
  // Keyed state: user space (what stages see) and runtime space (the engine's own keys).
  std::optional<std::string> state(stage_id s, uint32_t worker, state_space space,
                                   std::string_view key);
  // Calls fn(key, value) for every user-space key of a stage worker, in key order.
  caf::error scan_state(stage_id s, uint32_t worker,
                        const std::function<void(std::string_view, std::string_view)>& fn);

  // Dead letters of a stage, oldest first, starting at `from`.
  std::vector<dead_letter_entry> dead_letters(stage_id s, uint64_t from = 0, size_t max = SIZE_MAX);
  uint64_t dead_letter_count(stage_id s);

  std::optional<std::string> meta(std::string_view key);

private:
  friend class store;
  explicit store_reader(store& owner);
  caf::error ensure_txn();

  store* store_;
  MDB_txn* txn_ = nullptr;
  bool active_ = false;
  std::string key_; // scratch for building keys
};

} // namespace troupe
