// The scheduler of `troupe run` for an app with `schedule:`. It holds no store: each run is a
// child `troupe run` with a data dir of its own (runs/<id>), exact under crashes like any run,
// and the scheduler's own record is <data_dir>/schedule.json (schedule_record.hpp).
#include "troupe_schedule.hpp"

#include "schedule_record.hpp"

#include "base/log.hpp"
#include "process_status.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace troupe::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int max_attempts = 5;    // a run's process killed by a signal this often: it failed
constexpr size_t runs_kept = 100;  // ended runs listed in schedule.json

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void say(log_level level, const std::string& what) { log_event(level, "schedule", what); }

enum class woke { stop, child, time };

// Waits until `until` (ms), SIGINT/SIGTERM, or a child's end (SIGCHLD), at most a second at a
// time (a clock set forward is seen within a second).
woke wait_for(const sigset_t& signals, int64_t until) {
  for (;;) {
    auto left = std::max<int64_t>(0, std::min<int64_t>(until - now_ms(), 1000));
    if (left == 0)
      return woke::time;
    timespec ts{left / 1000, (left % 1000) * 1000000};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      say(log_level::info, std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                             ": stopping");
      return woke::stop;
    }
    if (sig == SIGCHLD)
      return woke::child;
  }
}

// Whether `pid` is the process of run `id` (its command line names it), not a reused pid.
bool is_run_process(int pid, const std::string& id) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return cmdline.find(std::string("--scheduled-run") + '\0' + id + '\0') != std::string::npos;
}

class scheduler {
public:
  scheduler(const app_config& app, std::string file, std::vector<std::string> args)
      : app_(app), when_(*app.schedule->when), file_(std::move(file)), args_(std::move(args)),
        state_path_(fs::path(app.data_dir) / "schedule.json") {
    sigemptyset(&signals_);
    for (int s : {SIGINT, SIGTERM, SIGCHLD})
      sigaddset(&signals_, s);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr); // SIGCHLD too: sigtimedwait takes it
  }

  int run();

private:
  enum class ended { done, failed, stopped };
  ended run_one(const std::string& id, int64_t due, int attempts);
  pid_t spawn(const std::string& id, int64_t due);
  bool save() {
    std::string error;
    if (save_state(state_path_, st_, error))
      return true;
    say(log_level::error, error + "; the scheduler stops");
    stop_ = true;
    exit_code_ = 1;
    return false;
  }
  void record(const std::string& id, int64_t due, const char* status, const std::string& why) {
    st_.runs.push_back({{"id", id},
                        {"due", when_.local_time_text(due)},
                        {"status", status},
                        {"ended", now_ms()},
                        {"why", why}});
    if (st_.runs.size() > runs_kept)
      st_.runs.erase(st_.runs.begin());
    st_.last_due = due;
    st_.running.reset();
  }

  const app_config& app_;
  const cron_schedule& when_;
  std::string file_;
  std::vector<std::string> args_;
  fs::path state_path_;
  schedule_state st_;
  sigset_t signals_;
  bool stop_ = false;
  int exit_code_ = 0;
};

pid_t scheduler::spawn(const std::string& id, int64_t due) {
  auto self = fs::read_symlink("/proc/self/exe").string();
  auto dir = (fs::path(app_.data_dir) / "runs" / id).string();
  std::vector<std::string> argv = {self, "run", file_, "--data-dir", dir, "--scheduled-run", id};
  argv.insert(argv.end(), args_.begin(), args_.end());
  std::vector<char*> cargv;
  for (auto& a : argv)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  auto env = run_environment(when_, due);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // The run stops (in order) when the scheduler dies, and resumes at its next start.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
      _exit(127);
    for (const auto& [k, v] : env)
      setenv(k.c_str(), v.c_str(), 1);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_UNBLOCK, &chld, nullptr);
    execv(self.c_str(), cargv.data());
    std::fprintf(stderr, "troupe: cannot start %s: %s\n", self.c_str(), std::strerror(errno));
    _exit(127);
  }
  return pid;
}

scheduler::ended scheduler::run_one(const std::string& id, int64_t due, int attempts) {
  for (;;) {
    st_.running = running_run{id, due, attempts, 0};
    if (!save()) // before the process starts: a crash now finds the run under way
      return ended::stopped;
    pid_t pid = spawn(id, due);
    if (pid < 0) {
      record(id, due, "failed", std::string("cannot fork: ") + std::strerror(errno));
      return ended::failed;
    }
    st_.running->pid = pid;
    save();
    say(log_level::info, "run " + id + " starts (due " + when_.local_time_text(due) +
                           "), process " + std::to_string(pid) + ", data in " +
                           (fs::path(app_.data_dir) / "runs" / id).string());
    auto started = now_ms();
    int status = 0;
    for (;;) {
      auto why = wait_for(signals_, now_ms() + 1000);
      if (why == woke::stop) {
        stop_ = true;
        ::kill(pid, SIGTERM);
        ::waitpid(pid, &status, 0);
        say(log_level::info, "run " + id + " stopped with the node; it resumes at the next start");
        return ended::stopped;
      }
      if (::waitpid(pid, &status, WNOHANG) == pid)
        break;
    }
    auto took = std::to_string((now_ms() - started + 500) / 1000) + " s";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      say(log_level::info, "run " + id + " done in " + took);
      record(id, due, "done", "");
      save();
      return ended::done;
    }
    if (WIFEXITED(status) || ++attempts >= max_attempts) {
      // An exit status is the run's own verdict (1: it failed, 2: its YAML is wrong): starting
      // it again would end the same way. A signal (a crash) is retried, a few times.
      auto why = "its process " + describe_status(status) +
                 (WIFEXITED(status) ? "" : ", " + std::to_string(attempts) + " times");
      say(log_level::error, "run " + id + " failed: " + why +
                              " (its log says why; its data stays in runs/" + id + ")");
      record(id, due, "failed", why);
      save();
      return ended::failed;
    }
    int64_t backoff = int64_t{1000} << (attempts - 1);
    say(log_level::warn, "run " + id + "'s process " + describe_status(status) + ": restart " +
                           std::to_string(attempts) + " of " + std::to_string(max_attempts - 1) +
                           " in " + std::to_string(backoff / 1000) + " s; it resumes where it was");
    auto until = now_ms() + backoff;
    woke w;
    while ((w = wait_for(signals_, until)) == woke::child) {
    }
    if (w == woke::stop) {
      stop_ = true;
      return ended::stopped;
    }
  }
}

int scheduler::run() {
  std::error_code ec;
  fs::create_directories(app_.data_dir, ec);
  auto lock_path = fs::path(app_.data_dir) / "schedule.lock";
  int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0) {
    std::cerr << "troupe: cannot create " << lock_path.string() << ": " << std::strerror(errno)
              << "\n";
    return 1;
  }
  if (::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    std::cerr << "troupe: another troupe run is running the schedule in " << app_.data_dir
              << "\n";
    return 1;
  }
  std::string error;
  if (auto st = load_state(state_path_, error)) {
    st_ = std::move(*st);
  } else if (!error.empty()) {
    std::cerr << "troupe: " << error << "\n";
    return 1;
  } else {
    st_.since = now_ms();
    if (!save())
      return exit_code_;
  }
  const auto& cfg = *app_.schedule;
  auto started = now_ms();
  say(log_level::info, "app " + app_.name + " runs on \"" + cfg.cron + "\" in " +
                         when_.zone_name() + "; each run's data is in " +
                         (fs::path(app_.data_dir) / "runs").string());
  std::optional<int64_t> announced;
  while (!stop_) {
    std::string id;
    int64_t due;
    int attempts = 0;
    if (st_.running) {
      id = st_.running->id;
      due = st_.running->due;
      attempts = st_.running->attempts;
      if (int pid = st_.running->pid; pid > 0 && is_run_process(pid, id)) {
        // A scheduler killed outright: its run stops on its own (it was told when its parent
        // died) and holds its store until then.
        say(log_level::info, "run " + id + "'s process " + std::to_string(pid) +
                               " from before is still stopping: waiting for it");
        while (is_run_process(pid, id))
          if (wait_for(signals_, now_ms() + 100) == woke::stop)
            return exit_code_;
      }
      say(log_level::info, "run " + id + " was under way when the node stopped: it resumes");
    } else {
      auto after = st_.last_due ? *st_.last_due : cfg.start_ms ? *cfg.start_ms - 1 : st_.since;
      auto latest = when_.latest_in(after, now_ms());
      if (!latest) {
        auto next = when_.next_after(std::max(after, now_ms()));
        if (!next) {
          std::cerr << "troupe: the schedule \"" << cfg.cron << "\" is not due again\n";
          return 1;
        }
        if (announced != next)
          say(log_level::info, "next run " + when_.run_id(*next) + " is due " +
                                 when_.local_time_text(*next));
        announced = next;
        woke w;
        while ((w = wait_for(signals_, *next)) == woke::child) {
        }
        if (w == woke::stop)
          break;
        continue;
      }
      due = *latest;
      id = when_.run_id(due);
      if (due < started) { // due while no scheduler was running
        bool earlier = when_.latest_in(after, due - 1).has_value();
        std::string more = earlier ? " (earlier runs missed too are not run)" : "";
        if (cfg.missed == schedule_config::missed_policy::skip) {
          say(log_level::warn, "run " + id + " was due " + when_.local_time_text(due) +
                                 " while the node was down: skipped (missed: skip)" + more);
          record(id, due, "skipped", "due while the node was down");
          save();
          continue;
        }
        say(log_level::info, "run " + id + " was due " + when_.local_time_text(due) +
                               " while the node was down: it runs now (missed: run_once)" + more);
      }
    }
    if (run_one(id, due, attempts) == ended::stopped)
      break;
  }
  return exit_code_;
}

} // namespace

std::vector<std::pair<std::string, std::string>> run_environment(const cron_schedule& when,
                                                                 int64_t due_ms) {
  return {{"TROUPE_RUN_ID", when.run_id(due_ms)},
          {"TROUPE_RUN_TIME", when.local_time_text(due_ms)},
          {"TROUPE_RUN_DATE", when.local_date(due_ms)},
          {"TROUPE_RUN_PREVIOUS_DATE", when.local_date(due_ms, -1)}};
}

void default_run_environment() {
  auto utc = cron_schedule::parse("* * * * *", "UTC");
  auto now = now_ms();
  for (const auto& [k, v] : run_environment(utc, now - now % 60000))
    setenv(k.c_str(), v.c_str(), 0);
}

int run_schedule(const app_config& app, const std::string& file,
                 const std::vector<std::string>& args) {
  return scheduler(app, file, args).run();
}

} // namespace troupe::cli
