// Running one external command (see subprocess.hpp): posix_spawn with three pipes, a poll loop
// that feeds its input and drains its output, and SIGKILL to its process group at the deadline.
#include "subprocess.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace troupe {

namespace {

struct fd {
  int v = -1;
  fd() = default;
  fd(const fd&) = delete;
  fd& operator=(const fd&) = delete;
  ~fd() { reset(); }
  void reset() {
    if (v >= 0)
      ::close(v);
    v = -1;
  }
};

bool make_pipe(fd& read_end, fd& write_end) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) // other threads' children must not inherit it
    return false;
  read_end.v = p[0];
  write_end.v = p[1];
  return true;
}

std::string seconds(std::chrono::milliseconds d) {
  auto ms = d.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

// Its standard input is a socket, not a pipe: send() with MSG_NOSIGNAL gets EPIPE from a command
// that exits without reading it, where a pipe would raise SIGPIPE in the whole node.
bool make_input(fd& child_end, fd& our_end) {
  int p[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0)
    return false;
  ::shutdown(p[0], SHUT_WR);
  ::shutdown(p[1], SHUT_RD);
  child_end.v = p[0];
  our_end.v = p[1];
  return true;
}

} // namespace

std::string subprocess_result::failure() const {
  if (!started)
    return "could not start: " + error;
  if (timed_out)
    return "ran past its " + error + " and was killed";
  if (output_overflow)
    return "wrote more output than the stage keeps";
  if (signal != 0)
    return "was killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  if (exit_status != 0)
    return "exited with status " + std::to_string(exit_status);
  return {};
}

subprocess_result run_subprocess(const std::vector<std::string>& argv, const std::string& input,
                                 const subprocess_options& options) {
  subprocess_result result;
  fd in_r, in_w, out_r, out_w, err_r, err_w;
  if (!make_input(in_r, in_w) || !make_pipe(out_r, out_w) || !make_pipe(err_r, err_w)) {
    result.error = std::string{"pipe: "} + std::strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.v, 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.v, 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.v, 2);
  if (!options.cwd.empty())
    posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                    POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    result.error = argv[0] + ": " + std::strerror(rc);
    return result;
  }
  result.started = true;
  in_r.reset();
  out_w.reset();
  err_w.reset();
  size_t written = 0;
  if (input.empty())
    in_w.reset();

  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  char buf[65536];
  while (out_r.v >= 0 || err_r.v >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[3];
    int n = 0;
    auto watch = [&](fd& f, short events) {
      if (f.v >= 0)
        fds[n++] = {f.v, events, 0};
    };
    watch(out_r, POLLIN);
    watch(err_r, POLLIN);
    watch(in_w, POLLOUT);
    int ready = ::poll(fds, n, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR)
      break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0)
        continue;
      if (fds[i].fd == in_w.v) {
        auto w = ::send(in_w.v, input.data() + written, input.size() - written,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
          written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) // EPIPE: it does not read its input
          in_w.reset();
        else if (written == input.size())
          in_w.reset();
        continue;
      }
      bool is_out = fds[i].fd == out_r.v;
      auto r = ::read(fds[i].fd, buf, sizeof buf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      if (r <= 0) {
        (is_out ? out_r : err_r).reset();
        continue;
      }
      if (is_out) {
        if (result.out.size() + static_cast<size_t>(r) > options.max_output) {
          result.output_overflow = true;
          out_r.reset();
        } else {
          result.out.append(buf, static_cast<size_t>(r));
        }
      } else {
        result.err.append(buf, static_cast<size_t>(r));
        if (result.err.size() > 2 * options.stderr_tail)
          result.err.erase(0, result.err.size() - options.stderr_tail);
      }
    }
  }
  in_w.reset();
  // Its output is closed; it may still run (or linger): wait for it until the deadline.
  int status = 0;
  bool reaped = false;
  useconds_t pause = 20; // it usually exits right after closing its output: look again soon
  while (!result.timed_out && !result.output_overflow) {
    auto r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) {
      reaped = r == pid;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      result.timed_out = true;
    else
      ::usleep(pause);
    pause = std::min<useconds_t>(pause * 2, 1000);
  }
  if (!reaped) {
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (WIFEXITED(status))
    result.exit_status = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.signal = WTERMSIG(status);
  if (result.err.size() > options.stderr_tail)
    result.err.erase(0, result.err.size() - options.stderr_tail);
  if (result.timed_out)
    result.error = "timeout of " + seconds(options.timeout);
  return result;
}

} // namespace troupe
