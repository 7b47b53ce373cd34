// The node's LMDB store: edge logs (split into partitions), consumer cursors, keyed stage state,
// dead-letter logs and metadata, in one LMDB environment. The layout is runtime/STORE_FORMAT.md.
//
// Threads: exactly one thread writes (the node's writer, see writer/writer.hpp), by calling
// apply(), trim_all() and sync(). Any number of threads read, each through its own store_reader
// (the environment is opened with MDB_NOTLS, so a reader may move between threads, as CAF actors
// do, but is used by one thread at a time). backlog() may be called from any thread.
//
// Errors: everything that touches LMDB returns an error value; absence lives inside the value
// (an empty optional) and only MDB_NOTFOUND means absent. A value whose checksum or shape is wrong
// is errc::store_corrupt, naming what and where: damage is reported, never read as data.
#pragma once

#include "base/error.hpp"
#include "store/lmdb_api.hpp"
#include "store/step_delta.hpp"

#include <troupe/stage.hpp>

#include <caf/expected.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

// Consumed records are kept so they can be replayed, then trimmed, per partition. A consumed
// record may be trimmed once `count` consumed records of its partition are newer than it, or
// once it is older than `age_ms` (a limit of 0 is off; with both off nothing is ever trimmed).
// Unconsumed records are never trimmed. Logs are stored in chunks and trimmed a whole chunk at a
// time, once every record in it may go: so at least the newest `count` consumed records stay,
// often more, up to one chunk's worth. Age is wall-clock time at append, tracked with a
// granularity of about a second. When the store runs short of space (store_pressure), consumed
// records are trimmed regardless of `count` and `age_ms`.
struct retention {
  uint64_t count = 100000;
  uint64_t age_ms = 0;
};

struct edge_spec {
  std::string name;
  // 0: the count stored with the edge's data, or `default_partitions` for a new edge. Fixed
  // once the edge has held a record (changing it is refused with layout_mismatch).
  uint32_t partitions = 0;
  uint32_t default_partitions = 1;
  // Backlog caps: producers wait while the unconsumed records (or their bytes) of the edge, summed
  // over its partitions, reach either cap. 0 is no cap.
  uint64_t max_records = 1000000;
  uint64_t max_bytes = 0;
  retention keep;
  // The consumer groups that read this edge: the names of the consuming stages. A group's
  // cursor is per partition; trimming and the backlog follow the slowest group in each
  // partition. An edge with no groups has nobody to wait for (a Kafka topic without consumers).
  std::vector<std::string> groups;
  // Groups that hold nothing back (`slow: skip`): the backlog and trimming ignore their cursors,
  // so records they have not read go with retention like consumed ones.
  std::vector<std::string> skipping;
};

struct stage_spec {
  std::string name;
  uint32_t workers = 1;
  // Its workers lease items instead of owning partitions (any worker count on any partitions).
  bool leasing = false;
  // The edges the stage reads. Its keyed state is split like them: the stage has as many state
  // partitions as its inputs have partitions (all inputs must have the same count), 1 without
  // inputs. Resolved by store::open into `partitions`.
  std::vector<edge_id> inputs;
  uint32_t partitions = 0;
};

// The shape of the app on this node. Declared once when the store opens; ids are indexes.
struct store_layout {
  std::vector<edge_spec> edges;   // edge_id = index
  std::vector<stage_spec> stages; // stage_id = index
};

struct store_options {
  std::string dir;                       // created if missing
  uint64_t map_size = uint64_t{1} << 30; // bytes; growing it is a config change, not a rebuild
  durability mode = durability::process;
  unsigned max_dbs = 4096;               // needs 4 + edges + 2 * stages
  std::shared_ptr<lmdb_api> lmdb;        // null: LMDB itself (tests pass faulty_lmdb)
};

struct partition_info {
  uint64_t head = 0, tail = 0;             // records [tail, head) are stored
  uint64_t bytes_head = 0, bytes_tail = 0; // record bytes appended before head / before tail
};

struct cursor_pos {
  uint64_t next = 0;  // first sequence number not consumed
  uint64_t bytes = 0; // record bytes before it
  bool operator==(const cursor_pos& o) const { return next == o.next && bytes == o.bytes; }
  bool operator!=(const cursor_pos& o) const { return !(*this == o); }
};

struct backlog_info {
  uint64_t records = 0, bytes = 0;
};

// One dead letter as read back.
struct dead_letter_entry {
  uint64_t seq;
  std::string bytes; // a DeadLetter message
};

class store_reader;

// The files a node keeps in its data dir that exist in `dir` (the store's, and the crash notes of
// runtime/src/engine/crash_blame.hpp), troupe.lock last: what clearing the data dir deletes.
std::vector<std::string> data_dir_files(const std::string& dir);

class store {
public:
  // Opens (or creates) the environment, checks the data dir (a data file shorter than LMDB's
  // meta page says, a missing data file beside a store that existed, a foreign layout version are
  // refused with a message), resolves partition counts, opens or creates the databases, and
  // loads and verifies the edges' heads and cursors.
  static caf::expected<std::unique_ptr<store>> open(store_options options, store_layout layout);
  // What open() does first when the last run left the store open at `process` (a crash or a
  // power loss ended it): verify the whole data file in a forked child, so noise that crashes
  // LMDB ends the child, not the node (store_recover.cpp). fork() is only safe before the
  // process starts threads: `troupe run` calls this before CAF starts, and a file it found whole
  // is marked so in troupe.lock, which open() then trusts. No-op for a dir with nothing to verify
  // or one in use.
  static caf::error verify_if_left_open(const std::string& dir);

  // Closes the environment. Every store_reader of this store must be destroyed before.
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // The layout with partition counts resolved.
  const store_layout& layout() const { return layout_; }
  const store_options& options() const { return options_; }
  std::optional<edge_id> find_edge(std::string_view name) const;
  std::optional<stage_id> find_stage(std::string_view name) const;
  // The index of `stage` among the consumer groups of `edge`.
  std::optional<uint32_t> find_group(edge_id edge, std::string_view stage) const;

  // Writer thread only. Applies the deltas in order in one write transaction and commits it
  // (group commit): each output gets the next sequence number of its partition. Afterwards trims
  // partitions past their retention. On any error nothing of any delta is applied.
  // `appended` and `consumed` (optional) are cleared, then receive the edges that got records /
  // whose cursors moved, each once. A delta's `wake` list is not the store's business.
  // Bad input (an unknown id, a partition or worker the spec does not have, an output outside
  // the arena, a cursor past its partition's head) fails with config_invalid.
  // store_full (the map is full) and store_pressure (intake refused to keep room for consumers)
  // leave the store usable: committed data is intact and later transactions succeed as room
  // is made. A failed flush to disk is sticky: every later apply fails with it.
  caf::error apply(const std::vector<const step_delta*>& deltas,
                   std::vector<edge_id>* appended = nullptr,
                   std::vector<edge_id>* consumed = nullptr);

  // Writer thread only: trims every partition by its retention now (apply does it for the
  // partitions it touched). Returns the number of records removed. Works in transactions of a
  // bounded size (a bounded number of chunks).
  caf::expected<uint64_t> trim_all();

  // Writer thread only: flushes the OS buffers to disk (mdb_env_sync forced). A failure is
  // sticky (after a failed fsync the kernel may have dropped the dirty pages: what the store
  // acknowledged is no longer known to be on disk).
  caf::error sync();

  // Writer thread only: measures how full the map is and enters or leaves pressure (see apply).
  // The writer calls it every interval.
  caf::error update_pressure();
  bool under_pressure() const { return pressure_; }
  // Whether the records committed since the last update_pressure could have used a quarter of
  // the reserve it keeps (counting twice their bytes, for keys, framing and half-full pages): the
  // writer measures again then, so that fast intake between two ticks cannot fill the map.
  bool measure_due() const { return 2 * grown_since_measure_ >= reserve_bytes_ / 4; }
  // Writer thread only: whether a step may commit under pressure, and if so charges it. A step
  // that writes nothing, or adds no more record bytes than its cursor moves consume (against the
  // committed positions), always may; pure intake (outputs, no cursor moves) never does; a step
  // that consumes but adds more (a stage that fans out or enlarges) may while the room measured
  // by the last update_pressure, less half the reserve, covers it, so the stages between intake
  // and the sinks keep moving without filling the map.
  bool admit_under_pressure(const step_delta& d);
  uint64_t growth_budget() const { return growth_budget_; }
  // The error a step refused under pressure gets (waitable: it is sent again).
  static caf::error pressure_refusal();
  // Writer thread only: commits a small transaction, so that the pages the last commit freed can
  // be used (LMDB keeps them for one more commit). update_pressure does it when pressure clears.
  caf::error recycle_freed();

  // Writer thread only (or once no writer runs): meta[key] = value (ASCII), in a transaction of
  // its own.
  caf::error put_meta(std::string_view key, std::string_view value);

  std::unique_ptr<store_reader> reader();

  // The unconsumed records and bytes of an edge as last committed (summed over partitions; per
  // partition from its slowest group). Any thread.
  backlog_info backlog(edge_id e) const;

  MDB_env* env() const { return env_; }
  lmdb_api& lmdb() const { return *lmdb_; }

  // Write transactions committed, and flushes to disk (at `sync` every commit flushes; at
  // `process` only sync() does), since open. Any thread.
  struct counters {
    uint64_t commits = 0, flushes = 0;
  };
  counters stats() const { return {commits_.load(), flushes_.load()}; }

private:
  friend class store_reader;
  friend struct store_test_access; // tests drive the clock through apply_at / trim_all_at
  struct impl;
  store(store_options options, store_layout layout);
  caf::error check_dir();
  caf::error lock_dir();
  // After a run at `process` that ended without closing the store (store_recover.cpp).
  caf::error verify_after_unclean_end();
  caf::error note_open();
  caf::error open_env();
  caf::error check_file_size();
  struct geometry {
    uint64_t file_pages = 0; // pages up to the last one in use (LMDB's meta says)
    uint64_t page_size = 0;
    uint64_t map_size = 0;   // as LMDB uses it (raised to the file's size if that is larger)
  };
  caf::expected<geometry> map_geometry() const;
  caf::error load(MDB_txn* txn);
  caf::error apply_at(const std::vector<const step_delta*>& deltas, std::vector<edge_id>* appended,
                      std::vector<edge_id>* consumed, uint64_t now_ms);
  caf::expected<uint64_t> trim_all_at(uint64_t now_ms);
  void publish_backlog(edge_id e);
  // A failed commit as the user should read it: an I/O error on a file system that is out of
  // space becomes disk_full, naming the mount point and the bytes free.
  caf::error io_error(caf::error err) const;

  store_options options_;
  store_layout layout_;
  std::shared_ptr<lmdb_api> lmdb_;
  MDB_env* env_ = nullptr;
  lmdb_map map_; // where env_ maps the data file, to bound what it reads
  bool held_store_ = false; // the data dir's marker says a store was created in it
  int lock_fd_ = -1; // holds an exclusive flock on <dir>/troupe.lock while open
  // troupe.lock holds one line while a store is open on the dir, emptied when it closes: what it
  // held at open says how the last run ended (store_recover.cpp).
  std::string last_run_;
  bool noted_open_ = false; // this open wrote its line into troupe.lock
  caf::error failed_; // sticky: a flush to disk failed
  bool pressure_ = false;
  uint64_t growth_budget_ = 0; // bytes steps that add more than they consume may still add
  uint64_t grown_since_measure_ = 0; // record bytes committed since update_pressure
  uint64_t reserve_bytes_ = 0;       // the reserve update_pressure keeps, in bytes
  std::unique_ptr<std::atomic<uint64_t>[]> backlog_records_, backlog_bytes_;
  std::atomic<uint64_t> commits_{0}, flushes_{0};
  void count_commit() {
    ++commits_;
    if (options_.mode == durability::sync)
      ++flushes_;
  }
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

  // Calls fn(seq, bytes) for the records of partition `p` of edge `e` with seq >= from, in order,
  // until fn returns false or `max` records were visited. `bytes` stays valid until
  // refresh/release. Returns the number of records visited. Below the partition's tail reading
  // starts at the tail.
  caf::expected<size_t> read(edge_id e, partition_id p, uint64_t from, size_t max,
                             const std::function<bool(uint64_t, std::string_view)>& fn);

  caf::expected<partition_info> partition(edge_id e, partition_id p);
  // The group's position in a partition; nullopt before its first commit there.
  caf::expected<std::optional<cursor_pos>> cursor(edge_id e, std::string_view group,
                                                  partition_id p);
  // Keyed state: user space (what stages see) and runtime space (the engine's own keys).
  caf::expected<std::optional<std::string>> state(stage_id s, state_scope scope, uint32_t index,
                                                  state_space space, std::string_view key);
  // Calls fn(key, value) for the keys of one space of a partition or worker, in key order: all
  // of them, or at most `max` of those after `after` (strictly).
  caf::error scan_state(stage_id s, state_scope scope, uint32_t index, state_space space,
                        const std::function<void(std::string_view, std::string_view)>& fn,
                        std::string_view after = {}, size_t max = SIZE_MAX);

  // Dead letters of a stage, oldest first, starting at number `from`.
  caf::expected<std::vector<dead_letter_entry>> dead_letters(stage_id s, uint64_t from = 0,
                                                             size_t max = SIZE_MAX);
  caf::expected<uint64_t> dead_letter_count(stage_id s);

  caf::expected<std::optional<std::string>> meta(std::string_view key);

private:
  friend class store;
  explicit store_reader(store& owner);
  caf::error ensure_txn();

  store* store_;
  MDB_txn* txn_ = nullptr;
  bool active_ = false;
  std::string key_; // scratch for building keys
  // Chunks this reader verified lately. A chunk never changes once written (sequence numbers
  // are never reused), so a consumer reading one chunk over several steps verifies it once.
  struct verified_chunk {
    edge_id edge = ~edge_id{0};
    partition_id partition = 0;
    uint64_t first = 0, size = 0;
  };
  std::array<verified_chunk, 16> verified_{};
  size_t verified_next_ = 0;
};

} // namespace troupe
