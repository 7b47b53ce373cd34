#include "base/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>

namespace troupe {

namespace {

log_level initial_level() {
  const char* env = std::getenv("TROUPE_LOG");
  if (!env)
    return log_level::info;
  if (!std::strcmp(env, "debug"))
    return log_level::debug;
  if (!std::strcmp(env, "warn"))
    return log_level::warn;
  if (!std::strcmp(env, "error"))
    return log_level::error;
  return log_level::info;
}

std::atomic<log_level> threshold{initial_level()};
std::mutex out_mutex;
log_observer observer; // guarded by out_mutex

const char* name(log_level l) {
  switch (l) {
    case log_level::debug: return "DEBUG";
    case log_level::info: return "INFO";
    case log_level::warn: return "WARN";
    case log_level::error: return "ERROR";
  }
  return "?";
}

} // namespace

void set_log_level(log_level level) {
  threshold = level;
}

void set_log_observer(log_observer f) {
  std::lock_guard<std::mutex> guard{out_mutex};
  observer = std::move(f);
}

void log_event(log_level level, std::string_view who, std::string_view what) {
  {
    std::lock_guard<std::mutex> guard{out_mutex};
    if (observer)
      observer(level, who, what);
  }
  if (level < threshold.load())
    return;
  using namespace std::chrono;
  auto now = system_clock::now();
  auto t = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line;
  line.reserve(64 + who.size() + what.size());
  line += stamp;
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ ", static_cast<int>(ms));
  line += frac;
  line += name(level);
  line += ' ';
  line += who;
  line += ": ";
  line += what;
  line += '\n';
  std::lock_guard<std::mutex> guard{out_mutex};
  std::fwrite(line.data(), 1, line.size(), stderr);
}

} // namespace troupe
