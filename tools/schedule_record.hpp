// <data_dir>/schedule.json: what the scheduler of a `schedule:` app (troupe_schedule.cpp) knows,
// replaced whole and atomically (written aside, fsynced, renamed, the folder fsynced):
//
//   {"since": ms,                       the first start: runs due before it were never missed
//    "last_due": ms | null,             the latest run that ended (done, failed or skipped)
//    "running": {"id", "due", "attempts", "pid"} | null,
//                                       the run under way, from before its process starts
//                                       until it has ended
//    "runs": [{"id", "due", "status", "ended", "why"}, ...]}
//                                       the last runs that ended, oldest first
//
// A scheduler killed at any moment finds the run under way at its next start and resumes it
// (the run's own store makes that exact); last_due moves past a run only once it has ended, so
// no run is started twice. troupectl --data shows the file.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace troupe::cli {

struct running_run {
  std::string id;
  int64_t due = 0;
  int attempts = 0;
  int pid = 0;
};

struct schedule_state {
  int64_t since = 0;
  std::optional<int64_t> last_due;
  std::optional<running_run> running;
  nlohmann::json runs = nlohmann::json::array();
};

// nullopt with `error` empty: no file (a first start); with `error` set: a file that is not a
// schedule's record (nothing runs until it is fixed or removed).
std::optional<schedule_state> load_state(const std::filesystem::path& path, std::string& error);
bool save_state(const std::filesystem::path& path, const schedule_state& st, std::string& error);

} // namespace troupe::cli
