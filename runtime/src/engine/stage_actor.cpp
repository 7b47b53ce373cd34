// The stage worker actor: its start (barrier, then cursors, state and the stage's open), its
// messages and its stop. What a step does is in worker_step.cpp.
#include "engine/worker.hpp"

#include "base/endian.hpp"
#include "base/log.hpp"
#include "engine/crash_blame.hpp"
#include "writer/writer.hpp"
#include "supervision/supervisor.hpp"

#include <caf/all.hpp>
#include <kj/exception.h>

#include <exception>

namespace troupe {

namespace detail {

const char* worker_state::name = "troupe.stage";

namespace {

// The value of an expected, or an exception that the actor's exception handler turns into its
// exit reason (the supervisor decides what follows).
template <class T>
T take(caf::expected<T>&& x) {
  if (!x)
    throw store_failure(x.error());
  return std::move(*x);
}

// Loads cursors, counters and markers, builds the stage object and opens it. Throws on failure:
// the actor then dies with the error, and its supervisor decides.
void init(self_ptr self) {
  auto& st = self->state;
  const auto& cfg = *st.spec.config;
  auto& db = *st.node->db;
  st.reader = db.reader();
  if (auto err = st.reader->refresh())
    throw store_failure(err);
  st.depth = std::max<uint32_t>(1, cfg.batch.in_flight);
  st.blame_path = blame_file(st.node->app->data_dir, cfg.name, st.spec.worker);
  const auto& owned = st.spec.owned;
  st.sent.clear();
  for (size_t i = 0; i < st.spec.inputs.size(); ++i)
    for (auto p : owned) {
      auto c = take(st.reader->cursor(st.spec.inputs[i], cfg.name, p));
      if (!c && cfg.start_latest) { // new to this input: after its newest record
        auto info = take(st.reader->partition(st.spec.inputs[i], p));
        c = cursor_pos{info.head, info.bytes_head};
      }
      st.sent.push_back(c.value_or(cursor_pos{})); // nothing is in flight yet
    }
  st.batch_end = st.sent;
  if (st.metrics && st.metrics->restarts.load() > 0 && !st.sent.empty()) {
    std::string at;
    for (size_t i = 0; i < st.spec.inputs.size(); ++i)
      for (size_t k = 0; k < owned.size(); ++k)
        at += (at.empty() ? "" : ", ") + st.spec.input_names[i] +
              (st.spec.edge_partitions[st.spec.inputs[i]] > 1 ? "[" + std::to_string(owned[k]) + "]" : "") +
              " at " + std::to_string(st.sent[i * owned.size() + k].next);
    if (at.size() > 400)
      at = at.substr(0, 400) + ", ...";
    log_event(log_level::info, st.who, "restarted: resumes after its last commit: " + at);
  }

  auto& step = st.step;
  step.stage_name = cfg.name;
  step.stage = st.spec.stage;
  step.worker = st.spec.worker;
  step.workers = cfg.workers;
  step.partitions = st.spec.partitions;
  step.has_inputs = !st.spec.inputs.empty();
  step.owned = step.has_inputs ? owned : std::vector<partition_id>{0};
  step.mode = st.node->app->mode;
  step.ports = st.spec.ports;
  step.edge_partitions = st.spec.edge_partitions;
  step.bind_payloads(*st.node->app, cfg);
  step.reader = st.reader.get();
  step.in_flight = &st.overlays;
  step.self = self->address();
  step.origins.assign(st.spec.partitions, std::string{});
  step.next_id.assign(st.spec.partitions, 0);
  bool all_done = true;
  st.leases = st.spec.leases;
  step.leasing = st.leases != nullptr;
  if (step.leasing) {
    step.origins[0] = cfg.name + "@" + std::to_string(st.spec.worker);
    auto id = take(st.reader->state(st.spec.stage, state_scope::worker, st.spec.worker,
                                    state_space::runtime, "next_id"));
    if (id && id->size() == 8)
      step.next_id[0] = get_le64(id->data());
  }
  for (auto p : step.owned) {
    if (!step.leasing)
      step.origins[p] = st.spec.partitions > 1 ? cfg.name + "/" + std::to_string(p) : cfg.name;
    auto id = step.leasing ? std::optional<std::string>{}
                           : take(st.reader->state(st.spec.stage, state_scope::partition, p,
                                                   state_space::runtime, "next_id"));
    if (id && id->size() == 8)
      step.next_id[p] = get_le64(id->data());
    auto done = take(
      st.reader->state(st.spec.stage, state_scope::partition, p, state_space::runtime, "done"));
    all_done = all_done && done.has_value();
  }
  step.first_id = step.next_id;
  if (step.leasing) {
    // Its items' attempts live in the lease table; a death of the process loses them with the
    // leases (see CONFIG.md, "Work queues"), so no crash marker.
    st.marker_settled = true;
    if (auto err = st.leases->restarted(st.spec.worker, *st.reader))
      throw store_failure(err);
  } else if (!st.spec.inputs.empty()) {
    auto marker = take(st.reader->state(st.spec.stage, state_scope::worker, st.spec.worker,
                                        state_space::runtime, "crash"));
    if (marker)
      st.found_marker = crash_marker::decode(*marker);
  } else {
    st.marker_settled = true; // sources read no records
  }

  st.code = cfg.type_info->make(*cfg.stage_params);
  st.op = dynamic_cast<stage*>(st.code.get());
  st.src = dynamic_cast<source*>(st.code.get());
  if (!st.op && !st.src)
    throw std::logic_error("stage type '" + cfg.type + "' builds neither a stage nor a source");
  st.step.begin(*st.delta);
  context ctx{step};
  if (all_done) {
    st.finishing = true;
    if (st.src)
      if (auto changed = st.src->changed_since_done(ctx))
        log_event(log_level::warn, st.who,
                  "finished in an earlier run, and its input changed since: " + *changed +
                    "; it is not read again. To process it afresh, clear the app's data "
                    "(`troupe reset " + st.node->app->file + "`) and run again");
    st.step.abandon();
    st.code.reset(); // done in an earlier run: never opened, so never closed
    return;
  }
  st.code->open(ctx);
  take_wake_request(st);
  step.finish();
}

// What a worker whose code threw dies with (its supervisor decides what follows), logged.
caf::error exit_reason_of(worker_state& st, std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const store_failure& e) {
    log_event(log_level::error, st.who, std::string{"failed: "} + e.what());
    if (code_of(e.error()) == errc::store_corrupt)
      caf::anon_send(st.node->node, fatal_atom::value, st.who + ": " + describe(e.error()));
    return e.error();
  } catch (const permanent_error& e) {
    log_event(log_level::error, st.who, std::string{"failed for good: "} + e.what());
    return make_error(errc::permanent, st.who + ": " + e.what());
  } catch (const std::exception& e) {
    log_event(log_level::error, st.who, std::string{"failed: "} + e.what());
    return make_error(errc::stage_failed, st.who + ": " + e.what());
  } catch (const kj::Exception& e) {
    std::string what = e.getDescription().cStr();
    log_event(log_level::error, st.who, "failed: " + what);
    return make_error(errc::stage_failed, st.who + ": " + what);
  } catch (...) {
    log_event(log_level::error, st.who, "failed: unknown exception");
    return make_error(errc::stage_failed, st.who + ": unknown exception");
  }
}

caf::behavior stage_worker(self_ptr self, std::shared_ptr<const node_context> node,
                           worker_spec spec) {
  auto& st = self->state;
  st.node = std::move(node);
  st.spec = std::move(spec);
  st.delta = std::make_shared<step_delta>();
  st.who = "stage " + st.spec.config->name +
           (st.spec.config->workers > 1 ? "/" + std::to_string(st.spec.worker) : "");
  if (const auto* m = st.node->metrics.get()) {
    if (auto* s = m->stage(st.spec.config->name)) {
      st.paused = &s->paused;
      st.metrics = st.spec.worker < s->workers.size() ? s->workers[st.spec.worker].get() : nullptr;
    }
  }
  if (st.metrics) { // a new incarnation: nothing of its predecessor's is in flight any more
    st.metrics->set_state(worker_run_state::starting);
    st.metrics->in_flight = 0;
    st.metrics->holding = false;
  }
  self->set_exception_handler([=](std::exception_ptr& ep) -> caf::error {
    auto& st = self->state;
    auto err = exit_reason_of(st, ep);
    if (st.metrics) {
      st.metrics->set_state(worker_run_state::failed);
      st.metrics->set_error(describe(err));
    }
    return err;
  });
  auto writer = st.node->writer;
  for (auto e : st.spec.inputs)
    self->send(writer, watch_atom::value, e, true, caf::actor{self});
  for (auto e : st.spec.outputs)
    self->send(writer, watch_atom::value, e, false, caf::actor{self});
  // Whatever a predecessor of this worker sent must be committed before we read our cursors.
  self->request(writer, caf::infinite, barrier_atom::value, st.spec.stage, st.spec.worker)
    .then(
      [=](uint64_t incarnation) {
        auto& st = self->state;
        st.delta->incarnation = incarnation;
        init(self);
        if (st.finishing || st.stopping) { // done in an earlier run, or told to stop
          stop_now(self);
          return;
        }
        if (st.metrics)
          st.metrics->set_state(worker_run_state::running);
        if (!st.delta->empty() || !st.step.commit_hooks.empty()) // open()'s writes commit first
          send_step(self, false);
        schedule_step(self);
      },
      [=](caf::error& err) { self->quit(err); });
  return {
    [=](step_atom, uint64_t token) {
      if (token == self->state.token)
        run_step(self);
    },
    [=](resend_atom) { resend(self); },
    [=](timer_atom, int64_t at) {
      auto& st = self->state;
      if (st.timer_sent_for == at)
        st.timer_sent_for = 0;
      if (st.at != phase::idle || st.timer_at == 0)
        return;
      if (st.timer_at <= context::now_ms())
        schedule_step(self);
      else
        arm_timer(self); // the clocks differ by a hair: wait the rest
    },
    [=](poke_atom) {
      if (self->state.at == phase::polling)
        schedule_step(self);
    },
    [=](wake_atom) {
      auto& st = self->state;
      if (st.resend_pending) // there may be room now: send the refused steps again at once
        resend(self);
      else if (st.at == phase::idle)
        schedule_step(self);
    },
    [=](reload_atom) -> bool {
      auto& st = self->state;
      settle(st);
      if (st.src || st.leases || !st.reader || unacked(st) > 0 || st.resend_pending)
        return false;
      if (auto err = st.reader->refresh()) {
        fail(self, err);
        return false;
      }
      const auto& owned = st.spec.owned;
      for (size_t i = 0; i < st.spec.inputs.size(); ++i)
        for (size_t k = 0; k < owned.size(); ++k) {
          auto c = take(st.reader->cursor(st.spec.inputs[i], st.spec.config->name, owned[k]));
          st.sent[i * owned.size() + k] = c.value_or(cursor_pos{});
        }
      st.batch_end = st.sent;
      st.isolating = false;
      st.failures = 0;
      log_event(log_level::warn, st.who, "reads its input again from the rewound cursors");
      return true;
    },
    [=](stop_atom) {
      auto& st = self->state;
      st.stopping = true;
      if (st.at != phase::starting && st.at != phase::ready)
        try_stop(self); // a step message on its way stops at its start
    },
  };
}

} // namespace

} // namespace detail

caf::actor spawn_stage_worker(caf::event_based_actor* parent,
                              std::shared_ptr<const node_context> node, worker_spec spec) {
  if (spec.config->type_info && spec.config->type_info->blocking)
    return parent->spawn<caf::detached>(detail::stage_worker, std::move(node), std::move(spec));
  return parent->spawn(detail::stage_worker, std::move(node), std::move(spec));
}

} // namespace troupe
