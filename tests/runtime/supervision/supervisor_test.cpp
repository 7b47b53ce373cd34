// Tests of the supervisor actor (runtime/src/supervisor.cpp) on a real actor system. Starts and
// ends of children go into a shared, mutex-protected log before they take effect, so the log's
// order is the order in which things happened; tests wait on the log with a deadline.
#include "base/error.hpp"
#include "supervision/supervisor.hpp"
#include "wait.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

using namespace troupe;
using namespace std::chrono_literals;
using troupe::test::wait_until;

namespace {

using boom_atom = caf::atom_constant<caf::atom("boom")>;     // crash with stage_failed
using doom_atom = caf::atom_constant<caf::atom("doom")>;     // crash with errc::permanent
using finish_atom = caf::atom_constant<caf::atom("finish")>; // exit normally
using leave_atom = caf::atom_constant<caf::atom("leave")>;   // exit with user_shutdown

struct observed {
  std::string kind; // "restart", "gave_up", "escalate"
  std::string sup;
  std::string child;
  int64_t delay_ms = -1;
  std::string reason;
};

// What children and the observer report. Entries of `log`: "start <name> <instance>" (written
// by the supervisor as it spawns the child) and "end <name> <instance>" (written by the child
// before it quits).
struct probe {
  std::mutex mtx;
  std::vector<std::string> log;
  std::vector<observed> events;
  std::map<std::string, int> instances;
  std::map<std::string, caf::actor_addr> current;

  int next_instance(const std::string& name) {
    std::lock_guard<std::mutex> guard{mtx};
    return ++instances[name];
  }
  void started(const std::string& name, int instance, caf::actor_addr addr) {
    std::lock_guard<std::mutex> guard{mtx};
    current[name] = std::move(addr);
    log.push_back("start " + name + " " + std::to_string(instance));
  }
  void ended(const std::string& name, int instance) {
    std::lock_guard<std::mutex> guard{mtx};
    log.push_back("end " + name + " " + std::to_string(instance));
  }
  void observe(observed ev) {
    std::lock_guard<std::mutex> guard{mtx};
    events.push_back(std::move(ev));
  }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> guard{mtx};
    return log;
  }
  std::vector<observed> seen() {
    std::lock_guard<std::mutex> guard{mtx};
    return events;
  }
  bool has(const std::string& line) {
    std::lock_guard<std::mutex> guard{mtx};
    return std::find(log.begin(), log.end(), line) != log.end();
  }
  // Position of `line` in the log; the log's size when absent.
  size_t index_of(const std::string& line) {
    std::lock_guard<std::mutex> guard{mtx};
    return std::find(log.begin(), log.end(), line) - log.begin();
  }
  int instance(const std::string& name) {
    std::lock_guard<std::mutex> guard{mtx};
    return instances[name];
  }
  caf::actor handle(const std::string& name) {
    std::lock_guard<std::mutex> guard{mtx};
    return caf::actor_cast<caf::actor>(current[name]);
  }
  size_t count_events(const std::string& kind) {
    std::lock_guard<std::mutex> guard{mtx};
    return std::count_if(events.begin(), events.end(),
                         [&](const observed& e) { return e.kind == kind; });
  }
};

using probe_ptr = std::shared_ptr<probe>;

// Observer events arrive asynchronously, after what they report may already have happened.
bool wait_events(const probe_ptr& p, const std::string& kind, size_t n) {
  return wait_until([&] { return p->count_events(kind) >= n; });
}

caf::behavior test_child(caf::event_based_actor* self, probe_ptr p, std::string name,
                         int instance) {
  auto end = [=](caf::error reason) {
    p->ended(name, instance);
    self->quit(std::move(reason));
  };
  // Exits from the supervisor (or its link) end the child too, logged first.
  self->set_exit_handler([=](caf::exit_msg& em) {
    if (em.reason)
      end(em.reason);
  });
  return {
    [=](boom_atom) { end(make_error(errc::stage_failed, name + " boom")); },
    [=](doom_atom) { end(make_error(errc::permanent, name + " doom")); },
    [=](finish_atom) { end(caf::error{}); },
    [=](leave_atom) { end(caf::exit_reason::user_shutdown); },
    [=](stop_atom) { end(caf::error{}); },
  };
}

// Logs the start from the supervisor, as it spawns, so the log shows the start order.
child_spec child(probe_ptr p, std::string name) {
  return {name, [p, name](caf::event_based_actor* self) {
            int instance = p->next_instance(name);
            auto h = self->spawn(test_child, p, name, instance);
            p->started(name, instance, h.address());
            return h;
          }};
}

caf::behavior test_observer(caf::event_based_actor*, probe_ptr p) {
  return {
    [=](restart_atom, const std::string& sup, const std::string& c, int64_t delay,
        const std::string& reason) { p->observe({"restart", sup, c, delay, reason}); },
    [=](gave_up_atom, const std::string& sup, const std::string& c, const std::string& reason) {
      p->observe({"gave_up", sup, c, -1, reason});
    },
    [=](escalate_atom, const std::string& sup, const std::string& c, const std::string& reason) {
      p->observe({"escalate", sup, c, -1, reason});
    },
  };
}

struct test_config : caf::actor_system_config {
  test_config() { set("scheduler.max-threads", 2); }
};

supervision_config fast_policy(restart_strategy strategy) {
  supervision_config policy;
  policy.strategy = strategy;
  policy.max_restarts = 10;
  policy.within = 60s;
  policy.backoff_min = 1ms;
  policy.backoff_max = 5ms;
  policy.jitter = 0.2;
  return policy;
}

// One actor system per test; whatever a failed test leaves running is killed at the end, so
// that ~actor_system (which waits for every actor) returns.
struct fixture {
  test_config cfg;
  caf::actor_system sys{cfg};
  probe_ptr p = std::make_shared<probe>();
  caf::actor observer = sys.spawn(test_observer, p);
  std::vector<caf::actor> spawned;

  ~fixture() {
    for (auto& a : spawned)
      caf::anon_send_exit(a, caf::exit_reason::kill);
    caf::anon_send_exit(observer, caf::exit_reason::kill);
  }

  caf::actor supervise(const std::string& name, supervision_config policy,
                       std::vector<child_spec> children,
                       on_exhausted exhausted = on_exhausted::escalate,
                       std::chrono::milliseconds shutdown_timeout = 5s) {
    supervisor_options options;
    options.name = name;
    options.shutdown_timeout = shutdown_timeout;
    options.policy = policy;
    options.exhausted = exhausted;
    options.observer = observer;
    options.seed = 42;
    auto sup = spawn_supervisor(sys, std::move(options), std::move(children));
    spawned.push_back(sup);
    return sup;
  }

  template <class Atom>
  void tell(const std::string& child_name, Atom x) {
    auto h = p->handle(child_name);
    REQUIRE(h);
    caf::anon_send(h, x);
  }
};

// Waits for the supervisor's down message; nullopt on timeout.
std::optional<caf::error> exit_reason_of(caf::actor_system& sys, const caf::actor& sup) {
  caf::scoped_actor self{sys};
  self->monitor(sup);
  std::optional<caf::error> result;
  self->receive([&](caf::down_msg& dm) { result = dm.reason; },
                caf::after(std::chrono::seconds(30)) >> [] {});
  return result;
}

} // namespace

TEST_CASE("backoff doubles from backoff_min and stops at backoff_max", "[runtime][supervisor]") {
  supervision_config policy;
  policy.backoff_min = 100ms;
  policy.backoff_max = 10000ms;
  policy.jitter = 0;
  std::mt19937_64 rng{1};
  CHECK(backoff_delay(policy, 0, rng) == 100ms);
  CHECK(backoff_delay(policy, 1, rng) == 100ms);
  CHECK(backoff_delay(policy, 2, rng) == 200ms);
  CHECK(backoff_delay(policy, 3, rng) == 400ms);
  CHECK(backoff_delay(policy, 7, rng) == 6400ms);
  CHECK(backoff_delay(policy, 8, rng) == 10000ms);
  CHECK(backoff_delay(policy, 100, rng) == 10000ms);
  CHECK(backoff_delay(policy, UINT32_MAX, rng) == 10000ms);
}

TEST_CASE("backoff never overflows or goes negative", "[runtime][supervisor]") {
  std::mt19937_64 rng{7};
  supervision_config policy;
  policy.backoff_min = 1ms;
  policy.backoff_max = std::chrono::milliseconds::max();
  policy.jitter = 0.5;
  for (uint32_t n : {1u, 30u, 62u, 63u, 64u, 65u, 1000u, UINT32_MAX}) {
    auto d = backoff_delay(policy, n, rng);
    CHECK(d.count() >= 0);
  }
  policy.jitter = 0;
  CHECK(backoff_delay(policy, 40, rng) == std::chrono::milliseconds(int64_t{1} << 39));
  policy.backoff_min = 0ms;
  policy.jitter = 1;
  CHECK(backoff_delay(policy, UINT32_MAX, rng) == 0ms);
  policy.backoff_min = -5ms;
  policy.backoff_max = -1ms;
  CHECK(backoff_delay(policy, 3, rng) == 0ms);
}

TEST_CASE("backoff jitter stays within its bounds and varies", "[runtime][supervisor]") {
  supervision_config policy;
  policy.backoff_min = 100ms;
  policy.backoff_max = 3200ms;
  policy.jitter = 0.2;
  std::mt19937_64 rng{12345};
  for (uint32_t n = 1; n <= 8; ++n) {
    int64_t base = std::min<int64_t>(100 << (n - 1), 3200);
    int64_t lowest = base, highest = base;
    for (int i = 0; i < 500; ++i) {
      auto d = backoff_delay(policy, n, rng).count();
      CHECK(d >= base * 8 / 10);
      CHECK(d <= base * 12 / 10);
      lowest = std::min(lowest, d);
      highest = std::max(highest, d);
    }
    CHECK(lowest < base); // the factor really is random, on both sides of 1
    CHECK(highest > base);
  }
}

TEST_CASE("one_for_one restarts only the crashed child", "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_one),
                         {child(p, "a"), child(p, "b"), child(p, "c")});
  REQUIRE(wait_until([&] { return p->has("start c 1"); }));
  f.tell("b", boom_atom::value);
  REQUIRE(wait_until([&] { return p->has("start b 2"); }));
  CHECK(p->instance("a") == 1);
  CHECK(p->instance("c") == 1);
  CHECK_FALSE(p->has("end a 1"));
  CHECK_FALSE(p->has("end c 1"));
  REQUIRE(wait_events(p, "restart", 1));
  auto events = p->seen();
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == "restart");
  CHECK(events[0].sup == "s");
  CHECK(events[0].child == "b");
  CHECK(events[0].reason == "stage_failed: b boom");
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK(*reason == caf::exit_reason::user_shutdown);
  CHECK(p->has("end a 1"));
  CHECK(p->has("end b 2"));
  CHECK(p->has("end c 1"));
}

TEST_CASE("the supervisor answers which actor a child currently is", "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_one), {child(p, "a")});
  REQUIRE(wait_until([&] { return p->has("start a 1"); }));
  caf::scoped_actor self{f.sys};
  caf::actor answer;
  self->request(sup, 10s, caf::get_atom::value, std::string{"a"})
    .receive([&](caf::actor& h) { answer = h; }, [&](caf::error&) {});
  CHECK(answer == p->handle("a"));
  self->request(sup, 10s, caf::get_atom::value, std::string{"nobody"})
    .receive([&](caf::actor& h) { answer = h; }, [&](caf::error&) {});
  CHECK_FALSE(answer);
  caf::anon_send(sup, std::string{"an unknown message is dropped"});
  caf::anon_send(sup, stop_atom::value);
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK_FALSE(*reason);
}

TEST_CASE("one_for_all restarts every child in order after all are down",
          "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_all),
                         {child(p, "a"), child(p, "b"), child(p, "c")});
  REQUIRE(wait_until([&] { return p->has("start c 1"); }));
  f.tell("b", boom_atom::value);
  REQUIRE(wait_until([&] { return p->has("start c 2"); }));
  auto first_restart = p->index_of("start a 2");
  CHECK(p->index_of("end a 1") < first_restart);
  CHECK(p->index_of("end b 1") < first_restart);
  CHECK(p->index_of("end c 1") < first_restart);
  CHECK(first_restart < p->index_of("start b 2"));
  CHECK(p->index_of("start b 2") < p->index_of("start c 2"));
  REQUIRE(wait_events(p, "restart", 1));
  CHECK(p->count_events("restart") == 1); // one failure, one restart
  caf::anon_send(sup, stop_atom::value);
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK_FALSE(*reason);
}

TEST_CASE("rest_for_one restarts the crashed child and the later ones only",
          "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto sup = f.supervise("s", fast_policy(restart_strategy::rest_for_one),
                         {child(p, "a"), child(p, "b"), child(p, "c"), child(p, "d")});
  REQUIRE(wait_until([&] { return p->has("start d 1"); }));
  f.tell("b", boom_atom::value);
  REQUIRE(wait_until([&] { return p->has("start d 2"); }));
  CHECK(p->instance("a") == 1);
  CHECK_FALSE(p->has("end a 1"));
  auto first_restart = p->index_of("start b 2");
  CHECK(p->index_of("end c 1") < first_restart);
  CHECK(p->index_of("end d 1") < first_restart);
  CHECK(first_restart < p->index_of("start c 2"));
  CHECK(p->index_of("start c 2") < p->index_of("start d 2"));
  caf::anon_send(sup, stop_atom::value);
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK_FALSE(*reason);
}

TEST_CASE("exceeding the restart intensity escalates with the child's error",
          "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto policy = fast_policy(restart_strategy::one_for_one);
  policy.max_restarts = 2;
  auto sup = f.supervise("s", policy, {child(p, "a"), child(p, "b")});
  caf::scoped_actor self{f.sys};
  self->monitor(sup);
  for (int i = 1; i <= 3; ++i) {
    REQUIRE(wait_until([&] { return p->has("start a " + std::to_string(i)); }));
    f.tell("a", boom_atom::value);
  }
  std::optional<caf::error> reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(std::chrono::seconds(30)) >> [] {});
  REQUIRE(reason);
  CHECK(code_of(*reason) == errc::stage_failed);
  CHECK(describe(*reason) == "stage_failed: a boom");
  CHECK(p->has("end b 1")); // the supervisor exits only after its children are down
  CHECK(p->instance("a") == 3);
  REQUIRE(wait_events(p, "escalate", 1));
  CHECK(p->count_events("restart") == 2);
  auto events = p->seen();
  CHECK(events.back().kind == "escalate");
  CHECK(events.back().child == "a");
  CHECK(events.back().reason == "failed again after 2 restarts within 60 s: stage_failed: a boom");
}

TEST_CASE("give_up stops the failing child and keeps the others", "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto policy = fast_policy(restart_strategy::one_for_one);
  policy.max_restarts = 1;
  auto sup = f.supervise("s", policy, {child(p, "a"), child(p, "b")}, on_exhausted::give_up);
  caf::scoped_actor self{f.sys};
  self->monitor(sup);
  REQUIRE(wait_until([&] { return p->has("start b 1"); }));
  f.tell("a", boom_atom::value);
  REQUIRE(wait_until([&] { return p->has("start a 2"); }));
  f.tell("a", boom_atom::value);
  REQUIRE(wait_until([&] { return p->count_events("gave_up") == 1; }));
  CHECK(p->seen().back().child == "a");
  CHECK(p->seen().back().reason == "failed again after 1 restart within 60 s: stage_failed: a boom");
  CHECK(p->instance("a") == 2);
  CHECK_FALSE(p->has("end b 1"));
  caf::actor a_now;
  self->request(sup, 10s, caf::get_atom::value, std::string{"a"})
    .receive([&](caf::actor& h) { a_now = h; }, [&](caf::error&) {});
  CHECK_FALSE(a_now);
  f.tell("b", finish_atom::value); // the last child finishes: now the supervisor reports
  std::optional<caf::error> reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(std::chrono::seconds(30)) >> [] {});
  REQUIRE(reason);
  CHECK(code_of(*reason) == errc::stage_failed);
  CHECK(describe(*reason) == "stage_failed: a failed permanently: stage_failed: a boom");
  CHECK(p->instance("a") == 2);
}

TEST_CASE("give_up under one_for_all restarts the peers without the failed child",
          "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto policy = fast_policy(restart_strategy::one_for_all);
  policy.max_restarts = 0;
  auto sup = f.supervise("s", policy, {child(p, "a"), child(p, "b")}, on_exhausted::give_up);
  REQUIRE(wait_until([&] { return p->has("start b 1"); }));
  f.tell("a", boom_atom::value);
  REQUIRE(wait_until([&] { return p->has("start b 2"); }));
  CHECK(p->index_of("end b 1") < p->index_of("start b 2"));
  CHECK(p->instance("a") == 1);
  CHECK(wait_events(p, "gave_up", 1));
  // An orderly stop still reports the child that was given up: a node stopped by SIGTERM after
  // a stage failed for good must not look like a clean run.
  caf::anon_send(sup, stop_atom::value);
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK(code_of(*reason) == errc::stage_failed);
}

TEST_CASE("children that exit normally are not restarted", "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_all),
                         {child(p, "a"), child(p, "b")});
  caf::scoped_actor self{f.sys};
  self->monitor(sup);
  REQUIRE(wait_until([&] { return p->has("start b 1"); }));
  f.tell("a", finish_atom::value);
  REQUIRE(wait_until([&] { return p->has("end a 1"); }));
  f.tell("b", leave_atom::value); // user_shutdown counts as normal too
  std::optional<caf::error> reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(std::chrono::seconds(30)) >> [] {});
  REQUIRE(reason);
  CHECK_FALSE(*reason);
  CHECK(p->instance("a") == 1);
  CHECK(p->instance("b") == 1);
  CHECK(p->seen().empty());
}

TEST_CASE("stop_atom stops every child and the supervisor exits normally",
          "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_one),
                         {child(p, "a"), child(p, "b"), child(p, "c")});
  REQUIRE(wait_until([&] { return p->has("start c 1"); }));
  caf::anon_send(sup, stop_atom::value);
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK_FALSE(*reason);
  CHECK(p->has("end a 1"));
  CHECK(p->has("end b 1"));
  CHECK(p->has("end c 1"));
}

TEST_CASE("an exit from the parent is forwarded to the children", "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_one),
                         {child(p, "a"), child(p, "b")});
  REQUIRE(wait_until([&] { return p->has("start b 1"); }));
  auto why = make_error(errc::stopped, "node shutdown");
  caf::scoped_actor{f.sys}->send_exit(sup, why);
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK(*reason == why);
  CHECK(p->has("end a 1"));
  CHECK(p->has("end b 1"));
  CHECK(p->seen().empty());
}

TEST_CASE("crashes during a pending restart restart each child once", "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto policy = fast_policy(restart_strategy::one_for_one);
  policy.backoff_min = 20ms;
  policy.backoff_max = 40ms;
  auto sup = f.supervise("s", policy, {child(p, "a"), child(p, "b")});
  REQUIRE(wait_until([&] { return p->has("start b 1"); }));
  f.tell("a", boom_atom::value);
  f.tell("b", boom_atom::value);
  REQUIRE(wait_until([&] { return p->has("start a 2") && p->has("start b 2"); }));
  CHECK(wait_events(p, "restart", 2));
  caf::anon_send(sup, stop_atom::value);
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK_FALSE(*reason);
  CHECK(p->instance("a") == 2);
  CHECK(p->instance("b") == 2);
}

TEST_CASE("reported backoff delays grow exponentially within the jitter",
          "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto policy = fast_policy(restart_strategy::one_for_one);
  policy.backoff_min = 2ms;
  policy.backoff_max = 32ms;
  policy.jitter = 0.25;
  auto sup = f.supervise("s", policy, {child(p, "a")});
  const int crashes = 7;
  for (int i = 1; i <= crashes; ++i) {
    REQUIRE(wait_until([&] { return p->has("start a " + std::to_string(i)); }));
    f.tell("a", boom_atom::value);
  }
  REQUIRE(wait_until([&] { return p->has("start a " + std::to_string(crashes + 1)); }));
  REQUIRE(wait_events(p, "restart", crashes));
  auto events = p->seen();
  REQUIRE(events.size() == crashes);
  for (int i = 0; i < crashes; ++i) {
    int64_t base = std::min<int64_t>(2 << i, 32); // 2, 4, 8, 16, 32, 32, 32
    INFO("restart " << i + 1 << " base " << base << " reported " << events[i].delay_ms);
    CHECK(events[i].kind == "restart");
    CHECK(events[i].delay_ms >= base * 3 / 4);
    CHECK(events[i].delay_ms <= (base * 5 + 3) / 4);
  }
  caf::anon_send(sup, stop_atom::value);
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK_FALSE(*reason);
}

// Ignores every exit it can (kill cannot be trapped); logs its end from its cleanup.
caf::behavior stubborn_child(caf::event_based_actor* self, probe_ptr p, std::string name,
                             int instance) {
  self->attach_functor([=](const caf::error&) { p->ended(name, instance); });
  self->set_exit_handler([](caf::exit_msg&) {});
  return {[](stop_atom) {}};
}

TEST_CASE("a child that ignores its exit is killed after shutdown_timeout",
          "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  child_spec stubborn{"stubborn", [p](caf::event_based_actor* self) {
                        int instance = p->next_instance("stubborn");
                        auto h = self->spawn(stubborn_child, p, "stubborn", instance);
                        p->started("stubborn", instance, h.address());
                        return h;
                      }};
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_all),
                         {child(p, "a"), stubborn}, on_exhausted::escalate, 20ms);
  REQUIRE(wait_until([&] { return p->has("start stubborn 1"); }));
  f.tell("a", boom_atom::value);
  REQUIRE(wait_until([&] { return p->has("start stubborn 2"); }));
  // Its end is logged from its cleanup, which may run after its down message was sent.
  CHECK(wait_until([&] { return p->has("end stubborn 1"); }));
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown); // the stubborn one is killed again
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK(*reason == caf::exit_reason::user_shutdown);
  CHECK(wait_until([&] { return p->has("end stubborn 2"); }));
}

TEST_CASE("a child that cannot start counts as a failure", "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto policy = fast_policy(restart_strategy::one_for_one);
  policy.max_restarts = 2;
  child_spec broken{"broken", [](caf::event_based_actor*) -> caf::actor {
                      throw std::runtime_error("no such file");
                    }};
  auto sup = f.supervise("s", policy, {child(p, "a"), broken});
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK(describe(*reason) == "stage_failed: cannot start broken: no such file");
  REQUIRE(wait_events(p, "escalate", 1));
  CHECK(p->count_events("restart") == 2);
  CHECK(p->has("end a 1"));
}

TEST_CASE("a supervisor without children exits at once", "[runtime][supervisor]") {
  fixture f;
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_one), {});
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK_FALSE(*reason);
}

TEST_CASE("a nested supervisor that escalates is restarted by its parent as a whole",
          "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto inner_policy = fast_policy(restart_strategy::one_for_one);
  inner_policy.max_restarts = 0; // the first crash escalates
  supervisor_options inner;
  inner.name = "inner";
  inner.policy = inner_policy;
  inner.observer = f.observer;
  inner.seed = 3;
  std::vector<child_spec> inner_children{child(p, "x"), child(p, "y")};
  child_spec inner_spec{"inner", [=](caf::event_based_actor* self) {
                          return spawn_supervisor(self, inner, inner_children);
                        }};
  auto sup = f.supervise("outer", fast_policy(restart_strategy::one_for_one),
                         {child(p, "p"), inner_spec});
  REQUIRE(wait_until([&] { return p->has("start y 1"); }));
  f.tell("x", boom_atom::value);
  REQUIRE(wait_until([&] { return p->has("start y 2"); }));
  CHECK(p->index_of("end y 1") < p->index_of("start x 2")); // old and new never overlap
  CHECK(p->index_of("start x 2") < p->index_of("start y 2"));
  CHECK(p->instance("p") == 1);
  CHECK_FALSE(p->has("end p 1"));
  REQUIRE(wait_events(p, "restart", 1));
  auto events = p->seen();
  REQUIRE(events.size() == 2);
  CHECK(events[0].kind == "escalate");
  CHECK(events[0].sup == "inner");
  CHECK(events[0].child == "x");
  CHECK(events[1].kind == "restart");
  CHECK(events[1].sup == "outer");
  CHECK(events[1].child == "inner");
  CHECK(events[1].reason == "stage_failed: x boom");
  caf::anon_send(sup, stop_atom::value); // forwarded through the inner supervisor
  auto reason = exit_reason_of(f.sys, sup);
  REQUIRE(reason);
  CHECK_FALSE(*reason);
  CHECK(p->has("end p 1"));
  CHECK(p->has("end x 2"));
  CHECK(p->has("end y 2"));
}

TEST_CASE("a permanent failure is given up at once, without a restart", "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_one),
                         {child(p, "a"), child(p, "b")}, on_exhausted::give_up);
  REQUIRE(wait_until([&] { return p->has("start b 1"); }));
  f.tell("a", doom_atom::value);
  REQUIRE(wait_events(p, "gave_up", 1));
  CHECK(p->count_events("restart") == 0);
  CHECK(p->instance("a") == 1);
  CHECK(p->seen().back().reason == "no restart can heal this: permanent: a doom");
  CHECK_FALSE(p->has("end b 1")); // the others run on
}

TEST_CASE("a permanent failure makes a stage supervisor escalate at once", "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto sup = f.supervise("s", fast_policy(restart_strategy::one_for_one), {child(p, "a")});
  caf::scoped_actor self{f.sys};
  self->monitor(sup);
  REQUIRE(wait_until([&] { return p->has("start a 1"); }));
  f.tell("a", doom_atom::value);
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; });
  CHECK(code_of(reason) == errc::permanent); // its own supervisor gives up at once too
  CHECK(p->instance("a") == 1);
}

TEST_CASE("a stop while a failed child waits for its restart reports the child",
          "[runtime][supervisor]") {
  fixture f;
  auto p = f.p;
  auto policy = fast_policy(restart_strategy::one_for_one);
  policy.backoff_min = policy.backoff_max = std::chrono::hours(1); // the restart never comes
  auto sup = f.supervise("s", policy, {child(p, "a"), child(p, "b")});
  caf::scoped_actor self{f.sys};
  self->monitor(sup);
  REQUIRE(wait_until([&] { return p->has("start b 1"); }));
  f.tell("a", boom_atom::value);
  REQUIRE(wait_events(p, "restart", 1));
  self->send(sup, stop_atom::value);
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; });
  CHECK(code_of(reason) == errc::stage_failed);
  CHECK(describe(reason).find("a had failed and was not running when the stop came") !=
        std::string::npos);
}
