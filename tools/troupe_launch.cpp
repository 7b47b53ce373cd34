// troupe launch: every node of an app with `nodes:` on this machine, each a child process
// `troupe run APP --node NAME`, supervised like a stage:
// - each line a node logs is written to stderr prefixed with "[NAME] " (JSON lines, which name
//   their node themselves, as they are);
// - a node killed by a signal is started again, after the app's supervision backoff
//   (supervision.backoff_min doubling up to backoff_max), at most supervision.max_restarts
//   times within supervision.within; one more and the launch gives up;
// - a node that exits 0 has finished (its stages drained); one that exits with another status
//   failed for a reason a restart would not heal (its log says which): the others are stopped;
// - SIGINT/SIGTERM stops every node in order (each commits its steps in flight); a launcher
//   killed outright takes its nodes with it (PR_SET_PDEATHSIG).
// Exit status: 0 when every node finished (or all stopped on a signal), 1 when a node failed or
// was given up.
#include "troupe_launch.hpp"

#include "base/backoff.hpp"
#include "base/log.hpp"
#include "process_status.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>

namespace fs = std::filesystem;

namespace troupe::cli {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

void say(log_level level, const std::string& what) { log_event(level, "launch", what); }

struct child {
  std::string node;
  pid_t pid = -1;
  int out = -1;          // the read end of its stdout and stderr
  std::string partial;   // a line not yet ended
  bool finished = false; // exited 0
  bool ended = false;    // will not run again in this launch
  int64_t start_at = 0;  // when to start it again (0: not waiting)
  std::deque<int64_t> restarts; // when it was restarted, within supervision.within
};

class launcher {
public:
  launcher(const app_config& app, std::string file, std::vector<std::string> args)
      : app_(app), file_(std::move(file)), args_(std::move(args)) {
    for (const auto& n : app.nodes)
      children_.push_back(child{n.name, -1, -1, {}, false, false, 0, {}});
  }

  int run();

private:
  void start(child& c);
  void forward(child& c, bool until_eof);
  void reap();
  void stop_all(const std::string& why);
  void ended(child& c, int status);

  const app_config& app_;
  std::string file_;
  std::vector<std::string> args_;
  std::vector<child> children_;
  bool stopping_ = false;
  int exit_code_ = 0;
};

void launcher::start(child& c) {
  auto self = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> argv = {self, "run", file_, "--node", c.node};
  for (auto a : args_) {
    if (auto at = a.find("{node}"); at != std::string::npos)
      a.replace(at, 6, c.node);
    argv.push_back(a);
  }
  std::vector<char*> cargv;
  for (auto& a : argv)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    say(log_level::error, std::string("cannot start node ") + c.node + ": " + std::strerror(errno));
    c.ended = true;
    stop_all("a node could not start");
    exit_code_ = 1;
    return;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); // a launcher killed outright takes its nodes with it
    if (getppid() != parent)
      _exit(127);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    execv(self.c_str(), cargv.data());
    std::fprintf(stderr, "troupe: cannot start %s: %s\n", self.c_str(), std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  c.out = fds[0];
  c.pid = pid;
  c.start_at = 0;
  say(log_level::info, "node " + c.node + " starts, process " + std::to_string(pid));
}

// Writes what the node logged, line by line, prefixed.
void launcher::forward(child& c, bool until_eof) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(c.out, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0 || !until_eof) {
        if (n == 0) {
          close(c.out);
          c.out = -1;
        }
        break;
      }
      break;
    }
    c.partial.append(buf, static_cast<size_t>(n));
    size_t from = 0;
    for (auto nl = c.partial.find('\n'); nl != std::string::npos;
         nl = c.partial.find('\n', from)) {
      std::string line = c.partial.substr(from, nl + 1 - from);
      if (line.empty() || line[0] != '{')
        line = "[" + c.node + "] " + line;
      std::fwrite(line.data(), 1, line.size(), stderr);
      from = nl + 1;
    }
    c.partial.erase(0, from);
    if (!until_eof)
      break;
  }
  if (c.out < 0 && !c.partial.empty()) {
    auto line = "[" + c.node + "] " + c.partial + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    c.partial.clear();
  }
}

void launcher::stop_all(const std::string& why) {
  if (!stopping_)
    say(log_level::info, why + ": stopping every node");
  stopping_ = true;
  for (auto& c : children_) {
    c.start_at = 0;
    if (c.pid > 0)
      kill(c.pid, SIGTERM);
    else
      c.ended = true;
  }
}

void launcher::ended(child& c, int status) {
  if (c.out >= 0) {
    int flags = fcntl(c.out, F_GETFL);
    fcntl(c.out, F_SETFL, flags & ~O_NONBLOCK);
    forward(c, true); // what it wrote before it ended
  }
  c.pid = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    c.finished = c.ended = true;
    say(log_level::info, "node " + c.node + (stopping_ ? " stopped" : " finished"));
    return;
  }
  if (stopping_) {
    c.ended = true;
    say(log_level::info, "node " + c.node + " " + describe_status(status));
    return;
  }
  if (WIFEXITED(status)) {
    // Its own verdict (1: it failed, 2: its YAML is wrong): a restart would end the same way.
    c.ended = true;
    exit_code_ = 1;
    say(log_level::error, "node " + c.node + " failed: its process " + describe_status(status) +
                            " (its log above says why)");
    stop_all("node " + c.node + " failed");
    return;
  }
  const auto& sup = app_.node_supervision;
  auto now = now_ms();
  while (!c.restarts.empty() && c.restarts.front() < now - sup.within.count())
    c.restarts.pop_front();
  if (c.restarts.size() >= sup.max_restarts) {
    c.ended = true;
    exit_code_ = 1;
    say(log_level::error, "node " + c.node + " " + describe_status(status) + ", " +
                            std::to_string(c.restarts.size() + 1) + " times within " +
                            std::to_string(sup.within.count() / 1000) + " s: it is given up");
    stop_all("node " + c.node + " is given up");
    return;
  }
  auto delay = backoff_delay(sup.backoff_min, sup.backoff_max, c.restarts.size());
  c.restarts.push_back(now);
  c.start_at = now + delay.count();
  say(log_level::warn, "node " + c.node + " " + describe_status(status) + ": starting it again in " +
                         std::to_string(delay.count()) + " ms");
}

void launcher::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;
    for (auto& c : children_)
      if (c.pid == pid)
        ended(c, status);
  }
}

int launcher::run() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGINT, SIGTERM, SIGCHLD})
    sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int sfd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (sfd < 0) {
    say(log_level::error, std::string("cannot wait for signals: ") + std::strerror(errno));
    return 1;
  }
  say(log_level::info, "app " + app_.name + ": " + std::to_string(children_.size()) + " nodes");
  for (auto& c : children_)
    if (!stopping_)
      start(c);
  for (;;) {
    if (std::all_of(children_.begin(), children_.end(), [](const child& c) { return c.ended; }))
      break;
    auto now = now_ms();
    int64_t wait = 1000;
    for (auto& c : children_)
      if (c.start_at != 0) {
        if (c.start_at <= now && !stopping_)
          start(c);
        else
          wait = std::min(wait, c.start_at - now);
      }
    std::vector<pollfd> fds{{sfd, POLLIN, 0}};
    std::vector<child*> owners{nullptr};
    for (auto& c : children_)
      if (c.out >= 0) {
        fds.push_back({c.out, POLLIN, 0});
        owners.push_back(&c);
      }
    if (poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(1, wait))) < 0 &&
        errno != EINTR)
      break;
    for (size_t i = 1; i < fds.size(); ++i)
      if (fds[i].revents & (POLLIN | POLLHUP))
        forward(*owners[i], false);
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (read(sfd, &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGCHLD)
          reap();
        else
          stop_all(std::string("received ") + (info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM"));
        break;
      }
      reap();
    }
  }
  close(sfd);
  if (exit_code_ == 0)
    say(log_level::info, stopping_ ? "every node stopped" : "every node finished");
  return exit_code_;
}

} // namespace

int launch_app(const app_config& app, const std::string& file, const load_options& options) {
  if (app.nodes.empty()) {
    log_event(log_level::error, "launch", "app " + app.name + " declares no nodes (nodes:): run "
                                          "it with troupe run " + file);
    return 64;
  }
  std::vector<std::string> args;
  for (const auto& o : options.overrides)
    args.insert(args.end(), {"--set", o});
  if (!options.data_dir.empty())
    args.insert(args.end(), {"--data-dir", (fs::absolute(options.data_dir) / "{node}").string()});
  return launcher{app, file, std::move(args)}.run();
}

} // namespace troupe::cli
