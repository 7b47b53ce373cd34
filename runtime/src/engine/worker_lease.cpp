// The steps of a leasing stage's worker (a work queue; see lease_table.hpp): it takes the next
// waiting items from the table its stage's workers share, reads them, runs the stage's code on
// them, claims them and sends the step, which records them as done. The consumer group's cursor
// moves over the items once they are done, in steps of whichever worker takes the move.
#include "engine/worker.hpp"

#include "base/backoff.hpp"
#include "base/log.hpp"

#include <caf/all.hpp>

#include <algorithm>

namespace troupe::detail {

namespace {

std::optional<int64_t> priority_of(worker_state& st, uint32_t input, partition_id p, uint64_t seq,
                                   std::string_view bytes, std::string& error) {
  if (auto err = check_framing(bytes)) {
    error = "it cannot be read: " + describe(err);
    return std::nullopt;
  }
  record_impl r;
  r.bytes = bytes;
  r.input = &st.spec.input_names[input];
  r.partition = p;
  r.position = seq;
  r.decoder = &st.priority_decoder;
  r.step = &st.step;
  try {
    return st.op->priority(record{r});
  } catch (const std::exception& e) {
    error = std::string{"its priority cannot be read: "} + e.what();
  } catch (const kj::Exception& e) {
    error = std::string{"its priority cannot be read: "} + e.getDescription().cStr();
  } catch (...) {
    error = "its priority cannot be read: unknown exception";
  }
  return std::nullopt;
}

// Reads the leased items into st.records, in the order they were leased (priority). A record
// whose framing is broken becomes a dead letter of this step.
caf::error read_leased(worker_state& st) {
  st.records.clear();
  st.undecodable.clear();
  const auto& leased = st.leased;
  for (size_t i = 0; i < leased.size();) {
    const auto& first = leased[i];
    size_t n = 1;
    while (i + n < leased.size() && leased[i + n].input == first.input &&
           leased[i + n].partition == first.partition && leased[i + n].seq == first.seq + n)
      ++n;
    const auto& name = st.spec.input_names[first.input];
    size_t at = i;
    auto visited = st.reader->read(st.spec.inputs[first.input], first.partition, first.seq, n,
                                   [&](uint64_t seq, std::string_view bytes) {
      if (seq != leased[at].seq)
        return false;
      const auto& l = leased[at++];
      if (auto err = check_framing(bytes)) {
        auto why = describe(err);
        dead_letter_info info;
        info.stage = st.spec.config->name;
        info.error = why;
        info.input = name;
        info.partition = l.partition;
        info.input_seq = seq;
        info.record = bytes;
        st.undecodable.push_back({make_dead_letter(info)});
        return true;
      }
      auto idx = st.records.size();
      if (st.decoders.size() <= idx)
        st.decoders.push_back(std::make_unique<envelope_decoder>());
      record_impl r;
      r.bytes = bytes;
      r.input = &name;
      r.partition = l.partition;
      r.position = seq;
      r.extra_attempts = l.attempts;
      r.decoder = st.decoders[idx].get();
      r.step = &st.step;
      st.records.push_back(r);
      return true;
    });
    if (!visited)
      return visited.error();
    if (at != i + n)
      return make_error(errc::store_corrupt,
                        "store: record " + std::to_string(leased[at].seq) + " of " + name +
                          " (partition " + std::to_string(first.partition) +
                          ") was indexed for leasing but cannot be read");
    i += n;
  }
  return {};
}

// The step's bookkeeping: its items as committed runs, the cursor moves it carries, and the
// dead letters of records that could not be read.
void add_lease_bookkeeping(worker_state& st) {
  auto& d = *st.delta;
  for (auto& u : st.undecodable)
    d.dead.push_back(std::move(u));
  st.undecodable.clear();
  for (const auto& r : lease_runs(st.leased))
    d.state.push_back({state_scope::partition, r.partition, state_space::runtime,
                       lease_run_key(r.input, r.first), lease_run_value(r.end, r.bytes)});
  for (const auto& m : st.moves) {
    d.cursors.push_back({st.spec.inputs[m.input], st.spec.input_groups[m.input], m.partition,
                         m.to.next, m.to.bytes});
    for (auto first : m.erased)
      d.state.push_back({state_scope::partition, m.partition, state_space::runtime,
                         lease_run_key(m.input, first), std::nullopt});
  }
}

void send_lease_step(self_ptr self) {
  auto& st = self->state;
  add_lease_bookkeeping(st);
  send_step(self, false);
  st.flight.back().leases = std::move(st.leased);
  st.flight.back().moves = std::move(st.moves);
  st.leased.clear();
  st.moves.clear();
}

// The step in hand is dropped (its items were taken away), but the cursor moves it took are
// still this worker's to carry: they go alone.
void send_moves_only(self_ptr self) {
  auto& st = self->state;
  st.step.abandon();
  if (!st.moves.empty()) {
    st.step.begin(*st.delta);
    send_lease_step(self);
  }
  schedule_step(self);
}

// An item whose attempts ran out (or whose priority cannot be read): dead-lettered, and done.
void dead_letter_leased(self_ptr self) {
  auto& st = self->state;
  const auto& l = st.leased.front();
  if (st.records.empty()) { // its framing is broken: read_leased made the dead letter
    send_lease_step(self);
    return;
  }
  const auto& r = st.records.front();
  auto facts = r.describe_for_dead_letter();
  log_event(log_level::warn, st.who, r.where(facts) + " goes to the dead-letter log: " + l.error);
  dead_letter_info info;
  info.stage = st.spec.config->name;
  info.error = l.error;
  info.attempts = l.attempts;
  info.input = *r.input;
  info.partition = r.partition;
  info.input_seq = r.position;
  info.source_position = facts.source_position;
  info.record = r.bytes;
  st.delta->dead.push_back({make_dead_letter(info)});
  send_lease_step(self);
}

// Nothing to take: finish when everything is done and upstream finished, else wait for what
// can change that (an acknowledgement of ours, a wake from the writer, a due item, a lease
// running out, a peer's commit).
void lease_idle(self_ptr self) {
  auto& st = self->state;
  auto s = st.leases->state();
  if (s.waiting == 0 && s.leased == 0 && s.settled && unacked(st) == 0) {
    after_input_drained(self, "every item is done");
    return;
  }
  st.step.abandon();
  if (unacked(st) > 0) {
    st.at = phase::waiting; // our acknowledgement schedules the next step
    st.reader->release();
    return;
  }
  using namespace std::chrono;
  auto delay = milliseconds{s.waiting + s.leased == 0 ? 5 : 100};
  if (s.next_event) {
    auto until = duration_cast<milliseconds>(*s.next_event - lease_clock::now()) + milliseconds{1};
    delay = std::clamp(until, milliseconds{1}, delay);
  }
  schedule_step(self, delay);
}

} // namespace

void run_lease_step(self_ptr self) {
  auto& st = self->state;
  auto& table = *st.leases;
  st.step.begin(*st.delta);
  auto priority = [&](uint32_t input, partition_id p, uint64_t seq, std::string_view bytes,
                      std::string& error) { return priority_of(st, input, p, seq, bytes, error); };
  if (auto err = table.sync(*st.reader, priority, st.heads)) {
    st.step.abandon();
    fail(self, err);
    return;
  }
  st.leased = table.take(st.spec.worker, std::max<size_t>(1, st.spec.config->batch.max_items),
                         st.heads, lease_clock::now());
  st.moves = table.take_moves(st.spec.worker);
  if (st.leased.empty()) {
    if (!st.moves.empty()) {
      send_lease_step(self);
      schedule_step(self);
      return;
    }
    lease_idle(self);
    return;
  }
  if (auto err = read_leased(st)) {
    st.step.abandon();
    fail(self, err);
    return;
  }
  if (st.leased.front().dead || st.records.empty()) {
    if (!table.claim(st.spec.worker, st.leased)) {
      st.leased.clear();
      send_moves_only(self);
      return;
    }
    dead_letter_leased(self);
    schedule_step(self);
    return;
  }
  batch view{&st.records};
  if (!run_code(self, [&](context& ctx) { st.op->process_batch(ctx, view); }))
    return;
  if (!table.claim(st.spec.worker, st.leased)) {
    log_event(log_level::warn, st.who,
              "dropped a step of " + std::to_string(st.leased.size()) +
                " items: a lease ran out before it was sent, so another worker takes them "
                "(raise `lease` if the stage is only slow)");
    st.leased.clear();
    send_moves_only(self);
    return;
  }
  st.failures = 0;
  send_lease_step(self);
  schedule_step(self);
}

void on_lease_failure(self_ptr self, const std::string& what, bool records) {
  auto& st = self->state;
  auto& table = *st.leases;
  const auto max = st.spec.config->retry.max_attempts;
  if (!st.moves.empty()) { // give the moves back: nobody else may take them while we hold them
    table.moved({});       // nothing moved; frees the move for the next step
    st.moves.clear();
  }
  if (!records) {
    table.release(st.spec.worker, st.leased, what, false, false);
  } else if (st.leased.size() > 1) {
    log_event(log_level::warn, st.who,
              "a step of " + std::to_string(st.leased.size()) + " items failed (" + what +
                "); they are tried one at a time to find the failing ones");
    table.release(st.spec.worker, st.leased, what, false, true);
  } else if (!st.leased.empty()) {
    const auto& l = st.leased.front();
    auto attempt = l.attempts + 1;
    auto why = attempt >= max ? "failed " + std::to_string(attempt) + " attempts: " + what : what;
    log_event(log_level::warn, st.who,
              "item " + std::to_string(l.seq) + " of " + st.spec.input_names[l.input] +
                " (partition " + std::to_string(l.partition) + "): attempt " +
                std::to_string(attempt) + " of " + std::to_string(max) + " failed: " + what);
    table.release(st.spec.worker, st.leased, why, true, false,
                  backoff_delay(st.spec.config->retry.backoff, std::chrono::milliseconds{30000},
                                attempt));
  }
  st.leased.clear();
  if (records)
    schedule_step(self);
}

void on_lease_step_acked(worker_state& st, sent_step& step) {
  if (!step.leases.empty())
    st.leases->committed(step.leases);
  if (!step.moves.empty())
    st.leases->moved(step.moves);
}

} // namespace troupe::detail

namespace troupe {

std::shared_ptr<detail::lease_table> make_lease_table(const stage_config& cfg,
                                                      const worker_spec& spec) {
  detail::lease_table::config c;
  c.stage = spec.stage;
  c.group = cfg.name;
  c.inputs = spec.inputs;
  c.input_names = spec.input_names;
  c.partitions = spec.partitions;
  c.lease = cfg.lease;
  c.max_attempts = cfg.retry.max_attempts;
  return std::make_shared<detail::lease_table>(std::move(c));
}

} // namespace troupe
