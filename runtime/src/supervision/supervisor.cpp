// The supervisor actor (see supervisor.hpp for its contract).
//
// Everything happens on the supervisor's own messages, so its state needs no locks. Each child
// moves through a small state machine:
//
//   running --abnormal down--> restarting --timer--> running
//   running --peer failed----> stopping --down--> restarting      (one_for_all, rest_for_one)
//   running --normal down----> done
//   restarting --intensity exhausted, give_up--> given_up
//
// A restart round starts when a running child fails. It is ready once no child is `stopping`;
// then the round's failures are checked against the intensity window, one backoff delay is
// drawn, and a timer restarts every `restarting` child in original order. A failure that comes
// while the timer is armed cancels it (stale timers are told apart by a generation number) and
// starts a new round that includes the children still waiting.
#include "supervision/supervisor.hpp"

#include "base/backoff.hpp"
#include "base/error.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

namespace troupe {

namespace {

using timer_atom = caf::atom_constant<caf::atom("sup_timer")>;   // (timer_atom, generation)
using kill_atom = caf::atom_constant<caf::atom("sup_kill")>;     // (kill_atom, index, incarnation)
using failed_atom = caf::atom_constant<caf::atom("sup_failed")>; // (.., index, incarnation, error)

// delayed_send adds the delay to a nanosecond clock: keep it far from overflowing.
constexpr std::chrono::milliseconds longest_timer = std::chrono::hours(24 * 365);

enum class child_status {
  running,    // up, or its failed start is still to be reported by a failed_atom message
  stopping,   // sent an exit because a peer failed; waiting for it to be down
  restarting, // down; waiting for its round's timer
  done,       // exited normally, or stopped with the supervisor
  given_up,   // failed beyond the intensity, with on_exhausted::give_up
};

struct child_entry {
  child_spec spec;
  caf::actor handle; // invalid while down
  child_status status = child_status::running;
  uint64_t incarnation = 0; // counts starts: tells stale kill timers and start failures apart
  bool exit_seen = false;   // the link's exit_msg for this incarnation was consumed already
  caf::error last_failure;  // why it last went down abnormally
};

struct failure {
  size_t index;
  caf::error reason;
};

enum class sup_mode {
  supervising,
  stopping, // stop_atom: waiting for every child to be down, then exit normally
  exiting,  // escalated or told to exit: waiting for every child to be down, then exit_with
};

struct supervisor_state {
  supervisor_options options;
  std::vector<child_entry> children; // in start order
  sup_mode mode = sup_mode::supervising;
  caf::error exit_with;
  std::vector<failure> pending; // failures of the current round, not yet checked
  bool timer_armed = false;
  uint64_t timer_generation = 0;
  std::deque<std::chrono::steady_clock::time_point> restarts; // within the intensity window
  std::vector<failure> given_up;
  std::vector<failure> down_at_stop; // failed, and not running when the stop came
  // Children whose abnormal down came before the link's exit_msg: that exit_msg must not be
  // taken for a parent's. Bounded, in case some exit_msg never comes.
  std::deque<caf::actor_addr> retired;
  std::mt19937_64 rng;
  static const char* name;
};

const char* supervisor_state::name = "supervisor";

using sup_ptr = caf::stateful_actor<supervisor_state>*;

std::string reason_text(sup_ptr self, const caf::error& e) {
  return code_of(e) != errc::none ? describe(e) : self->home_system().render(e);
}

template <class... Ts>
void notify(sup_ptr self, Ts&&... xs) {
  if (self->state.options.observer)
    self->send(self->state.options.observer, std::forward<Ts>(xs)...);
}

void start_child(sup_ptr self, size_t i) {
  auto& c = self->state.children[i];
  ++c.incarnation;
  c.exit_seen = false;
  c.status = child_status::running;
  caf::error err;
  try {
    c.handle = c.spec.start ? c.spec.start(self) : caf::actor{};
    if (!c.handle)
      err = make_error(errc::stage_failed, "cannot start " + c.spec.name + ": no actor");
  } catch (const std::exception& e) {
    err = make_error(errc::stage_failed, "cannot start " + c.spec.name + ": " + e.what());
  } catch (...) {
    err = make_error(errc::stage_failed, "cannot start " + c.spec.name + ": unknown exception");
  }
  if (err) { // reported as a message, so that a restart loop never recurses
    c.handle = nullptr;
    self->send(self, failed_atom::value, uint64_t{i}, c.incarnation, std::move(err));
    return;
  }
  self->link_to(c.handle);
  self->monitor(c.handle);
}

void ask_to_exit(sup_ptr self, size_t i, const caf::error& reason) {
  auto& c = self->state.children[i];
  if (!c.handle)
    return;
  self->send_exit(c.handle, reason);
  self->delayed_send(self, std::min(self->state.options.shutdown_timeout, longest_timer),
                     kill_atom::value, uint64_t{i}, c.incarnation);
}

void cancel_timer(supervisor_state& st) {
  st.timer_armed = false;
  ++st.timer_generation;
}

// The exit reason that reports the children given up or down when stopped, or none.
caf::error given_up_error(sup_ptr self) {
  auto& st = self->state;
  auto names = [&](const std::vector<failure>& fs) {
    std::string out;
    for (auto& f : fs)
      out += (out.empty() ? "" : ", ") + st.children[f.index].spec.name;
    return out;
  };
  std::string text;
  if (!st.given_up.empty())
    text = names(st.given_up) + " failed permanently: " +
           reason_text(self, st.given_up.front().reason);
  if (!st.down_at_stop.empty())
    text += (text.empty() ? "" : "; ") + names(st.down_at_stop) +
            " had failed and was not running when the stop came: " +
            reason_text(self, st.down_at_stop.front().reason);
  if (text.empty())
    return {};
  return make_error(errc::stage_failed, text);
}

// Failures no restart heals: the child is given up (or the supervisor escalates) at once.
bool is_permanent(const caf::error& reason) {
  auto c = code_of(reason);
  return c == errc::permanent || c == errc::store_corrupt || c == errc::layout_mismatch;
}

// Why a child is not restarted, for the observer.
std::string why_exhausted(sup_ptr self, const caf::error& reason) {
  const auto& policy = self->state.options.policy;
  auto n = policy.max_restarts;
  auto window = std::to_string(policy.within.count() / 1000) + " s";
  return (is_permanent(reason) ? std::string{"no restart can heal this: "}
                               : "failed again after " + std::to_string(n) +
                                   (n == 1 ? " restart" : " restarts") + " within " + window + ": ") +
         reason_text(self, reason);
}

// In the stopping and exiting modes: quit once no child is up.
void quit_if_all_down(sup_ptr self) {
  auto& st = self->state;
  for (auto& c : st.children)
    if (c.handle)
      return;
  if (st.mode == sup_mode::exiting)
    self->quit(st.exit_with);
  else
    self->quit(given_up_error(self)); // stopped in order; still say who failed for good
}

// Asks every child to exit with `child_reason`, then quits with `quit_reason` once all are down.
void begin_exit(sup_ptr self, caf::error quit_reason, const caf::error& child_reason) {
  auto& st = self->state;
  if (st.mode != sup_mode::exiting) {
    st.mode = sup_mode::exiting;
    st.exit_with = std::move(quit_reason);
  }
  cancel_timer(st);
  st.pending.clear();
  for (size_t i = 0; i < st.children.size(); ++i) {
    if (st.children[i].handle)
      ask_to_exit(self, i, child_reason);
    else
      st.children[i].status = child_status::done;
  }
  quit_if_all_down(self);
}

void begin_stop(sup_ptr self) {
  auto& st = self->state;
  if (st.mode != sup_mode::supervising)
    return;
  st.mode = sup_mode::stopping;
  cancel_timer(st);
  st.pending.clear();
  for (size_t i = 0; i < st.children.size(); ++i) {
    auto& c = st.children[i];
    if (!c.handle && c.status == child_status::restarting)
      st.down_at_stop.push_back({i, c.last_failure}); // it failed and is not back: say so
    if (!c.handle)
      c.status = child_status::done; // waiting to restart, or its start failed
    else if (c.status == child_status::running)
      self->send(c.handle, stop_atom::value);
    // a `stopping` child was sent an exit already; its down completes the stop
  }
  quit_if_all_down(self);
}

// In the supervising mode: quit once every child is done or given up.
void quit_if_finished(sup_ptr self) {
  auto& st = self->state;
  for (auto& c : st.children)
    if (c.status != child_status::done && c.status != child_status::given_up)
      return;
  self->quit(given_up_error(self));
}

// Stops the running peers that the strategy restarts together with the failed child `i`.
void stop_peers(sup_ptr self, size_t i) {
  auto& st = self->state;
  auto strategy = st.options.policy.strategy;
  if (strategy == restart_strategy::one_for_one)
    return;
  size_t first = strategy == restart_strategy::one_for_all ? 0 : i + 1;
  for (size_t j = first; j < st.children.size(); ++j) {
    if (j == i || st.children[j].status != child_status::running)
      continue;
    st.children[j].status = child_status::stopping;
    ask_to_exit(self, j, caf::exit_reason::user_shutdown);
  }
}

// Runs the round once every child it stopped is down: intensity, backoff, timer.
void try_restart(sup_ptr self) {
  auto& st = self->state;
  auto any = [&](child_status s) {
    return std::any_of(st.children.begin(), st.children.end(),
                       [s](const child_entry& c) { return c.status == s; });
  };
  if (st.timer_armed || any(child_status::stopping) || !any(child_status::restarting))
    return;
  auto now = std::chrono::steady_clock::now();
  while (!st.restarts.empty() && now - st.restarts.front() > st.options.policy.within)
    st.restarts.pop_front();
  std::vector<failure> restarted;
  auto round = std::move(st.pending);
  st.pending.clear();
  for (auto& f : round) {
    const auto& child = st.children[f.index].spec.name;
    if (!is_permanent(f.reason) && st.restarts.size() < st.options.policy.max_restarts) {
      st.restarts.push_back(now);
      restarted.push_back(std::move(f));
    } else if (st.options.exhausted == on_exhausted::escalate) {
      notify(self, escalate_atom::value, st.options.name, child, why_exhausted(self, f.reason));
      begin_exit(self, f.reason, caf::exit_reason::user_shutdown);
      return;
    } else {
      notify(self, gave_up_atom::value, st.options.name, child, why_exhausted(self, f.reason));
      st.children[f.index].status = child_status::given_up;
      st.given_up.push_back(std::move(f));
    }
  }
  if (!any(child_status::restarting))
    return; // every failure was given up and nothing else waits
  auto n = static_cast<uint32_t>(std::min<size_t>(std::max<size_t>(st.restarts.size(), 1),
                                                  std::numeric_limits<uint32_t>::max()));
  auto delay = backoff_delay(st.options.policy, n, st.rng);
  for (auto& f : restarted)
    notify(self, restart_atom::value, st.options.name, st.children[f.index].spec.name,
           static_cast<int64_t>(delay.count()), reason_text(self, f.reason));
  st.timer_armed = true;
  self->delayed_send(self, std::min(delay, longest_timer), timer_atom::value,
                     ++st.timer_generation);
}

// Child `i`'s current incarnation is down (or failed to start) with `reason`.
void on_child_down(sup_ptr self, size_t i, caf::error reason) {
  auto& st = self->state;
  auto& c = st.children[i];
  if (c.handle && reason && !c.exit_seen) {
    st.retired.push_back(c.handle.address());
    if (st.retired.size() > 64)
      st.retired.pop_front();
  }
  c.handle = nullptr;
  bool abnormal = reason && reason != caf::exit_reason::user_shutdown;
  if (abnormal)
    c.last_failure = reason;
  if (st.mode != sup_mode::supervising) {
    // A child that fails while we stop (a stage whose worker was down, say) is reported too.
    if (st.mode == sup_mode::stopping && abnormal && c.status != child_status::stopping)
      st.down_at_stop.push_back({i, reason});
    c.status = child_status::done;
    quit_if_all_down(self);
    return;
  }
  if (c.status == child_status::stopping) {
    c.status = child_status::restarting; // we stopped it for a restart: expected
  } else if (!reason || reason == caf::exit_reason::user_shutdown) {
    c.status = child_status::done;
  } else {
    c.status = child_status::restarting;
    st.pending.push_back(failure{i, std::move(reason)});
    cancel_timer(st); // children already waiting join this round
    stop_peers(self, i);
  }
  try_restart(self);
  if (st.mode == sup_mode::supervising)
    quit_if_finished(self);
}

caf::behavior supervisor_actor(sup_ptr self, supervisor_options options,
                               std::vector<child_spec> specs) {
  auto& st = self->state;
  st.options = std::move(options);
  auto seed = st.options.seed;
  if (seed == 0) {
    std::random_device rd;
    seed = (uint64_t{rd()} << 32) ^ rd();
  }
  st.rng.seed(seed);
  for (auto& spec : specs) {
    st.children.emplace_back();
    st.children.back().spec = std::move(spec);
  }
  self->set_default_handler(caf::drop);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& children = self->state.children;
    for (size_t i = 0; i < children.size(); ++i)
      if (children[i].handle && children[i].handle.address() == dm.source) {
        on_child_down(self, i, std::move(dm.reason));
        return;
      }
  });
  self->set_exit_handler([self](caf::exit_msg& em) {
    if (!em.reason)
      return; // a normal exit asks nothing of us
    auto& st = self->state;
    for (auto& c : st.children)
      if (c.handle && c.handle.address() == em.source) {
        c.exit_seen = true; // the down handler decides
        return;
      }
    auto old = std::find(st.retired.begin(), st.retired.end(), em.source);
    if (old != st.retired.end()) {
      st.retired.erase(old);
      return;
    }
    begin_exit(self, em.reason, em.reason); // our parent (or another linked actor) exits
  });
  for (size_t i = 0; i < st.children.size(); ++i)
    start_child(self, i);
  if (st.children.empty())
    self->quit();
  return {
    [self](stop_atom) { begin_stop(self); },
    [self](caf::get_atom, const std::string& child) -> caf::actor {
      for (auto& c : self->state.children)
        if (c.spec.name == child)
          return c.handle;
      return {};
    },
    [self](timer_atom, uint64_t generation) {
      auto& st = self->state;
      if (st.mode != sup_mode::supervising || !st.timer_armed ||
          generation != st.timer_generation)
        return; // stale
      st.timer_armed = false;
      for (size_t i = 0; i < st.children.size(); ++i)
        if (st.children[i].status == child_status::restarting)
          start_child(self, i);
    },
    [self](kill_atom, uint64_t i, uint64_t incarnation) {
      auto& children = self->state.children;
      if (i < children.size() && children[i].incarnation == incarnation && children[i].handle)
        self->send_exit(children[i].handle, caf::exit_reason::kill);
    },
    [self](failed_atom, uint64_t i, uint64_t incarnation, caf::error& reason) {
      auto& children = self->state.children;
      if (i >= children.size() || children[i].incarnation != incarnation ||
          children[i].handle ||
          (children[i].status != child_status::running &&
           children[i].status != child_status::stopping))
        return;
      on_child_down(self, i, std::move(reason));
    },
  };
}

} // namespace

caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_options options,
                            std::vector<child_spec> children) {
  return sys.spawn(supervisor_actor, std::move(options), std::move(children));
}

caf::actor spawn_supervisor(caf::event_based_actor* parent, supervisor_options options,
                            std::vector<child_spec> children) {
  return parent->spawn(supervisor_actor, std::move(options), std::move(children));
}

std::chrono::milliseconds backoff_delay(const supervision_config& policy, uint32_t n,
                                        std::mt19937_64& rng) {
  return troupe::backoff_delay(policy.backoff_min, policy.backoff_max, n, policy.jitter, rng);
}

} // namespace troupe
