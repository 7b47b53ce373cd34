// A supervisor actor in the manner of Erlang/OTP: it starts children in order, monitors them and
// restarts them by policy.
//
// - Children are "transient": one that exits normally (reason none or user_shutdown) is done and
//   not restarted; one that exits abnormally is restarted by the strategy:
//   one_for_one restarts it alone; one_for_all stops the others and restarts all;
//   rest_for_one stops and restarts it and the children started after it.
// - A restart waits until every child it stops is down (so two instances of one child never
//   overlap), then waits out an exponential backoff with jitter.
// - Intensity: more than `max_restarts` restarts within `within` exhausts the supervisor. It then
//   escalates (exits with the child's error, for its own supervisor to handle) or, with
//   on_exhausted::give_up, stops that child for good, reports it and keeps the rest running.
// - It exits normally when every child is done; with an error when it escalated, or when a child
//   was given up (after the others are done).
// - `stop_atom` asks for an orderly stop: it is forwarded to every child, which should finish
//   its work in flight and exit normally.
#pragma once

#include "app_config.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include <functional>
#include <random>
#include <string>
#include <vector>

namespace troupe {

using stop_atom = caf::atom_constant<caf::atom("stop")>;
// Sent to the observer: (restart_atom, supervisor name, child name, delay in ms, reason text).
using restart_atom = caf::atom_constant<caf::atom("restart")>;
// Sent to the observer: (gave_up_atom, supervisor name, child name, reason text).
using gave_up_atom = caf::atom_constant<caf::atom("gave_up")>;
// Sent to the observer: (escalate_atom, supervisor name, child name, reason text).
using escalate_atom = caf::atom_constant<caf::atom("escalate")>;

struct child_spec {
  std::string name;
  // Spawns one instance of the child from the supervisor (e.g. self->spawn(f, args...) or
  // self->spawn<caf::detached>(...)). The supervisor links and monitors it.
  std::function<caf::actor(caf::event_based_actor* self)> start;
};

enum class on_exhausted { escalate, give_up };

struct supervisor_options {
  std::string name;
  supervision_config policy;
  troupe::on_exhausted exhausted = on_exhausted::escalate;
  caf::actor observer; // optional: receives restart / gave_up / escalate events
  uint64_t seed = 0;   // jitter's random seed; 0 picks one
};

caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_options options,
                            std::vector<child_spec> children);
// Same, as a child of another supervisor (or actor).
caf::actor spawn_supervisor(caf::event_based_actor* parent, supervisor_options options,
                            std::vector<child_spec> children);

// The delay before the n-th consecutive restart (n >= 1): backoff_min * 2^(n-1), capped at
// backoff_max, scaled by a random factor in [1 - jitter, 1 + jitter].
std::chrono::milliseconds backoff_delay(const supervision_config& policy, uint32_t n,
                                        std::mt19937_64& rng);

} // namespace troupe
