// A supervisor actor in the manner of Erlang/OTP: it starts children in order, monitors them and
// restarts them by policy.
//
// - Children are "transient": one that exits normally (reason none or user_shutdown) is done and
//   not restarted; one that exits abnormally is restarted by the strategy:
//   one_for_one restarts it alone; one_for_all stops the others and restarts all;
//   rest_for_one stops and restarts it and the children started after it.
//   Children that are done or given up are not part of any later restart.
// - A restart waits until every child it stops is down (so two instances of one child never
//   overlap), then waits out an exponential backoff with jitter. Children stopped for a restart
//   get exit_reason::user_shutdown; their resulting exit is expected and counts for nothing.
//   A crash that arrives while a restart is pending joins it: the pending children wait for the
//   new failure's set to be down and restart together with it, after a newly drawn delay.
// - Intensity: more than `max_restarts` restarts within `within` (a sliding window shared by all
//   children, as in Erlang; each crash that triggers a restart counts once, however many
//   children its strategy restarts) exhausts the supervisor. It then escalates (stops the other
//   children, waits for them to be down and exits with the child's error, for its own supervisor
//   to handle) or, with on_exhausted::give_up, stops that child for good, reports it and keeps
//   the rest running (peers its strategy had stopped are restarted without it; a refused
//   restart does not enter the window).
// - It exits normally when every child is done; with an error when it escalated, or when a child
//   was given up (after the others are done): errc::stage_failed, "<names> failed permanently:
//   <reason>".
// - `stop_atom` asks for an orderly stop: it is forwarded to every child, which should finish
//   its work in flight and exit normally. Pending restarts are cancelled; once every child is
//   down the supervisor exits normally, whatever the children's exit reasons.
// - An exit_msg from anyone but a child (e.g. the parent shutting down) is forwarded to every
//   child with the same reason; the supervisor exits with that reason once they are down.
//   (exit_reason::kill cannot be trapped: the supervisor dies at once and its links kill the
//   children.) A child that ignores an exit it was sent is killed after `shutdown_timeout`.
// - Queries: (get_atom, child name) -> the child's current actor (invalid while it is down).
//   Other unknown messages are dropped.
// - Observer events are sent with `send` (fire and forget), one per failure: a restart event
//   names the child that failed; its delay applies to every child restarted with it.
#pragma once

#include "config/app_config.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace troupe {

using stop_atom = caf::atom_constant<caf::atom("stop")>;
// Sent to the observer: (restart_atom, supervisor name, child name, delay in ms as int64_t,
// reason text). All names and texts are std::string.
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
  // How long a child sent an exit (for a restart or a shutdown) may take to go down before it
  // is killed with exit_reason::kill. Not applied to stop_atom: an orderly stop may take long.
  std::chrono::milliseconds shutdown_timeout{5000};
};

caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_options options,
                            std::vector<child_spec> children);
// Same, as a child of another supervisor (or actor): spawned from `parent`, which links and
// monitors it as it sees fit (a supervisor's child_spec::start does exactly this).
caf::actor spawn_supervisor(caf::event_based_actor* parent, supervisor_options options,
                            std::vector<child_spec> children);

// The delay before the n-th consecutive restart (n >= 1; 0 counts as 1): backoff_min * 2^(n-1),
// capped at backoff_max, scaled by a random factor in [1 - jitter, 1 + jitter] (jitter is
// clamped to [0, 1]; at 0 the rng is not used), rounded to whole milliseconds. Never negative,
// never overflows, however large n or backoff_max. The supervisor passes as n the number of
// restarts in the current intensity window, including the one being delayed.
std::chrono::milliseconds backoff_delay(const supervision_config& policy, uint32_t n,
                                        std::mt19937_64& rng);

} // namespace troupe
