// `troupe reset` (see troupe_reset.hpp).
//
// Only the files the store creates are deleted from the data dir, never the folder's other
// contents: a data_dir pointed at a folder of other things (".", say) loses nothing else.
#include "troupe_reset.hpp"

#include "store/store.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <string>
#include <sys/file.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace troupe::cli {

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 64;

std::string size_text(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  if (ec)
    return "";
  if (n >= (uint64_t{1} << 30))
    return " (" + std::to_string(n >> 30) + " GiB)";
  if (n >= (uint64_t{1} << 20))
    return " (" + std::to_string(n >> 20) + " MiB)";
  if (n >= 1024)
    return " (" + std::to_string(n >> 10) + " KiB)";
  return " (" + std::to_string(n) + " bytes)";
}

bool confirmed() {
  std::cout << "Delete them? [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer))
    return false;
  return answer == "y" || answer == "Y" || answer == "yes";
}

} // namespace

int reset_app(const app_config& app, bool yes) {
  std::error_code ec;
  fs::path dir(app.data_dir);
  std::vector<fs::path> doomed;
  // A scheduled app's runs each wrote files of their own (paths from their TROUPE_RUN_*): what
  // goes is the runs' stores and the schedule's record; the runs' outputs stay.
  bool scheduled = app.schedule.has_value();
  auto lock_name = scheduled ? "schedule.lock" : "troupe.lock";
  if (!scheduled)
    for (const auto& s : app.stages)
      for (const auto& p : s.owned_paths)
        if (fs::is_regular_file(p, ec))
          doomed.emplace_back(p);
  bool have_dir = fs::is_directory(dir, ec);
  if (have_dir && scheduled) {
    for (const auto& run : fs::directory_iterator(dir / "runs", ec))
      doomed.push_back(run.path());
    for (const char* name : {"schedule.json", "schedule.json.new"})
      if (fs::exists(dir / name, ec))
        doomed.push_back(dir / name);
  }
  if (have_dir)
    for (const auto& name : data_dir_files(app.data_dir)) // troupe.lock last: it is held
      doomed.push_back(dir / name);
  if (doomed.empty()) {
    std::cout << "troupe reset: nothing to delete for app " << app.name << " (no store in "
              << app.data_dir << ", no output files)\n";
    return exit_ok;
  }

  // The lock a running node holds (store::lock_dir); held from here until everything is gone.
  int lock_fd = -1;
  if (have_dir) {
    auto lock = (dir / lock_name).string();
    lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) {
      std::cerr << "troupe reset: cannot open " << lock << ": " << std::strerror(errno) << "\n";
      return exit_failed;
    }
    if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      std::cerr << "troupe reset: " << (scheduled ? "a scheduler runs" : "a node has")
                << " the data dir " << app.data_dir << (scheduled ? "" : " open") << " (it holds "
                << lock_name << "); stop it first. Nothing was deleted.\n";
      ::close(lock_fd);
      return exit_failed;
    }
    if (std::find(doomed.begin(), doomed.end(), dir / lock_name) == doomed.end())
      doomed.push_back(dir / lock_name); // created just now
  }

  std::cout << "troupe reset will delete, for app " << app.name << ":\n";
  for (const auto& p : doomed)
    std::cout << "  " << p.string() << (fs::is_directory(p, ec) ? "/ (a run's store)" : size_text(p))
              << "\n";
  if (scheduled)
    std::cout << "  (not the files the runs wrote: each run's paths came from its TROUPE_RUN_*)\n";
  if (have_dir)
    std::cout << "  and " << app.data_dir << " itself if that leaves it empty\n";
  bool go = yes;
  if (!go && ::isatty(STDIN_FILENO))
    go = confirmed();
  else if (!go) {
    std::cerr << "troupe reset: not on a terminal, so not asking: add --yes to delete these\n";
    if (lock_fd >= 0)
      ::close(lock_fd);
    return exit_usage;
  }
  if (!go) {
    std::cout << "Nothing was deleted.\n";
    if (lock_fd >= 0)
      ::close(lock_fd);
    return exit_failed;
  }

  int failures = 0;
  for (const auto& p : doomed)
    if (fs::remove_all(p, ec); ec) {
      std::cerr << "troupe reset: cannot delete " << p.string() << ": " << ec.message() << "\n";
      ++failures;
    }
  if (lock_fd >= 0)
    ::close(lock_fd);
  if (scheduled)
    fs::remove(dir / "runs", ec); // when empty
  bool dir_gone = have_dir && fs::is_empty(dir, ec) && fs::remove(dir, ec);
  std::cout << "Deleted " << (doomed.size() - size_t(failures)) << " of " << doomed.size()
            << " files" << (dir_gone ? " and the empty data dir" : "") << ".\n";
  return failures == 0 ? exit_ok : exit_failed;
}

} // namespace troupe::cli
