// How the last run on a data dir ended, and what a node does about it before it reads the store.
//
// At `durability: process` LMDB commits without fsync (MDB_NOSYNC) and the node flushes every
// `store.flush_interval`. A crash of the process loses nothing (the OS holds every write), but a
// power loss or an OS crash may write the newest meta page to disk and not the pages it points
// at: the file then holds a tree of old and new pages. LMDB does not verify what it reads, and
// its writer follows the free list and the tree as they are: on such a file it can crash the
// node (seen in the power-cut tests: SIGSEGV in mdb_midl_xmerge, merging a free list of noise).
//
// So a node that opens a data dir the last run left open at `process` first verifies every
// value of it, as `troupe check` does, in a child process: noise that crashes LMDB there ends
// that child, and the node reports the damage instead of dying of it. A run at `sync` leaves a
// file LMDB can read after any cut (tests/powercut/), and a clean close leaves nothing to check.
//
// troupe.lock (the file whose flock keeps a second node out) carries the note: one line,
// "open, durability D, pid P", written and fdatasynced once the store is open, emptied on a clean
// close after the last flush.
//
// fork() is safe only while the process has one thread (a lock another thread held at the fork,
// in malloc or elsewhere, stays locked in the child: ASan's allocator did that in CI). So
// `troupe run` calls store::verify_if_left_open before CAF starts; a file found whole gets the
// line "verified whole after an unclean end (...)", which store::open trusts: nothing wrote to the
// file since. store::open verifies by itself only what nobody verified (a program that opens a
// store after starting threads takes the fork's risk; with glibc's malloc it is safe).
#include "store/store_check.hpp"
#include "store/store_impl.hpp"

#include "base/log.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

namespace troupe {

namespace {

constexpr size_t max_reported = 5; // problems the child sends back; troupe check lists them all

// Writes all of `text` to `fd`, as far as it goes (the child's last words).
void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    done += static_cast<size_t>(n);
  }
}

// The child: verify, say what is wrong (one problem per line), exit 0 if nothing is.
[[noreturn]] void verify_in_child(const std::string& dir, int out) {
  // A fault here ends this child, and only it: no handler the parent installed (the node's crash
  // blame, a test framework's, a sanitizer's) may act on it.
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
    std::signal(sig, SIG_DFL);
  if (const char* fault = std::getenv("TROUPE_TEST_FAULT");
      fault && std::string_view(fault) == "crash-in-verify") // store_open.cpp
    std::raise(SIGSEGV);
  auto report = check_data_dir(dir, /*stopped=*/true); // the parent holds the lock
  std::string text;
  for (size_t i = 0; i < report.problems.size() && i < max_reported; ++i)
    text += report.problems[i] + "\n";
  if (report.problems.size() > max_reported)
    text += "and " + std::to_string(report.problems.size() - max_reported) + " more\n";
  text += "verified " + std::to_string(report.entries) + " values\n";
  write_all(out, text);
  ::_exit(report.ok() ? 0 : 3);
}

// What the child said on `fd` and how it ended; past `deadline` it is killed.
struct child_account {
  std::string said;
  int status = 0;
  bool timed_out = false;
};

child_account wait_for(pid_t child, int fd, std::chrono::steady_clock::time_point deadline) {
  child_account a;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      a.timed_out = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r < 0 && errno != EINTR)
      break; // cannot wait on the pipe: the child's status says how it ended
    if (r <= 0)
      continue;
    char buf[4096];
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; // the child is done (or gone)
    a.said.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (a.timed_out)
    ::kill(child, SIGKILL);
  while (::waitpid(child, &a.status, 0) < 0 && errno == EINTR) {
  }
  return a;
}

std::string signal_name(int sig) {
  const char* name = ::strsignal(sig);
  return "signal " + std::to_string(sig) + (name ? std::string{" ("} + name + ")" : "");
}

// troupe.lock's line once a data file left open was verified whole: it stays whole until a
// store opens it again (and writes its own line), so the next open need not verify it again.
constexpr const char* verified_line = "verified whole after an unclean end";

// Whether the line troupe.lock held says the data file must be verified before it is read.
bool needs_verify(const std::string& last_run) {
  return !last_run.empty() && last_run.rfind(verified_line, 0) != 0 &&
         last_run.find("durability sync") == std::string::npos;
}

// Verifies `dir`'s data file in a child process, the last run having left `last_run` in
// troupe.lock; the caller holds the dir's lock.
caf::error verify_left_open(const std::string& dir, const std::string& last_run) {
  struct stat st {};
  auto data = dir + "/data.mdb";
  if (::stat(data.c_str(), &st) != 0 || st.st_size == 0)
    return {}; // check_dir said whether that is damage
  std::string last = last_run.substr(0, last_run.find('\n'));
  log_event(log_level::info, "store",
            "the last run on " + dir + " (" + last +
              ") ended without closing the store: verifying its data file before reading it");
  auto started = std::chrono::steady_clock::now();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return make_error(errc::store_io, std::string{"store: cannot make a pipe to verify "} +
                                        dir + ": " + std::strerror(errno));
  pid_t child = ::fork();
  if (child < 0) {
    int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return make_error(errc::store_io,
                      "store: cannot fork to verify " + dir + ": " + std::strerror(e));
  }
  if (child == 0) {
    ::close(fds[0]);
    verify_in_child(dir, fds[1]);
  }
  ::close(fds[1]);
  // Noise can also send LMDB round a loop: the child gets a generous deadline, scaled by the
  // file's size (reading it cold at 20 MB/s).
  auto budget = std::chrono::seconds(120 + st.st_size / (20 << 20));
  auto [said, status, timed_out] = wait_for(child, fds[0], started + budget);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - started)
              .count();
  const std::string why = "the last run (" + last + ") ended without closing the store, as a " +
                          "crash or a power loss does, and ";
  if (timed_out)
    return damaged("store: " + why + "verifying " + data + " did not end within " +
                   std::to_string(budget.count()) + " s (LMDB went round in its pages)");
  if (WIFSIGNALED(status))
    return damaged("store: " + why + "verifying " + data + " crashed LMDB (" +
                   signal_name(WTERMSIG(status)) + "): it holds pages a power loss left unwritten");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    auto end = said.rfind("verified ");
    std::string problems = said.substr(0, end == std::string::npos ? said.size() : end);
    while (!problems.empty() && problems.back() == '\n')
      problems.pop_back();
    for (auto& c : problems)
      if (c == '\n')
        c = ';';
    return damaged("store: " + why + "verifying " + data + " found: " + problems);
  }
  log_event(log_level::info, "store",
            "verified " + data + " in " + std::to_string(ms) + " ms: it is whole (" +
              said.substr(0, said.find('\n')) + ")");
  return {};
}

} // namespace

caf::error store::verify_after_unclean_end() {
  return needs_verify(last_run_) ? verify_left_open(options_.dir, last_run_) : caf::error{};
}

caf::error store::verify_if_left_open(const std::string& dir) {
  auto path = dir + "/troupe.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return {}; // no store here yet, or one the open will report on
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_it{fd};
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0)
    return {}; // in use: the open says so
  char buf[512];
  auto n = ::pread(fd, buf, sizeof buf, 0);
  std::string last_run(buf, n > 0 ? static_cast<size_t>(n) : 0);
  if (!needs_verify(last_run))
    return {};
  if (auto err = verify_left_open(dir, last_run))
    return err;
  std::string line = std::string{verified_line} + " (" +
                     last_run.substr(0, last_run.find('\n')) + "), pid " +
                     std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size()) ||
      ::fdatasync(fd) != 0)
    return make_error(errc::store_io, "store: cannot write " + path + ": " + std::strerror(errno));
  return {};
}

caf::error store::note_open() {
  std::string line = std::string{"open, durability "} +
                     (options_.mode == durability::sync ? "sync" : "process") + ", pid " +
                     std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, line.data(), line.size(), 0) !=
                                         static_cast<ssize_t>(line.size()) ||
      ::fdatasync(lock_fd_) != 0)
    return make_error(errc::store_io, "store: cannot write " + options_.dir +
                                        "/troupe.lock: " + std::strerror(errno));
  noted_open_ = true;
  return {};
}

} // namespace troupe
