// Running a worker's steps: reading, the stage code at the step boundary, failures and their
// retries, record-by-record isolation, and the crash markers that carry attempt counts across a
// process that died (see stage_actor.hpp).
#include "engine/worker.hpp"

#include "base/backoff.hpp"
#include "base/endian.hpp"
#include "base/log.hpp"
#include "engine/crash_blame.hpp"
#include "supervision/supervisor.hpp"
#include "writer/writer.hpp"

#include <caf/all.hpp>
#include <kj/exception.h>

#include <algorithm>

namespace troupe::detail {

namespace {

void mark_done(worker_state& st) {
  for (auto p : st.spec.owned.empty() ? std::vector<partition_id>{0} : st.spec.owned)
    st.delta->state.push_back({state_scope::partition, p, state_space::runtime, "done", "1"});
  st.delta->wake = st.spec.outputs;
}

void add_bookkeeping(worker_state& st) {
  for (auto& d : st.undecodable)
    st.delta->dead.push_back(std::move(d));
  st.undecodable.clear();
  for (auto& m : cursor_moves(st))
    st.delta->cursors.push_back(m);
  leave_marker(st);
}

// The step just sent erases the crash marker: no stage code runs again before it committed, or a
// death in a pipelined step after it would be counted against the last isolated record.
void settle_marker_first(worker_state& st) {
  st.flight.back().marker = true;
  st.marker_settled = false;
}

// After a consuming step is sent: leave isolation when its range is done.
void after_send(worker_state& st) {
  if (st.crash_isolate > 0) {
    if (--st.crash_isolate == 0)
      settle_marker_first(st);
    st.crashes_here = 0;
  }
  if (st.isolating &&
      std::equal(st.sent.begin(), st.sent.end(), st.isolation_end.begin(),
                 [](const cursor_pos& a, const cursor_pos& b) { return a.next >= b.next; }))
    st.isolating = false;
}

void dead_letter_in_hand(self_ptr self, const std::string& why, uint32_t attempts) {
  auto& st = self->state;
  const auto& r = st.records.front();
  auto facts = r.describe_for_dead_letter(); // a record that does not decode is dead-lettered too
  log_event(log_level::warn, st.who, r.where(facts) + " goes to the dead-letter log: " + why);
  st.step.begin(*st.delta);
  dead_letter_info info;
  info.stage = st.spec.config->name;
  info.error = why;
  info.attempts = facts.attempt + attempts;
  info.input = *r.input;
  info.partition = r.partition;
  info.input_seq = r.position;
  info.source_position = facts.source_position;
  info.record = r.bytes;
  st.delta->dead.push_back({make_dead_letter(info)});
  add_bookkeeping(st);
  st.failures = 0;
  send_step(self, false);
  after_send(st);
  schedule_step(self);
}

void on_step_failure(self_ptr self, const std::string& what) {
  auto& st = self->state;
  st.step.abandon();
  if (st.metrics)
    st.metrics->set_error(what);
  if (st.leases) {
    on_lease_failure(self, what, true);
    return;
  }
  ++st.failures;
  const auto max = st.spec.config->retry.max_attempts;
  if (st.src || st.records.empty()) { // a source, drained() or on_timer(): no record to blame
    if (st.failures >= max) {
      const char* who = st.src ? "the source" : st.in_timer ? "on_timer()" : "drained()";
      fail(self, make_error(errc::stage_failed, std::string(who) +
                                                  " failed " + std::to_string(max) +
                                                  " attempts in a row: " + what));
      return;
    }
  } else if (st.isolating) {
    // Alone, after max attempts with its batch: the record itself fails.
    dead_letter_in_hand(self,
                        "failed " + std::to_string(max + 1) + " attempts (" + std::to_string(max) +
                          " with its batch, 1 alone): " + what,
                        max + 1);
    return;
  } else if (st.failures >= max && st.records.size() == 1) {
    dead_letter_in_hand(self, "failed " + std::to_string(max) + " attempts: " + what, max);
    return;
  } else if (st.failures >= max) {
    log_event(log_level::warn, st.who,
              "attempt " + std::to_string(st.failures) + " of " + std::to_string(max) +
                " failed for a batch of " + std::to_string(st.records.size()) + " records (" +
                what + "); trying them one at a time to find the failing ones");
    st.isolating = true;
    st.isolation_end = st.batch_end;
    st.failures = 0;
    schedule_step(self);
    return;
  }
  log_event(log_level::warn, st.who,
            "attempt " + std::to_string(st.failures) + " of " + std::to_string(max) +
              " failed: " + what);
  schedule_step(self, backoff_delay(st.spec.config->retry.backoff, std::chrono::milliseconds{30000},
                                    st.failures));
}

// A failure outside the records: retry the step for as long as it takes, growing the delay.
void on_transient_failure(self_ptr self, const std::string& what) {
  auto& st = self->state;
  st.step.abandon();
  if (st.metrics)
    st.metrics->set_error(what);
  if (st.leases)
    on_lease_failure(self, what, false);
  ++st.transient_failures;
  if (st.transient_failures == 1 || st.transient_failures % 100 == 0)
    log_event(log_level::warn, st.who,
              "step failed, not for its records (" + what + "); retrying until it succeeds" +
                (st.transient_failures > 1
                   ? " (" + std::to_string(st.transient_failures) + " attempts so far)"
                   : ""));
  if (st.stopping) {
    try_stop(self);
    return;
  }
  schedule_step(self, backoff_delay(std::chrono::milliseconds{50}, std::chrono::milliseconds{5000},
                                    st.transient_failures));
}

// The step boundary: stage code runs here, and whatever it throws fails the step (nothing of it
// is kept) instead of the actor. Returns whether the code completed.
template <class F>
bool run_stage_code(self_ptr self, F&& code) {
  auto& st = self->state;
  try {
    blame_scope blame{st.blame_path};
    context ctx{st.step};
    code(ctx);
    if (st.step.store_error) // the code caught the failure of a read: the step fails anyway
      throw store_failure(st.step.store_error);
    take_wake_request(st);
    st.step.finish();
    st.transient_failures = 0;
    return true;
  } catch (const store_failure& e) {
    st.step.abandon();
    fail(self, e.error());
  } catch (const permanent_error& e) {
    st.step.abandon();
    fail(self, make_error(errc::permanent, e.what()));
  } catch (const transient_error& e) {
    on_transient_failure(self, e.what());
  } catch (const std::exception& e) {
    on_step_failure(self, e.what());
  } catch (const kj::Exception& e) {
    on_step_failure(self, e.getDescription().cStr());
  } catch (...) {
    on_step_failure(self, "unknown exception");
  }
  return false;
}

void run_source_step(self_ptr self) {
  auto& st = self->state;
  st.step.begin(*st.delta);
  st.batch_end = st.sent;
  produce_result result;
  bool ok = run_stage_code(self, [&](context& ctx) {
    result = st.src->produce(ctx, st.spec.config->batch.max_items);
  });
  if (!ok)
    return;
  auto idle = std::chrono::milliseconds{std::max<uint32_t>(1, result.idle_ms)};
  if (result.what == produce_result::kind::done) {
    mark_done(st);
    send_step(self, true);
    st.at = phase::waiting;
    return;
  }
  bool sent = !st.delta->empty() || !st.step.commit_hooks.empty();
  if (sent)
    send_step(self, false);
  if (result.what == produce_result::kind::idle) {
    schedule_step(self, idle);
    st.at = phase::polling; // its waker may start the next step sooner
    return;
  }
  schedule_step(self, std::chrono::milliseconds{sent ? 0 : 1});
}

} // namespace

bool run_code(self_ptr self, const std::function<void(context&)>& code) {
  return run_stage_code(self, code);
}

// Stops this worker for good in this run, marking the stage failed so that its consumers stop
// too, instead of waiting for records that cannot come.
void stop_for_good(self_ptr self) {
  auto& st = self->state;
  st.node->failed->add(st.spec.stage);
  if (st.reader)
    st.reader->release(); // a stopped worker's snapshot would pin pages for the rest of the run
  caf::anon_send(st.node->writer, wake_atom::value, st.spec.outputs, true);
  caf::anon_send(st.node->writer, wake_atom::value, st.spec.inputs, false);
  try_stop(self);
}

void after_input_drained(self_ptr self, const char* consumed) {
  auto& st = self->state;
  auto status = upstream_status(st);
  if (!status) {
    fail(self, status.error());
    return;
  }
  switch (*status) {
    case upstream::done:
      finish_drained(self);
      return;
    case upstream::failed:
      log_event(log_level::warn, st.who,
                std::string{"stops: "} + consumed + " and a stage upstream failed");
      st.step.abandon();
      stop_for_good(self);
      return;
    case upstream::running:
      st.step.abandon();
      st.at = phase::idle; // the writer wakes us when records arrive, or the timer
      st.reader->release();
      arm_timer(self);
      return;
  }
}

// Every input drained for good: the stage's drained() runs, in steps of its own, each after the
// previous ones committed (so it sees all of its state), until it says it is finished; that last
// step carries the done mark.
void finish_drained(self_ptr self) {
  auto& st = self->state;
  if (!st.flight.empty()) {
    st.step.abandon();
    st.at = phase::waiting; // the acknowledgement of the last one schedules the next step
    st.reader->release();
    return;
  }
  bool finished = true;
  if (!run_stage_code(self, [&](context& ctx) { finished = st.op->drained(ctx); }))
    return;
  st.failures = 0;
  if (!finished) {
    if (!st.delta->empty() || !st.step.commit_hooks.empty())
      send_step(self, false);
    // Asked for a wake-up in this step: called again once it is due (a delay holding records
    // to the end). Wake-ups asked for before (a batch's wait) do not hold it back.
    auto asked = st.step.wake_request;
    auto wait = asked == 0 ? 0 : std::min(st.timer_at, asked) - context::now_ms();
    schedule_step(self, std::chrono::milliseconds{std::max<int64_t>(0, wait)});
    return;
  }
  mark_done(st);
  send_step(self, true);
  st.at = phase::waiting;
}

void take_wake_request(worker_state& st) {
  auto asked = st.step.wake_request;
  if (asked != 0)
    st.timer_at = st.timer_at == 0 ? asked : std::min(st.timer_at, asked);
}

void arm_timer(self_ptr self) {
  auto& st = self->state;
  if (st.timer_at == 0 || st.timer_sent_for == st.timer_at)
    return;
  auto wait = std::max<int64_t>(1, st.timer_at - context::now_ms());
  st.timer_sent_for = st.timer_at;
  self->delayed_send(self, std::chrono::milliseconds{wait}, timer_atom::value, st.timer_at);
}

namespace {

// The wake-up is due: one step runs the stage's on_timer, with no records in hand. Failed, the
// wake-up stays due and the step is retried like one of drained().
void run_timer_step(self_ptr self) {
  auto& st = self->state;
  auto due = st.timer_at;
  st.timer_at = 0; // consumed, unless the step fails; on_timer asks for the next one
  st.records.clear();
  st.step.begin(*st.delta);
  st.batch_end = st.sent;
  st.in_timer = true;
  bool ok = run_stage_code(self, [&](context& ctx) { st.op->on_timer(ctx, context::now_ms()); });
  st.in_timer = false;
  if (!ok) {
    st.timer_at = st.timer_at == 0 ? due : std::min(st.timer_at, due);
    return;
  }
  if (!st.delta->empty() || !st.step.commit_hooks.empty())
    send_step(self, false);
  schedule_step(self);
}

void run_consumer_step(self_ptr self) {
  auto& st = self->state;
  st.step.begin(*st.delta);
  const auto& batch_cfg = st.spec.config->batch;
  const std::vector<cursor_pos>* below =
    st.isolating ? &st.isolation_end : st.crash_isolate > 0 ? &st.crash_end : nullptr;
  size_t max = below ? 1 : batch_cfg.max_items;
  if (auto err = read_batch(st, max, below)) {
    fail(self, err);
    return;
  }
  bool moved = st.batch_end != st.sent;
  if (st.records.empty() && !moved && below) {
    // Nothing left below the isolation's end: isolation is over, the batch goes on as usual.
    st.isolating = false;
    if (st.crash_isolate > 0) {
      st.crash_isolate = 1; // leave_marker erases the marker with this step
      leave_marker(st);
      st.crash_isolate = 0;
      if (!st.delta->empty()) {
        send_step(self, false);
        settle_marker_first(st);
        schedule_step(self);
        return;
      }
    }
    st.step.abandon();
    schedule_step(self);
    return;
  }
  if (st.records.empty()) {
    if (moved) { // only undecodable records
      add_bookkeeping(st);
      send_step(self, false);
      schedule_step(self);
      return;
    }
    after_input_drained(self, "everything available is consumed");
    return;
  }
  if (!st.marker_settled) {
    st.step.abandon();
    commit_start_marker(self);
    return;
  }
  if (st.crash_isolate > 0 && st.crashes_here >= st.spec.config->retry.max_attempts) {
    dead_letter_in_hand(self,
                        "the process died " + std::to_string(st.crashes_here) +
                          " times while this stage worked on it alone (a crash, an abort or "
                          "an out-of-memory kill)",
                        st.crashes_here);
    return;
  }
  if (st.records.size() < max && batch_cfg.max_delay.count() > 0 && !st.delayed_once) {
    auto status = upstream_status(st);
    if (status && *status == upstream::running) {
      st.delayed_once = true;
      st.step.abandon();
      schedule_step(self, batch_cfg.max_delay);
      return;
    }
  }
  st.delayed_once = false;
  batch view{&st.records};
  if (!run_stage_code(self, [&](context& ctx) { st.op->process_batch(ctx, view); }))
    return;
  st.failures = 0;
  if (st.step.take_limit < st.records.size()) {
    // The stage took only part of the batch (context::take_only): the rest stays in the input,
    // and the next step waits for the wake-up the stage asked for, if any.
    take_only(st, st.step.take_limit);
    add_bookkeeping(st);
    if (!st.delta->empty() || !st.step.commit_hooks.empty()) {
      send_step(self, false);
      if (!st.records.empty())
        after_send(st);
    }
    auto wait = st.timer_at == 0 ? 0 : st.timer_at - context::now_ms();
    schedule_step(self, std::chrono::milliseconds{std::max<int64_t>(0, wait)});
    return;
  }
  add_bookkeeping(st);
  send_step(self, false);
  after_send(st);
  schedule_step(self);
}

} // namespace

void schedule_step(self_ptr self, std::chrono::milliseconds delay) {
  auto& st = self->state;
  ++st.token;
  if (delay.count() > 0) {
    if (st.reader)
      st.reader->release(); // an old snapshot pins pages LMDB could otherwise reuse
    st.at = phase::delaying;
    self->delayed_send(self, delay, step_atom::value, st.token);
  } else {
    st.at = phase::ready;
    self->send(self, step_atom::value, st.token);
  }
}

void stop_now(self_ptr self) {
  auto& st = self->state;
  if (st.code) {
    st.step.begin(*st.delta);
    context ctx{st.step};
    try {
      st.code->close(ctx);
    } catch (const std::exception& e) {
      log_event(log_level::warn, st.who, std::string{"close() threw: "} + e.what());
    } catch (const kj::Exception& e) {
      log_event(log_level::warn, st.who, std::string{"close() threw: "} + e.getDescription().cStr());
    } catch (...) {
      log_event(log_level::warn, st.who, "close() threw an unknown exception");
    }
    st.step.abandon(); // close() cannot commit: the last step already did
  }
  st.reader.reset();
  if (st.metrics)
    st.metrics->set_state(st.finishing ? worker_run_state::finished : worker_run_state::stopped);
  self->quit();
}

void try_stop(self_ptr self) {
  auto& st = self->state;
  st.stopping = true;
  if (unacked(st) == 0 || st.resend_pending)
    stop_now(self); // else the last acknowledgement stops us
  else
    st.at = phase::waiting;
}

void fail(self_ptr self, caf::error err) {
  auto& st = self->state;
  if (st.metrics) {
    st.metrics->set_state(worker_run_state::failed);
    st.metrics->set_error(describe(err));
  }
  if (code_of(err) == errc::store_corrupt) {
    log_event(log_level::error, st.who, describe(err));
    caf::anon_send(st.node->node, fatal_atom::value, st.who + ": " + describe(err));
  }
  st.reader.reset();
  self->quit(std::move(err));
}

void run_step(self_ptr self) {
  auto& st = self->state;
  if (st.stopping) {
    try_stop(self);
    return;
  }
  if (st.resend_pending) {
    st.at = phase::waiting;
    return;
  }
  if (st.paused && st.paused->load(std::memory_order_relaxed)) {
    // Paused by an operator (troupectl pause): the steps in flight commit, no new one starts.
    // Looked at again every pause_poll; resume takes effect within it.
    if (st.metrics)
      st.metrics->holding = true;
    schedule_step(self, pause_poll);
    return;
  }
  if (st.metrics)
    st.metrics->holding = false;
  st.step_started = std::chrono::steady_clock::now();
  if (auto err = st.reader->refresh()) {
    fail(self, err);
    return;
  }
  settle(st);
  auto in_flight = unacked(st);
  // One step at a time while a marker commits or while isolating because of crashes: each of
  // those steps must be committed before the next runs stage code.
  bool serial = !st.marker_settled || st.crash_isolate > 0;
  if (in_flight >= st.depth || (serial && in_flight > 0)) {
    st.at = phase::waiting;
    st.reader->release(); // a snapshot held while waiting pins pages the writer could reuse
    return;
  }
  switch (output_state(st)) {
    case outputs::free:
      break;
    case outputs::full:
      st.at = phase::idle; // a consumer's cursor move wakes us
      st.reader->release();
      return;
    case outputs::full_and_consumer_failed:
      log_event(log_level::warn, st.who,
                "stops: an output log is full and a stage reading it failed");
      stop_for_good(self);
      return;
    case outputs::all_consumers_failed:
      log_event(log_level::warn, st.who,
                "stops: every stage reading its output failed, so nothing it makes could be "
                "consumed");
      stop_for_good(self);
      return;
  }
  if (st.op && !st.leases && st.timer_at != 0 && st.timer_at <= context::now_ms())
    run_timer_step(self);
  else if (st.src)
    run_source_step(self);
  else if (st.leases)
    run_lease_step(self);
  else
    run_consumer_step(self);
}

} // namespace troupe::detail
