#include "admin/monitor.hpp"

#include "base/log.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <sstream>

extern char** environ;

namespace troupe {

namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string number(double v) {
  std::ostringstream s;
  s << (std::floor(v) == v ? static_cast<int64_t>(v) : v);
  return s.str();
}

std::string seconds(double ms) { return number(std::round(ms / 100) / 10) + " s"; }

// "{alert}", "{stage}", "{value}" and "{message}" in an argument are the alert's.
std::string expand(std::string arg, const std::map<std::string, std::string>& values) {
  for (const auto& [name, value] : values)
    for (auto at = arg.find("{" + name + "}"); at != std::string::npos;
         at = arg.find("{" + name + "}", at + value.size()))
      arg.replace(at, name.size() + 2, value);
  return arg;
}

} // namespace

struct node_monitor::alerts {
  struct track {
    int64_t since = 0; // when the condition began to hold; 0: it does not
    bool firing = false;
  };
  std::map<std::pair<size_t, std::string>, track> tracks; // (rule, stage)
  // Per stage: (time, restarts so far, dead letters so far), oldest first, for windows.
  std::map<std::string, std::deque<std::tuple<int64_t, uint64_t, uint64_t>>> history;
  std::vector<pid_t> commands;

  void start(const alert_rule& rule, const std::map<std::string, std::string>& values) {
    if (rule.run.empty())
      return;
    std::vector<std::string> args, env;
    for (const auto& a : rule.run)
      args.push_back(expand(a, values));
    for (char** e = environ; *e; ++e)
      env.emplace_back(*e);
    for (const auto& [name, value] : values) {
      std::string key = "TROUPE_ALERT";
      if (name != "alert")
        for (char c : "_" + name)
          key += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      env.push_back(key + "=" + value);
    }
    std::vector<char*> argv, envp;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
      log_event(log_level::error, "alert " + rule.name,
                "cannot run '" + rule.run.front() + "': " + std::strerror(rc));
    else
      commands.push_back(pid);
  }

  void reap() {
    for (auto i = commands.begin(); i != commands.end();) {
      int status = 0;
      if (::waitpid(*i, &status, WNOHANG) == *i) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
          log_event(log_level::warn, "alert", "an alert command (pid " + std::to_string(*i) +
                                                ") ended with status " + std::to_string(status));
        i = commands.erase(i);
      } else {
        ++i;
      }
    }
  }

  void check(admin_state& s, int64_t now);
};

void node_monitor::alerts::check(admin_state& s, int64_t now) {
  reap();
  if (s.app->alerts.empty())
    return;
  auto figures = stage_figures(s, now);
  for (const auto& f : figures) {
    auto& h = history[f.stage];
    // The run's start, as the first sample: no restarts yet, and only earlier runs' dead letters
    // (what happened before the first check still counts as growth).
    if (h.empty())
      h.emplace_back(now, 0, f.dead_letters - std::min(f.dead_letters, f.dead_letters_this_run));
    h.emplace_back(now, f.restarts, f.dead_letters);
    while (h.size() > 2 && std::get<0>(h[1]) < now - 3600 * 1000)
      h.pop_front();
  }
  using K = alert_rule::kind;
  for (size_t r = 0; r < s.app->alerts.size(); ++r) {
    const auto& rule = s.app->alerts[r];
    for (const auto& f : figures) {
      if (!rule.stages.empty() &&
          std::find(rule.stages.begin(), rule.stages.end(), f.stage) == rule.stages.end())
        continue;
      // The figure as it was `window` ago (the oldest sample within it).
      auto before = [&](int idx) -> uint64_t {
        for (const auto& sample : history[f.stage])
          if (std::get<0>(sample) >= now - rule.window.count())
            return idx == 1 ? std::get<1>(sample) : std::get<2>(sample);
        return 0;
      };
      bool holds = false;
      double value = 0;
      std::string what;
      switch (rule.what) {
        case K::lag:
          value = static_cast<double>(f.lag);
          holds = f.has_inputs && value > rule.above;
          what = "lag " + number(value) + " records, above " + number(rule.above);
          break;
        case K::lag_age:
          value = f.oldest_ms ? static_cast<double>(*f.oldest_ms) : 0;
          holds = f.oldest_ms && value > rule.above;
          what = "its oldest unconsumed record is " + seconds(value) + " old, above " +
                 seconds(rule.above);
          break;
        case K::dead_letters: {
          value = static_cast<double>(f.dead_letters);
          auto grew = f.dead_letters - std::min(f.dead_letters, before(2));
          holds = value > rule.above && grew > 0;
          what = number(grew) + (grew == 1 ? " dead letter" : " dead letters") + " within " +
                 seconds(rule.window.count()) + " (" + number(value) + " in all)";
          break;
        }
        case K::restarts:
          value = static_cast<double>(f.restarts - std::min(f.restarts, before(1)));
          holds = value > rule.above;
          what = number(value) + " restarts within " + seconds(rule.window.count()) +
                 ", above " + number(rule.above);
          break;
        case K::given_up:
          holds = f.given_up;
          value = holds ? 1 : 0;
          what = "the node gave it up: " + (f.last_error.empty() ? "see the log" : f.last_error);
          break;
        case K::stalled: {
          auto idle = static_cast<double>(now - std::max(f.last_step_ms, s.started_ms));
          value = idle;
          holds = f.lag > 0 && !f.paused && idle > rule.window.count();
          what = number(static_cast<double>(f.lag)) + " records waiting and no step for " +
                 seconds(idle);
          break;
        }
      }
      auto& t = tracks[{r, f.stage}];
      if (!holds) {
        if (t.firing)
          log_event(log_level::info, "alert " + rule.name, "resolved for stage " + f.stage);
        t = {};
        continue;
      }
      if (t.since == 0)
        t.since = now;
      if (t.firing || now - t.since < rule.hold.count())
        continue;
      t.firing = true;
      auto message = "stage " + f.stage + ": " + what;
      log_event(log_level::warn, "alert " + rule.name, "fires: " + message);
      start(rule, {{"alert", rule.name}, {"stage", f.stage}, {"value", number(value)},
                   {"message", message}});
    }
  }
}

node_monitor::node_monitor(std::shared_ptr<admin_state> state)
    : state_(std::move(state)), alerts_(std::make_unique<alerts>()) {
  thread_ = std::thread([this] { run(); });
}

node_monitor::~node_monitor() {
  {
    std::lock_guard<std::mutex> lock{mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void node_monitor::run() {
  std::unique_lock<std::mutex> lock{mutex_};
  while (!stopping_) {
    lock.unlock();
    auto now = wall_ms();
    state_->sample(now);
    alerts_->check(*state_, now);
    lock.lock();
    wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
  }
}

} // namespace troupe
