// Crash markers (see stage_actor.hpp): before the first step that runs stage code after a start,
// a worker commits where it starts; a start that finds its own marker at the same place, left by
// a run that neither restarted the worker in-process nor stopped in order, counts a death there.
// After retry.max_attempts deaths it isolates the records record by record, each isolated step
// leaving the marker for the record after it, and dead-letters the one that keeps killing.
#include "engine/worker.hpp"

#include "base/endian.hpp"
#include "base/log.hpp"

#include <caf/all.hpp>

#include <algorithm>

namespace troupe::detail {

namespace {
constexpr const char* marker_key = "crash"; // runtime state of the worker
} // namespace

std::string crash_marker::encode() const {
  std::string s(24, '\0');
  put_le64(&s[0], fingerprint);
  put_le32(&s[8], starts);
  put_le32(&s[12], isolate);
  put_le64(&s[16], run);
  return s;
}

std::optional<crash_marker> crash_marker::decode(std::string_view bytes) {
  if (bytes.size() != 24)
    return std::nullopt;
  return crash_marker{get_le64(bytes.data()), get_le32(bytes.data() + 8),
                      get_le32(bytes.data() + 12), get_le64(bytes.data() + 16)};
}


// The crash marker the step in hand leaves behind: while isolating because of crashes, the one for
// the record after it; else none (the first step after a start erases the start's marker).
void leave_marker(worker_state& st) {
  if (!st.marker_in_store)
    return;
  if (st.crash_isolate > 1) {
    crash_marker next{fingerprint(st.batch_end), 1, st.crash_isolate - 1, st.node->run_id};
    st.delta->state.push_back({state_scope::worker, st.spec.worker, state_space::runtime,
                               marker_key, next.encode()});
  } else {
    st.delta->state.push_back(
      {state_scope::worker, st.spec.worker, state_space::runtime, marker_key, std::nullopt});
    st.marker_in_store = false;
  }
}

// Everything a consuming step commits besides what the stage code wrote: the dead letters of
// Before the first step that runs stage code after a start, the worker commits where it starts
// (see stage_actor.hpp): a start that finds the marker of an earlier start at the same place
// knows that attempt died with the process.
void commit_start_marker(self_ptr self) {
  auto& st = self->state;
  const auto max = st.spec.config->retry.max_attempts;
  auto fp = fingerprint(st.sent);
  crash_marker m{fp, 1, 0, st.node->run_id};
  if (st.found_marker && st.found_marker->fingerprint == fp) {
    const auto& found = *st.found_marker;
    // Every earlier start here began an attempt that did not commit. The last one is not held
    // against our records when it did not die with the process (an actor restart in this run,
    // or an orderly stop of the run that wrote the marker), or when another worker's code is
    // known to have killed the process.
    const auto& node = *st.node;
    bool bystander = node.blamed && !node.blamed->count(st.spec.config->name + "/" +
                                                        std::to_string(st.spec.worker));
    bool no_death = found.run == node.run_id || (node.clean_run && found.run == node.clean_run);
    uint32_t deaths = (bystander || no_death) && found.starts > 0 ? found.starts - 1 : found.starts;
    // Isolation stops once every partition moved in_flight batches of max_items past where it
    // starts (the steps in flight when the process died held no more), or after that many
    // records per partition in all.
    auto per_pair = std::max<uint32_t>(1, st.spec.config->batch.max_items) *
                    std::max<uint32_t>(1, st.depth);
    st.crash_end = st.sent;
    for (auto& p : st.crash_end)
      p.next += per_pair;
    if (found.isolate > 0) { // isolating record by record when the process died
      st.crash_isolate = found.isolate;
      st.crashes_here = deaths;
      m = {fp, deaths + 1, found.isolate, node.run_id};
    } else if (deaths >= max) {
      log_event(log_level::warn, st.who,
                "the process died " + std::to_string(deaths) +
                  " times in a row while this stage worked on the records from here; trying "
                  "them one at a time to find the one that kills it");
      st.crash_isolate = static_cast<uint32_t>(
        std::min<uint64_t>(uint64_t{per_pair} * st.sent.size(), 0xffffffffu));
      m = {fp, 1, st.crash_isolate, node.run_id};
    } else {
      m = {fp, deaths + 1, 0, node.run_id};
    }
  }
  st.found_marker.reset(); // decided once per start
  st.marker_in_store = true;
  st.step.begin(*st.delta);
  st.batch_end = st.sent;
  st.delta->state.push_back(
    {state_scope::worker, st.spec.worker, state_space::runtime, marker_key, m.encode()});
  send_step(self, false, /*marker=*/true);
  st.at = phase::waiting;
}

// The worker stops for the rest of this run because a stage it depends on failed: its own
} // namespace troupe::detail
