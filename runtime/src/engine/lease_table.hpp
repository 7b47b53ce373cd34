// The items of a leasing stage (a work queue): which of its input records wait, which a worker
// holds, and what is durably done. Shared by the stage's workers on a node; thread-safe.
//
// A leasing stage does not divide its input by partition: every worker reads every partition,
// and a free worker takes the next waiting item, highest priority first and in arrival order
// within a priority (strict: an item is never taken while one of higher priority waits). Taking
// an item leases it to the worker until a deadline; a worker whose step succeeded claims its items
// before it sends the step (a claimed item can no longer be taken away), and they are done once
// the step commits. An item whose lease runs out, whose worker restarts, or whose step failed goes
// back to waiting with one more attempt; after max_attempts it is handed out once more, marked to
// be dead-lettered with its last error.
//
// What is durable (nothing else needs to be: a node that dies loses its leases with its workers):
//   - per input partition, the consumer group's cursor: every item below it is done;
//   - above it, one runtime state key per committed run of items (partition scope, the item's
//     partition): "lease/<input byte><first seq, 8 bytes big-endian>" = end seq, bytes (2 x 8 LE).
// A step that commits items writes their run keys. Once the runs above a cursor are contiguous,
// a later step (one at a time: moves never overtake each other) moves the cursor over them and
// erases their keys, so the log behind can be trimmed as for any consumer.
//
// Memory: every waiting item of the backlog is indexed (about 150 bytes each), which strict
// priority needs; the backlog is bounded by the edge's max_records / max_bytes.
#pragma once

#include "store/step_delta.hpp"
#include "store/store.hpp"

#include <caf/error.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace troupe::detail {

using lease_clock = std::chrono::steady_clock;

// One item handed to a worker.
struct lease {
  uint32_t input = 0; // index in the stage's inputs
  partition_id partition = 0;
  uint64_t seq = 0;
  uint32_t size = 0;     // the record's bytes
  uint32_t attempts = 0; // failed attempts before this lease
  bool dead = false;     // attempts ran out: dead-letter it with `error`
  std::string error;     // the last failure, in words
};

// A cursor move over committed runs, and the run keys it erases.
struct lease_move {
  uint32_t input = 0;
  partition_id partition = 0;
  cursor_pos to;
  std::vector<uint64_t> erased; // first seqs of the runs moved over
};

// The run key of items [first, ...) of input `input` (in partition scope, runtime space), and
// its value.
std::string lease_run_key(uint32_t input, uint64_t first);
std::string lease_run_value(uint64_t end, uint64_t bytes);

// Items of one step grouped into runs of consecutive records of one partition, in the order
// the items come; `bytes` sums their sizes. What a step records of them, one key per run.
struct lease_run {
  uint32_t input = 0;
  partition_id partition = 0;
  uint64_t first = 0, end = 0, bytes = 0;
};
std::vector<lease_run> lease_runs(const std::vector<lease>& items);

class lease_table {
public:
  // The priority of a record, or nullopt with `error` set when it has none that can be read (the
  // item is then dead-lettered with that error).
  using priority_fn = std::function<std::optional<int64_t>(
    uint32_t input, partition_id p, uint64_t seq, std::string_view bytes, std::string& error)>;

  struct config {
    stage_id stage = 0;
    std::string group;                // the stage's name: its consumer group on every input
    std::vector<edge_id> inputs;
    std::vector<std::string> input_names;
    uint32_t partitions = 1;          // of every input
    std::chrono::milliseconds lease{300000};
    uint32_t max_attempts = 3;
  };
  explicit lease_table(config cfg);

  // Indexes the records the snapshot holds beyond what is indexed (the first call loads the
  // committed cursors and runs). `heads` receives the snapshot's head of every (input,
  // partition), for take().
  caf::error sync(store_reader& reader, const priority_fn& priority,
                  std::vector<uint64_t>& heads);

  // Leases up to `max` waiting items to `worker`: first any item whose lease ran out goes back
  // to waiting, then the best items that are due and below `heads` are taken. An item marked
  // dead, or suspect (its batch failed, so it goes alone), comes alone. Empty when none is free.
  std::vector<lease> take(uint32_t worker, size_t max, const std::vector<uint64_t>& heads,
                          lease_clock::time_point now);
  // Before a step that processed them is sent: true, and they cannot be taken away any more, if
  // the worker still holds every one; false if any was taken away (the step must be dropped;
  // the ones it still held go back to waiting, no attempt counted).
  bool claim(uint32_t worker, const std::vector<lease>& items);
  // The step with these items committed: they are done.
  void committed(const std::vector<lease>& items);
  // The step failed. `blame`: the items were processed alone, so the failure is theirs: one more
  // attempt each (dead after max_attempts), and due again after `retry_after`. Otherwise (a
  // batch failed, or the failure was not the records') they go back with no attempt counted;
  // `suspect` makes them go one at a time, to find the failing one.
  void release(uint32_t worker, const std::vector<lease>& items, std::string_view error,
               bool blame, bool suspect, lease_clock::duration retry_after = {});
  // A new incarnation of `worker` starts (after the barrier: whatever its predecessor sent has
  // committed or been refused). Its leases go back with one more attempt; its claimed items are
  // done if the snapshot holds their run, else go back; a cursor move it carried is forgotten.
  caf::error restarted(uint32_t worker, store_reader& reader);

  // Cursor moves over runs committed since, if no earlier move is still being committed; the
  // caller carries them in its step and reports moved() once it commits, or restarted() if not.
  std::vector<lease_move> take_moves(uint32_t worker);
  void moved(const std::vector<lease_move>& moves);

  struct status {
    size_t waiting = 0, leased = 0;
    bool settled = false; // nothing waits or is held, and every cursor is at the indexed head
    std::optional<lease_clock::time_point> next_event; // the earliest due time or lease deadline
  };
  status state() const;

private:
  struct item_key {
    uint32_t input;
    partition_id partition;
    uint64_t seq;
    bool operator<(const item_key& o) const {
      return std::tie(input, partition, seq) < std::tie(o.input, o.partition, o.seq);
    }
  };
  enum class holding : uint8_t { waiting, leased, claimed };
  struct item {
    uint32_t size = 0;
    int64_t priority = 0;
    uint64_t order = 0; // arrival
    uint32_t attempts = 0;
    bool suspect = false, dead = false;
    holding at = holding::waiting;
    uint32_t worker = 0;
    lease_clock::time_point due{}, deadline{};
    uint64_t run = 0; // when claimed: the first seq of the run its step records
    std::string error;
  };
  // The order items are taken in: priority (highest first), then arrival.
  using queue_key = std::tuple<int64_t, uint64_t, item_key>;
  struct run {
    uint64_t end = 0, bytes = 0;
  };
  struct partition_book {
    cursor_pos cursor;               // committed
    uint64_t indexed = 0;            // next seq to index
    std::map<uint64_t, run> runs;    // committed runs above the cursor, by first seq
  };

  partition_book& book(uint32_t input, partition_id p) {
    return books_[input * cfg_.partitions + p];
  }
  caf::error load(store_reader& reader);
  void wait_again(const item_key& k, item& it);
  void expire(lease_clock::time_point now);

  config cfg_;
  mutable std::mutex mutex_;
  bool loaded_ = false;
  uint64_t arrivals_ = 0;
  std::vector<partition_book> books_;
  std::map<item_key, item> items_;
  std::set<queue_key> queue_;   // waiting items
  std::set<item_key> held_;     // leased or claimed items
  std::optional<uint32_t> mover_; // the worker whose step carries the cursor moves in flight
};

} // namespace troupe::detail
