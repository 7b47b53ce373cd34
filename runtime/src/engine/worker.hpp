// The state of a stage worker actor and the functions its parts share (see stage_actor.hpp for
// what a worker does). Private to runtime/src/engine:
//   stage_actor.cpp   the actor: start, init, messages, stop
//   worker_input.cpp  partitions, reading a batch, upstream and downstream status
//   worker_step.cpp   running steps, failures, isolation
//   worker_crash.cpp  crash markers: deaths of the process counted across starts
//   worker_flight.cpp steps in flight: sending, acks, refusals, resends
//   worker_lease.cpp  steps of a leasing stage (a work queue): items by lease, not by partition
#pragma once

#include "engine/lease_table.hpp"
#include "engine/stage_actor.hpp"
#include "engine/step_impl.hpp"

#include <caf/stateful_actor.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe::detail {

enum class phase {
  starting,  // waiting for the barrier
  ready,     // a step message is on its way
  idle,      // nothing to read: a wake message starts the next step
  delaying,  // a timer starts the next step (a partial batch, a retry, a pause)
  polling,   // an idle source: its timer or its waker (context::waker) starts the next step
  waiting,   // too many steps in flight, a marker to commit, or a resend pending
};

// A step sent to the writer: kept until it is acknowledged and the snapshot has moved past it.
struct sent_step {
  step_delta_ptr delta;
  std::vector<cursor_pos> end; // positions after the step
  bool acked = false;
  bool finishing = false;      // the step marks the worker done
  bool marker = false;         // a crash marker committed before a step runs
  std::vector<lease> leases;   // a leasing stage's items the step completes
  std::vector<lease_move> moves; // and the cursor moves it carries
  uint64_t records_in = 0;     // records it consumes (for the metrics)
  std::chrono::steady_clock::time_point started; // when its step began
  std::vector<std::function<void()>> hooks; // context::on_commit: run when it is acknowledged
};

// Where a worker starts, as its crash marker records it: the fingerprint of its positions, how
// many starts there began a step that never committed, how many records of record-by-record
// isolation are left, and the run (node process) that wrote it: a marker of the current run was
// left by an actor restart, and one of a run that stopped in order by a stop, not by a death.
struct crash_marker {
  uint64_t fingerprint = 0;
  uint32_t starts = 0;
  uint32_t isolate = 0;
  uint64_t run = 0;
  std::string encode() const;
  static std::optional<crash_marker> decode(std::string_view bytes);
};

struct worker_state {
  std::shared_ptr<const node_context> node;
  worker_spec spec;
  std::string who; // "stage <name>/<worker>" for the log
  worker_metrics* metrics = nullptr;  // this worker's counters (the node's metrics own them)
  const std::atomic<bool>* paused = nullptr; // its stage's pause switch (troupectl pause)
  std::chrono::steady_clock::time_point step_started; // of the step in hand
  std::unique_ptr<stage_base> code;
  stage* op = nullptr;
  source* src = nullptr;
  std::unique_ptr<store_reader> reader;
  step_impl step;
  step_delta_ptr delta;                        // the step being built
  std::vector<step_delta_ptr> spare;           // deltas of settled steps, for reuse

  // Positions, one per (input, owned partition): input i, k-th owned partition at
  // [i * owned.size() + k].
  std::vector<cursor_pos> sent;      // after the last sent step (where the next step reads)
  std::vector<cursor_pos> batch_end; // of the step in hand
  std::map<size_t, uint64_t> told_behind; // slot -> the position a skip was logged for
  size_t rotation = 0;               // which (input, partition) a step reads first
  std::vector<record_impl> records;
  std::vector<step_delta::dead_letter> undecodable; // of the batch in hand
  std::vector<std::pair<size_t, uint64_t>> undecodable_at; // their (slot, position)
  std::vector<std::unique_ptr<envelope_decoder>> decoders;

  // A leasing stage (see lease_table.hpp): the table its workers share, the items and cursor
  // moves of the step in hand, and the snapshot's heads.
  std::shared_ptr<lease_table> leases;
  std::vector<lease> leased;
  std::vector<lease_move> moves;
  std::vector<uint64_t> heads;
  envelope_decoder priority_decoder;

  std::deque<sent_step> flight;          // oldest first
  std::deque<state_overlay> overlays;    // their user-state writes, in step with `flight`
  uint64_t step_counter = 0;             // last step number sent
  uint32_t depth = 4;                    // most steps unacknowledged at once
  bool resend_pending = false;           // a refused step (full store) will be sent again
  uint32_t resend_attempts = 0;
  // Since when this worker's steps are refused for room (epoch: they are not); a wait for room is
  // logged once it lasted a while (the writer logs the map's pressure itself).
  std::chrono::steady_clock::time_point waiting_since{};
  bool waiting_reported = false;

  phase at = phase::starting;
  uint64_t token = 0;        // stale step messages carry an older token
  uint32_t failures = 0;     // failed attempts of the step in hand
  bool isolating = false;    // retrying record by record after max_attempts
  std::vector<cursor_pos> isolation_end;
  bool delayed_once = false; // a partial batch already waited max_delay
  bool finishing = false;    // a sent step marks this worker done
  bool stopping = false;
  uint32_t transient_failures = 0;

  // The wake-up the stage asked for (context::wake_at), wall-clock ms, 0 for none; a step runs
  // stage::on_timer once it is due. An idle worker has a timer message on its way for it.
  int64_t timer_at = 0;
  int64_t timer_sent_for = 0; // the wake-up the timer message on its way is for
  bool in_timer = false;      // the step in hand runs on_timer

  // Crash protection (see stage_actor.hpp).
  std::optional<crash_marker> found_marker; // as loaded at start
  bool marker_settled = false;              // this start's marker is committed (or not needed)
  bool marker_in_store = false;             // a marker of ours is (being) committed
  uint32_t crash_isolate = 0;               // records left to isolate because of crashes
  std::vector<cursor_pos> crash_end;        // and the positions isolation stops at
  uint32_t crashes_here = 0;                // deaths recorded at the current position
  std::string blame_path;                   // crash_blame.hpp: this worker's file

  static const char* name;
};

using self_ptr = caf::stateful_actor<worker_state>*;
using step_atom = caf::atom_constant<caf::atom("step")>;
using timer_atom = caf::atom_constant<caf::atom("timer")>;

// worker_input.cpp
caf::error read_batch(worker_state& st, size_t max, const std::vector<cursor_pos>* below);
enum class outputs { free, full, full_and_consumer_failed, all_consumers_failed };
outputs output_state(worker_state& st);
enum class upstream { running, done, failed };
caf::expected<upstream> upstream_status(worker_state& st);
uint64_t fingerprint(const std::vector<cursor_pos>& positions);
std::vector<step_delta::cursor_move> cursor_moves(const worker_state& st);
// The step consumes only the first n records of the batch (context::take_only): the positions
// after them, and the batch's undecodable records before them.
void take_only(worker_state& st, size_t n);

// worker_flight.cpp
using resend_atom = caf::atom_constant<caf::atom("resend")>;
unsigned unacked(const worker_state& st);
void send_step(self_ptr self, bool finishing, bool marker = false);
void settle(worker_state& st); // after a refresh: forget acknowledged steps
void resend(self_ptr self);

// worker_crash.cpp
void leave_marker(worker_state& st);
void commit_start_marker(self_ptr self);

// worker_lease.cpp
void run_lease_step(self_ptr self);
// A step of leased items failed: they go back to the table (see lease_table::release).
void on_lease_failure(self_ptr self, const std::string& what, bool records);
void on_lease_step_acked(worker_state& st, sent_step& step);

// worker_step.cpp
// Runs stage code at the step boundary; false when it threw (the failure is handled).
bool run_code(self_ptr self, const std::function<void(context&)>& code);
void finish_drained(self_ptr self);
// Nothing left to read in hand (`consumed` says so for the log): finish if every producer
// finished, stop if one failed, else wait idle for the writer's wake.
void after_input_drained(self_ptr self, const char* consumed);
void stop_for_good(self_ptr self);
// Keeps the wake-up a committed step (or open()) asked for.
void take_wake_request(worker_state& st);
// An idle worker with a wake-up sends itself a timer message for it.
void arm_timer(self_ptr self);
void run_step(self_ptr self);
void schedule_step(self_ptr self, std::chrono::milliseconds delay = std::chrono::milliseconds{0});
// How often a paused worker looks whether it was resumed.
constexpr std::chrono::milliseconds pause_poll{100};
void stop_now(self_ptr self);
void try_stop(self_ptr self);
void fail(self_ptr self, caf::error err); // ends the actor; damage also stops the node

} // namespace troupe::detail
