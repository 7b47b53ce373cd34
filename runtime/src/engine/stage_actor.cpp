#include "engine/stage_actor.hpp"

#include "base/log.hpp"
#include "engine/step_impl.hpp"
#include "supervision/supervisor.hpp"
#include "writer/writer.hpp"

#include <caf/all.hpp>
#include <kj/exception.h>

#include <algorithm>
#include <exception>

namespace troupe {

namespace {

using step_atom = caf::atom_constant<caf::atom("step")>;

enum class phase { starting, idle, delaying, committing, backing_off };

struct worker_state {
  std::shared_ptr<const node_context> node;
  worker_spec spec;
  std::string who; // "stage <name>/<worker>" for the log
  std::unique_ptr<stage_base> code;
  stage* op = nullptr;
  source* src = nullptr;
  std::unique_ptr<store_reader> reader;
  detail::step_impl step;
  step_delta_ptr delta = std::make_shared<step_delta>();

  std::vector<uint64_t> next;       // per input: first sequence number not yet consumed
  std::vector<uint64_t> batch_end;  // per input: where the step in hand ends
  size_t rotation = 0;              // which input a step reads first
  std::vector<detail::record_impl> records;
  std::vector<step_delta::dead_letter> undecodable; // of the batch in hand
  std::vector<std::unique_ptr<envelope_decoder>> decoders;

  phase at = phase::starting;
  uint64_t token = 0;          // stale step messages carry an older token
  uint32_t failures = 0;       // failed attempts of the step in hand
  bool isolating = false;      // retrying record by record after max_attempts
  std::vector<uint64_t> isolation_end;
  bool delayed_once = false;   // a partial batch already waited max_delay
  bool finishing = false;      // the committed step marks this worker done
  bool stopping = false;
  bool store_full_reported = false;
  std::chrono::milliseconds after_commit{0}; // delay of the step after this commit (idle source)
  uint32_t commit_retries = 0;
  uint32_t transient_failures = 0; // consecutive steps failed by a transient_error

  static const char* name;
};
const char* worker_state::name = "troupe.stage";

using self_ptr = caf::stateful_actor<worker_state>*;

void run_step(self_ptr self);

void schedule_step(self_ptr self, std::chrono::milliseconds delay = std::chrono::milliseconds{0}) {
  auto& st = self->state;
  ++st.token;
  if (delay.count() > 0 && st.reader)
    st.reader->release(); // an old snapshot pins pages LMDB could otherwise reuse
  if (delay.count() == 0)
    self->send(self, step_atom::value, st.token);
  else
    self->delayed_send(self, delay, step_atom::value, st.token);
}

std::chrono::milliseconds grow(std::chrono::milliseconds base, uint32_t n,
                               std::chrono::milliseconds cap) {
  auto d = base;
  for (uint32_t i = 1; i < n && d < cap; ++i)
    d *= 2;
  return std::min(d, cap);
}

void stop_now(self_ptr self) {
  auto& st = self->state;
  if (st.code) {
    st.step.begin(*st.delta);
    detail::step_impl& s = st.step;
    context ctx{s};
    try {
      st.code->close(ctx);
    } catch (const std::exception& e) {
      log_event(log_level::warn, st.who, std::string{"close() threw: "} + e.what());
    } catch (const kj::Exception& e) {
      log_event(log_level::warn, st.who,
                std::string{"close() threw: "} + e.getDescription().cStr());
    } catch (...) {
      log_event(log_level::warn, st.who, "close() threw an unknown exception");
    }
    st.step.abandon(); // close() cannot commit: the last step already did
  }
  st.reader.reset();
  self->quit();
}

void on_committed(self_ptr self) {
  auto& st = self->state;
  st.next = st.batch_end;
  st.failures = 0;
  st.commit_retries = 0;
  st.delayed_once = false;
  if (st.store_full_reported) {
    log_event(log_level::info, st.who, "the store accepts writes again; resuming");
    st.store_full_reported = false;
  }
  if (st.isolating &&
      std::equal(st.next.begin(), st.next.end(), st.isolation_end.begin(),
                 [](uint64_t a, uint64_t b) { return a >= b; }))
    st.isolating = false;
  if (st.finishing) {
    log_event(log_level::info, st.who,
              st.src ? "finished: the source is drained" : "finished: all input consumed");
    stop_now(self);
    return;
  }
  if (st.stopping) {
    stop_now(self);
    return;
  }
  auto delay = st.after_commit;
  st.after_commit = std::chrono::milliseconds{0};
  if (delay.count() > 0)
    st.at = phase::delaying; // a stop need not wait out the delay
  schedule_step(self, delay);
}

void commit(self_ptr self) {
  auto& st = self->state;
  st.at = phase::committing;
  self->request(st.node->writer, caf::infinite, commit_atom::value, st.delta)
    .then([=](caf::ok_atom) { on_committed(self); },
          [=](caf::error& err) {
            auto& st = self->state;
            if (code_of(err) == errc::stopped) {
              // Refused as stale: a newer incarnation of this worker runs. Leave quietly.
              log_event(log_level::warn, st.who, "a newer instance took over; this one stops");
              self->quit();
              return;
            }
            if (code_of(err) != errc::store_full) {
              self->quit(err); // the supervisor restarts us from the committed state
              return;
            }
            if (!st.store_full_reported) {
              log_event(log_level::error, st.who,
                        describe(err) + "; intake stops and this step is retried");
              st.store_full_reported = true;
            }
            if (st.stopping) {
              stop_now(self); // the step never committed, so nothing of it is lost
              return;
            }
            st.at = phase::backing_off;
            // The delta holds copies of all it needs; a held snapshot would pin the pages that
            // consumers free, and the map could never make room again.
            st.reader->release();
            ++st.commit_retries;
            auto delay = grow(std::chrono::milliseconds{50}, st.commit_retries,
                              std::chrono::milliseconds{5000});
            ++st.token;
            self->delayed_send(self, delay, commit_atom::value, st.token);
          });
}

// Everything a consuming step commits besides what the stage code wrote: the dead letters of
// undecodable records and the advanced cursors.
void add_cursor_moves(worker_state& st) {
  for (auto& d : st.undecodable)
    st.delta->dead.push_back(d);
  st.undecodable.clear();
  for (size_t i = 0; i < st.spec.inputs.size(); ++i)
    if (st.batch_end[i] != st.next[i])
      st.delta->cursors.push_back({st.spec.inputs[i], group_name(st.spec.config->name, st.spec.worker),
                                   st.batch_end[i]});
}

void mark_done(worker_state& st) {
  st.delta->state.push_back({state_space::runtime, "done", std::string{"1"}});
  st.delta->wake = st.spec.outputs;
  st.finishing = true;
}

enum class outputs { free, full, full_and_consumer_failed };

// Whether an output log is at its cap (backpressure), and whether it can never drain because a
// stage reading it was given up.
outputs output_state(worker_state& st) {
  auto result = outputs::free;
  for (size_t i = 0; i < st.spec.outputs.size(); ++i) {
    if (st.reader->backlog(st.spec.outputs[i]) < st.spec.output_caps[i])
      continue;
    result = outputs::full;
    for (auto consumer : st.spec.output_consumers[i])
      if (st.node->failed->contains(consumer))
        return outputs::full_and_consumer_failed;
  }
  return result;
}

enum class upstream { running, done, failed };

// Whether every producer of this worker's inputs finished (done, persisted) or was given up in
// this run (failed, not persisted).
upstream upstream_status(worker_state& st) {
  bool failed = false;
  for (auto [stage, workers] : st.spec.upstream) {
    if (st.node->failed->contains(stage)) {
      failed = true;
      continue;
    }
    for (uint32_t w = 0; w < workers; ++w)
      if (!st.reader->state(stage, w, state_space::runtime, "done"))
        return upstream::running;
  }
  return failed ? upstream::failed : upstream::done;
}

// Reads up to `max` records of this worker's partition; fills records and batch_end.
caf::error read_batch(worker_state& st, size_t max) {
  st.records.clear();
  st.undecodable.clear();
  st.batch_end = st.next;
  auto n_inputs = st.spec.inputs.size();
  auto workers = st.spec.config->workers;
  for (size_t k = 0; k < n_inputs && st.records.size() < max; ++k) {
    auto i = (st.rotation + k) % n_inputs;
    auto from = std::max(st.next[i], st.reader->tail(st.spec.inputs[i]));
    st.batch_end[i] = from;
    caf::error decode_err;
    auto visited = st.reader->read(
      st.spec.inputs[i], from, SIZE_MAX, [&](uint64_t seq, std::string_view bytes) {
        if (workers > 1 && seq % workers != st.spec.worker) {
          st.batch_end[i] = seq + 1;
          return true;
        }
        if (st.records.size() >= max)
          return false;
        auto idx = st.records.size();
        if (st.decoders.size() <= idx)
          st.decoders.push_back(std::make_unique<envelope_decoder>());
        auto& dec = *st.decoders[idx];
        if (auto err = dec.decode(bytes)) {
          // A record that does not decode cannot be processed by anyone: dead-letter it with
          // whatever this step commits.
          log_event(log_level::warn, st.who,
                    "record " + std::to_string(seq) + " of " + st.spec.input_names[i] +
                      " goes to the dead-letter log: " + describe(err));
          st.undecodable.push_back({detail::make_dead_letter(
            st.spec.config->name, describe(err), 0, st.spec.input_names[i], seq, bytes)});
          st.batch_end[i] = seq + 1;
          return true;
        }
        detail::record_impl r;
        r.bytes = bytes;
        r.input = &st.spec.input_names[i];
        r.position = seq;
        // While isolating, each record has already failed max_attempts times in its batch.
        r.extra_attempts =
          st.isolating ? st.spec.config->retry.max_attempts + st.failures : st.failures;
        r.decoder = &dec;
        r.step = &st.step;
        st.records.push_back(r);
        st.batch_end[i] = seq + 1;
        return true;
      });
    if (!visited)
      return visited.error();
  }
  st.rotation = (st.rotation + 1) % std::max<size_t>(1, n_inputs);
  return {};
}

void on_step_failure(self_ptr self, const std::string& what) {
  auto& st = self->state;
  st.step.abandon();
  ++st.failures;
  const auto& retry = st.spec.config->retry;
  if (st.src) {
    if (st.failures >= retry.max_attempts) {
      self->quit(make_error(errc::stage_failed, "source failed " + std::to_string(st.failures) +
                                                  " times in a row: " + what));
      return;
    }
  } else if (st.isolating || (st.failures >= retry.max_attempts && st.records.size() == 1)) {
    // The record in hand alone fails: it goes to the dead-letter log and the stage goes on.
    // Tried max_attempts times within its batch, then once more on its own (when isolating).
    const auto& r = st.records.front();
    uint32_t attempts = st.isolating ? retry.max_attempts + st.failures : st.failures;
    log_event(log_level::warn, st.who,
              "record " + std::to_string(r.position) + " of " + *r.input +
                " goes to the dead-letter log after " + std::to_string(attempts) +
                " failed attempts: " + what);
    st.step.begin(*st.delta);
    st.delta->dead.push_back({detail::make_dead_letter(st.spec.config->name, what,
                                                       r.decoder->root().getAttempt() + attempts,
                                                       *r.input, r.position, r.bytes)});
    add_cursor_moves(st);
    st.failures = 0;
    commit(self);
    return;
  } else if (st.failures >= retry.max_attempts) {
    log_event(log_level::warn, st.who,
              "a batch of " + std::to_string(st.records.size()) + " records failed " +
                std::to_string(st.failures) + " times (" + what +
                "); retrying record by record to find the failing ones");
    st.isolating = true;
    st.isolation_end = st.batch_end;
    st.failures = 0;
    schedule_step(self);
    return;
  }
  log_event(log_level::warn, st.who,
            "step failed (attempt " + std::to_string(st.failures) + " of " +
              std::to_string(retry.max_attempts) + "): " + what);
  st.at = phase::backing_off;
  schedule_step(self, grow(retry.backoff, st.failures, std::chrono::milliseconds{30000}));
}

// A failure outside the records: retry the step for as long as it takes, growing the delay.
void on_transient_failure(self_ptr self, const std::string& what) {
  auto& st = self->state;
  st.step.abandon();
  ++st.transient_failures;
  if (st.transient_failures == 1 || st.transient_failures % 100 == 0)
    log_event(log_level::warn, st.who,
              "step failed, not for its records (" + what + "); retrying until it succeeds" +
                (st.transient_failures > 1
                   ? " (" + std::to_string(st.transient_failures) + " attempts so far)"
                   : ""));
  if (st.stopping) {
    stop_now(self);
    return;
  }
  st.at = phase::backing_off;
  schedule_step(self, grow(std::chrono::milliseconds{50}, st.transient_failures,
                           std::chrono::milliseconds{5000}));
}

// The step boundary: stage code runs here, and whatever it throws fails the step (nothing of it
// is kept) instead of the actor. Returns whether the code completed.
template <class F>
bool run_stage_code(self_ptr self, F&& code) {
  auto& st = self->state;
  try {
    context ctx{st.step};
    code(ctx);
    st.step.finish();
    st.transient_failures = 0;
    return true;
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
  st.batch_end = st.next;
  produce_result result;
  bool ok = run_stage_code(self, [&](context& ctx) {
    result = st.src->produce(ctx, st.spec.config->batch.max_items);
  });
  if (!ok)
    return;
  if (result.what == produce_result::kind::done)
    mark_done(st);
  if (!st.delta->empty()) {
    if (result.what == produce_result::kind::idle)
      st.after_commit = std::chrono::milliseconds{std::max<uint32_t>(1, result.idle_ms)};
    commit(self);
    return;
  }
  st.at = phase::delaying;
  schedule_step(self, std::chrono::milliseconds{
                        result.what == produce_result::kind::idle ? std::max<uint32_t>(1, result.idle_ms) : 1});
}

void run_consumer_step(self_ptr self) {
  auto& st = self->state;
  st.step.begin(*st.delta);
  const auto& batch_cfg = st.spec.config->batch;
  size_t max = st.isolating ? 1 : batch_cfg.max_items;
  if (auto err = read_batch(st, max)) {
    self->quit(err);
    return;
  }
  bool moved = st.batch_end != st.next;
  if (st.records.empty()) {
    if (moved) { // only others' partitions or undecodable records
      add_cursor_moves(st);
      commit(self);
      return;
    }
    switch (upstream_status(st)) {
      case upstream::done:
        mark_done(st);
        commit(self);
        return;
      case upstream::failed:
        log_event(log_level::warn, st.who,
                  "stops: everything available is consumed and a stage upstream failed");
        st.step.abandon();
        stop_now(self);
        return;
      case upstream::running:
        st.at = phase::idle;
        st.reader->release();
        return;
    }
  }
  if (st.records.size() < max && batch_cfg.max_delay.count() > 0 && !st.delayed_once &&
      upstream_status(st) == upstream::running) {
    st.delayed_once = true;
    st.at = phase::delaying;
    st.step.abandon();
    schedule_step(self, batch_cfg.max_delay);
    return;
  }
  batch view{&st.records};
  if (!run_stage_code(self, [&](context& ctx) { st.op->process_batch(ctx, view); }))
    return;
  add_cursor_moves(st);
  commit(self);
}

void run_step(self_ptr self) {
  auto& st = self->state;
  if (st.stopping) {
    stop_now(self);
    return;
  }
  if (auto err = st.reader->refresh()) {
    self->quit(err);
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
      stop_now(self);
      return;
  }
  if (st.src)
    run_source_step(self);
  else
    run_consumer_step(self);
}

// Loads cursors and state, builds the stage object and opens it. Throws on failure: the actor
// then dies with the error, and its supervisor decides.
void init(self_ptr self) {
  auto& st = self->state;
  const auto& cfg = *st.spec.config;
  st.reader = st.node->db->reader();
  if (auto err = st.reader->refresh())
    throw std::runtime_error(describe(err));
  auto group = group_name(cfg.name, st.spec.worker);
  st.next.clear();
  for (auto e : st.spec.inputs)
    st.next.push_back(st.reader->cursor(e, group).value_or(0));
  st.batch_end = st.next;
  auto& step = st.step;
  step.stage_name = cfg.name;
  step.origin = cfg.workers > 1 ? cfg.name + "#" + std::to_string(st.spec.worker) : cfg.name;
  step.stage = st.spec.stage;
  step.worker = st.spec.worker;
  step.workers = cfg.workers;
  step.mode = st.node->app->mode;
  step.ports = st.spec.ports;
  step.bind_payloads(*st.node->app, cfg);
  step.reader = st.reader.get();
  if (auto id = st.reader->state(st.spec.stage, st.spec.worker, state_space::runtime, "next_id");
      id && id->size() == 8) {
    uint64_t x = 0;
    for (int i = 7; i >= 0; --i)
      x = (x << 8) | static_cast<unsigned char>((*id)[i]);
    step.next_id = x;
  }
  if (st.reader->state(st.spec.stage, st.spec.worker, state_space::runtime, "done")) {
    st.finishing = true;
    return;
  }
  st.code = cfg.type_info->make(*cfg.stage_params);
  st.op = dynamic_cast<stage*>(st.code.get());
  st.src = dynamic_cast<source*>(st.code.get());
  if (!st.op && !st.src)
    throw std::logic_error("stage type '" + cfg.type + "' builds neither a stage nor a source");
  step.begin(*st.delta);
  context ctx{step};
  st.code->open(ctx);
  step.finish();
}

caf::behavior stage_worker(self_ptr self, std::shared_ptr<const node_context> node,
                           worker_spec spec) {
  auto& st = self->state;
  st.node = std::move(node);
  st.spec = std::move(spec);
  st.who = "stage " + st.spec.config->name +
           (st.spec.config->workers > 1 ? "/" + std::to_string(st.spec.worker) : "");
  self->set_exception_handler([=](std::exception_ptr& ep) -> caf::error {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      log_event(log_level::error, self->state.who, std::string{"failed: "} + e.what());
      return make_error(errc::stage_failed, self->state.who + ": " + e.what());
    } catch (const kj::Exception& e) {
      std::string what = e.getDescription().cStr();
      log_event(log_level::error, self->state.who, "failed: " + what);
      return make_error(errc::stage_failed, self->state.who + ": " + what);
    } catch (...) {
      log_event(log_level::error, self->state.who, "failed: unknown exception");
      return make_error(errc::stage_failed, self->state.who + ": unknown exception");
    }
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
        init(self);
        auto& st = self->state;
        st.delta->incarnation = incarnation;
        if (st.finishing || st.stopping) { // done in an earlier run, or told to stop
          stop_now(self);
          return;
        }
        if (!st.delta->empty()) { // open() wrote state: commit it before the first step
          commit(self);
          return;
        }
        schedule_step(self);
      },
      [=](caf::error& err) { self->quit(err); });
  return {
    [=](step_atom, uint64_t token) {
      if (token == self->state.token)
        run_step(self);
    },
    [=](commit_atom, uint64_t token) { // retry a commit the store refused (full)
      if (token == self->state.token)
        commit(self);
    },
    [=](wake_atom) {
      auto& st = self->state;
      if (st.at == phase::idle)
        schedule_step(self);
    },
    [=](stop_atom) {
      auto& st = self->state;
      st.stopping = true;
      if (st.at != phase::committing && st.at != phase::starting)
        stop_now(self);
    },
  };
}

} // namespace

std::string group_name(std::string_view stage, uint32_t worker) {
  std::string g{stage};
  g += '/';
  g += std::to_string(worker);
  return g;
}

caf::actor spawn_stage_worker(caf::event_based_actor* parent,
                              std::shared_ptr<const node_context> node, worker_spec spec) {
  if (spec.config->type_info && spec.config->type_info->blocking)
    return parent->spawn<caf::detached>(stage_worker, std::move(node), std::move(spec));
  return parent->spawn(stage_worker, std::move(node), std::move(spec));
}

} // namespace troupe
