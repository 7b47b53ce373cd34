// Steps in flight: a worker sends a step's delta to the writer and goes on with the next step
// while it commits, up to `depth` unacknowledged steps. The writer commits a worker's steps in
// the order of their numbers; when one fails because the store is full (or short of room), the
// writer refuses its successors too, and the worker sends them all again, in order, after a
// backoff. Any other failure ends the worker: its successor resumes from what was committed.
#include "engine/worker.hpp"

#include "base/backoff.hpp"
#include "base/log.hpp"
#include "codec/codec.hpp"
#include "writer/writer.hpp"

#include <caf/all.hpp>

#include <algorithm>

namespace troupe::detail {

namespace {

// A hook that throws must not take the worker down with a committed step behind it: it is logged.
void run_hooks(worker_state& st, sent_step& step) {
  auto hooks = std::move(step.hooks);
  for (auto& hook : hooks) {
    try {
      hook();
    } catch (const std::exception& e) {
      log_event(log_level::warn, st.who, std::string{"an on_commit hook threw: "} + e.what());
    } catch (...) {
      log_event(log_level::warn, st.who, "an on_commit hook threw an unknown exception");
    }
  }
}

void on_acked(self_ptr self, uint64_t step) {
  auto& st = self->state;
  sent_step* entry = nullptr;
  for (auto& f : st.flight)
    if (f.delta->step == step)
      entry = &f;
  if (!entry || entry->acked)
    return; // a resent step answered twice cannot happen; be safe
  entry->acked = true;
  if (st.metrics) {
    st.metrics->in_flight = unacked(st);
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - entry->started).count();
    auto in = st.leases ? entry->leases.size() : entry->records_in;
    st.metrics->step_committed(in, entry->delta->outputs.size(), entry->delta->dead.size(),
                               static_cast<uint64_t>(std::max<int64_t>(micros, 0)), now_ms());
  }
  if (st.leases)
    on_lease_step_acked(st, *entry);
  st.resend_attempts = 0;
  st.waiting_since = {};
  if (st.waiting_reported) {
    log_event(log_level::info, st.who, "the store accepts writes again; resuming");
    st.waiting_reported = false;
  }
  if (entry->marker)
    st.marker_settled = true;
  run_hooks(st, *entry);
  if (st.finishing || st.stopping) {
    if (unacked(st) > 0)
      return; // the last acknowledgement ends the worker
    if (st.finishing)
      log_event(log_level::info, st.who,
                st.src ? "finished: the source is drained" : "finished: all input consumed");
    stop_now(self);
    return;
  }
  // A step waiting for room in flight goes as soon as there is room (run_step checks again).
  if (st.at == phase::waiting && !st.resend_pending)
    schedule_step(self);
}

void on_refused(self_ptr self, uint64_t step, caf::error& err) {
  auto& st = self->state;
  if (code_of(err) == errc::stopped) {
    // Refused as stale: a newer incarnation of this worker runs. Leave quietly.
    log_event(log_level::warn, st.who, "a newer instance took over; this one stops");
    self->quit();
    return;
  }
  if (code_of(err) == errc::out_of_order)
    return; // an earlier step was refused; its resend sends this one again
  if (!is_waitable(err)) {
    fail(self, err); // the supervisor restarts us from the committed state
    return;
  }
  if (st.resend_pending)
    return;
  // Waiting for room in the map is flow control, reported by the writer; a stage says so only
  // when its own wait lasts. A full disk is news at once.
  auto now = std::chrono::steady_clock::now();
  if (st.waiting_since == std::chrono::steady_clock::time_point{})
    st.waiting_since = now;
  bool lasting = now - st.waiting_since >= std::chrono::seconds{5};
  if (!st.waiting_reported && (lasting || code_of(err) == errc::disk_full)) {
    log_event(code_of(err) == errc::disk_full ? log_level::error : log_level::warn, st.who,
              describe(err) + "; this stage's steps wait and are sent again (step " +
                std::to_string(step) + " and after)");
    st.waiting_reported = true;
  }
  if (st.stopping) {
    stop_now(self); // the refused steps never committed, so nothing of them is lost
    return;
  }
  st.resend_pending = true;
  st.at = phase::waiting;
  // The deltas hold copies of all they need; a held snapshot would pin the pages that consumers
  // free, and the map could never make room again.
  st.reader->release();
  ++st.resend_attempts;
  auto delay = backoff_delay(std::chrono::milliseconds{50}, std::chrono::milliseconds{5000},
                             st.resend_attempts);
  self->delayed_send(self, delay, resend_atom::value);
}

void request_commit(self_ptr self, const step_delta_ptr& delta) {
  auto step = delta->step;
  self->request(self->state.node->writer, caf::infinite, commit_atom::value, delta)
    .then([=](caf::ok_atom) { on_acked(self, step); },
          [=](caf::error& err) { on_refused(self, step, err); });
}

} // namespace

unsigned unacked(const worker_state& st) {
  unsigned n = 0;
  for (const auto& f : st.flight)
    n += f.acked ? 0 : 1;
  return n;
}

void send_step(self_ptr self, bool finishing, bool marker) {
  auto& st = self->state;
  auto delta = std::move(st.delta);
  delta->step = ++st.step_counter;
  uint64_t records_in = 0;
  for (size_t i = 0; i < st.batch_end.size() && i < st.sent.size(); ++i)
    records_in += st.batch_end[i].next - st.sent[i].next;
  st.flight.push_back({delta, st.batch_end, false, finishing, marker, {}, {}, records_in,
                       st.step_started, std::move(st.step.commit_hooks)});
  st.step.commit_hooks.clear();
  st.overlays.emplace_back();
  st.overlays.back().swap(st.step.overlay);
  st.sent = st.batch_end;
  if (finishing)
    st.finishing = true;
  if (!st.spare.empty()) {
    st.delta = std::move(st.spare.back());
    st.spare.pop_back();
  } else {
    // A new delta starts as big as the last one was, so a full step does not grow it by copies.
    st.delta = std::make_shared<step_delta>();
    st.delta->arena.reserve(delta->arena.capacity());
    st.delta->outputs.reserve(delta->outputs.capacity());
  }
  st.delta->incarnation = delta->incarnation;
  if (!st.resend_pending) // else the resend sends it, after its predecessors
    request_commit(self, delta);
  if (st.metrics)
    st.metrics->in_flight = unacked(st);
}

void settle(worker_state& st) {
  while (!st.flight.empty() && st.flight.front().acked) {
    if (st.flight.front().delta.use_count() == 1)
      st.spare.push_back(std::move(st.flight.front().delta));
    st.flight.pop_front();
    st.overlays.pop_front();
  }
}

void resend(self_ptr self) {
  auto& st = self->state;
  if (!st.resend_pending)
    return;
  st.resend_pending = false;
  for (auto& f : st.flight)
    if (!f.acked)
      request_commit(self, f.delta);
}

} // namespace troupe::detail
