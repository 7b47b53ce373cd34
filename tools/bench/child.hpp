// Runs one benchmark phase in a forked child process, so that each phase starts from a clean
// process and its peak RSS (wait4's ru_maxrss) is its own.
//
// Call it only while this process has a single thread (before any actor system exists):
// the child of a multi-threaded process may inherit locks held by threads it does not have.
#pragma once

#include "phase.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

namespace troupe::bench {

struct child_report {
  phase_result result;
  double peak_rss_mib = 0; // the child's maximum resident set size
  double cpu_seconds = 0;  // the child's user + system time (all its threads)
  std::string crash;       // set when the child died without reporting (a signal, an exit code)
  bool ok() const { return crash.empty() && result.ok(); }
};

namespace detail {

// Samples RssAnon and RssFile of this process until destroyed, keeping the maxima. ru_maxrss
// gives the peak of their sum; this says which of the two it was.
class rss_sampler {
public:
  // Writes the peaks into `into` when destroyed (so after whatever else wrote `into`).
  explicit rss_sampler(phase_result& into) : into_(into), thread_{[this] { loop(); }} {}
  ~rss_sampler() {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
    into_.peak_anon_kib = anon_kib_;
    into_.peak_file_kib = file_kib_;
  }

private:
  void sample() { // Linux's "RssAnon:   1234 kB" lines
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f)
      return;
    char line[256];
    unsigned long long kib = 0;
    while (std::fgets(line, sizeof line, f)) {
      if (std::sscanf(line, "RssAnon: %llu", &kib) == 1)
        anon_kib_ = std::max<uint64_t>(anon_kib_, kib);
      else if (std::sscanf(line, "RssFile: %llu", &kib) == 1)
        file_kib_ = std::max<uint64_t>(file_kib_, kib);
    }
    std::fclose(f);
  }
  void loop() {
    std::unique_lock<std::mutex> lock{mutex_};
    while (!done_) {
      sample();
      cv_.wait_for(lock, std::chrono::milliseconds{20});
    }
    sample();
  }
  phase_result& into_;
  uint64_t anon_kib_ = 0, file_kib_ = 0; // the sampling thread's own
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

inline bool write_all(int fd, const void* data, size_t size) {
  auto p = static_cast<const char*>(data);
  while (size > 0) {
    auto n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

inline size_t read_all(int fd, void* data, size_t size) {
  auto p = static_cast<char*>(data);
  size_t got = 0;
  while (got < size) {
    auto n = ::read(fd, p + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += static_cast<size_t>(n);
  }
  return got;
}

} // namespace detail

// Forks, runs fn() (returning a phase_result) in the child, and waits for it.
template <class F> child_report run_in_child(F&& fn) {
  child_report report;
  int fds[2];
  if (::pipe(fds) != 0) {
    report.crash = std::string{"pipe: "} + std::strerror(errno);
    return report;
  }
  std::fflush(nullptr); // nothing buffered may be written twice
  pid_t pid = ::fork();
  if (pid < 0) {
    report.crash = std::string{"fork: "} + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return report;
  }
  if (pid == 0) {
    ::close(fds[0]);
    phase_result r;
    {
      detail::rss_sampler sampler{r};
      try {
        r = fn();
      } catch (const std::exception& e) {
        r.fail(std::string{"exception: "} + e.what());
      } catch (...) {
        r.fail("unknown exception");
      }
    }
    std::fflush(nullptr);
    // _exit: the parent's atexit handlers and static destructors are not the child's business.
    ::_exit(detail::write_all(fds[1], &r, sizeof r) ? 0 : 3);
  }
  ::close(fds[1]);
  auto got = detail::read_all(fds[0], &report.result, sizeof report.result);
  ::close(fds[0]);
  int status = 0;
  struct rusage usage {};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  report.peak_rss_mib = static_cast<double>(usage.ru_maxrss) / 1024.0; // ru_maxrss is in KiB
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  report.cpu_seconds = secs(usage.ru_utime) + secs(usage.ru_stime);
  if (WIFSIGNALED(status))
    report.crash = std::string{"killed by signal "} + std::to_string(WTERMSIG(status)) + " (" +
                   strsignal(WTERMSIG(status)) + ")";
  else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != sizeof report.result)
    report.crash =
        "exited with status " + std::to_string(WEXITSTATUS(status)) + " without a result";
  return report;
}

} // namespace troupe::bench
