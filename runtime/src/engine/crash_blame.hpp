// Who was running stage code when the process died of a fatal signal (SIGSEGV, SIGABRT, SIGBUS,
// SIGFPE, SIGILL). A worker's crash marker counts a death against the records it was working on;
// when another stage's code killed the process, this worker was a bystander and its records are
// not to blame. The handler leaves a file `crashed-<stage>-<worker>` in the data dir naming the
// worker whose code the crashing thread was running; the next start reads and removes them.
// A death without such a file (SIGKILL, the OOM killer, a power cut) blames every worker that
// was inside a step.
#pragma once

#include <optional>
#include <set>
#include <string>

namespace troupe::detail {

// Installs the handlers (once per process; later calls do nothing). Each runs once, then the
// signal's default action follows (the process still dies of it, with a core if enabled).
void install_crash_handlers();

// Marks this thread as running the code of the worker whose blame file is `path`, for the scope.
class blame_scope {
public:
  explicit blame_scope(const std::string& path);
  ~blame_scope();
  blame_scope(const blame_scope&) = delete;
  blame_scope& operator=(const blame_scope&) = delete;

private:
  const char* previous_;
};

// The blame file of a worker.
std::string blame_file(const std::string& data_dir, const std::string& stage, unsigned worker);

// Reads and removes the blame files of the last run: the workers ("<stage>/<worker>") that were
// running stage code on a crashing thread, or nullopt when the last run left none.
std::optional<std::set<std::string>> collect_blame(const std::string& data_dir);

} // namespace troupe::detail
