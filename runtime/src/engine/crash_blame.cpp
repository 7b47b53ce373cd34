#include "engine/crash_blame.hpp"

#include <csignal>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

namespace fs = std::filesystem;

namespace troupe::detail {

namespace {

// The blame file of the worker whose code this thread runs, or null. Read by the signal handler:
// a plain pointer to a string that outlives the scope that set it.
thread_local const char* running_code_of = nullptr;

constexpr const char* prefix = "crashed-";

void on_fatal_signal(int sig) {
  // Only async-signal-safe calls here: open, close, raise.
  if (const char* path = running_code_of) {
    int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
      ::close(fd);
  }
  ::raise(sig); // SA_RESETHAND restored the default action: die of the signal
}

} // namespace

void install_crash_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL})
      ::sigaction(sig, &sa, nullptr);
  });
}

blame_scope::blame_scope(const std::string& path) : previous_(running_code_of) {
  running_code_of = path.c_str();
}

blame_scope::~blame_scope() { running_code_of = previous_; }

std::string blame_file(const std::string& data_dir, const std::string& stage, unsigned worker) {
  return data_dir + "/" + prefix + stage + "-" + std::to_string(worker);
}

std::optional<std::set<std::string>> collect_blame(const std::string& data_dir) {
  std::error_code ec;
  std::set<std::string> blamed;
  bool any = false;
  for (const auto& entry : fs::directory_iterator(data_dir, ec)) {
    auto name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0)
      continue;
    any = true;
    auto who = name.substr(std::string{prefix}.size());
    auto dash = who.rfind('-');
    if (dash != std::string::npos)
      blamed.insert(who.substr(0, dash) + "/" + who.substr(dash + 1));
    fs::remove(entry.path(), ec);
  }
  if (!any)
    return std::nullopt;
  return blamed;
}

} // namespace troupe::detail
