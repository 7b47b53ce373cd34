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
  return env ? parse_log_level(env).value_or(log_level::info) : log_level::info;
}

log_format initial_format() {
  const char* env = std::getenv("TROUPE_LOG_FORMAT");
  return env ? parse_log_format(env).value_or(log_format::text) : log_format::text;
}

std::atomic<log_level> threshold{initial_level()};
std::atomic<log_format> format{initial_format()};
std::mutex out_mutex;
log_observer observer; // guarded by out_mutex
std::string node_name;  // set before any thread logs

const char* name(log_level l) {
  switch (l) {
    case log_level::debug: return "DEBUG";
    case log_level::info: return "INFO";
    case log_level::warn: return "WARN";
    case log_level::error: return "ERROR";
  }
  return "?";
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    } else {
      out += static_cast<char>(c); // UTF-8 as it is (the log's texts are the runtime's own)
    }
  }
  out += '"';
}

const char* lower(log_level l) {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
  }
  return "?";
}

} // namespace

std::optional<log_level> parse_log_level(std::string_view s) {
  for (auto l : {log_level::debug, log_level::info, log_level::warn, log_level::error})
    if (s == lower(l))
      return l;
  return std::nullopt;
}

std::optional<log_format> parse_log_format(std::string_view s) {
  if (s == "text")
    return log_format::text;
  if (s == "json")
    return log_format::json;
  return std::nullopt;
}

void set_log_level(log_level level) {
  threshold = level;
}

void set_log_format(log_format f) {
  format = f;
}

void set_log_node(std::string_view node) {
  std::lock_guard<std::mutex> guard{out_mutex};
  node_name = std::string{node};
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
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms));
  if (format.load() == log_format::json) {
    line += "{\"time\":\"";
    line += stamp;
    line += frac;
    line += "\",\"level\":\"";
    line += lower(level);
    line += "\",";
    if (!node_name.empty()) {
      line += "\"node\":";
      json_string(line, node_name);
      line += ",";
    }
    line += "\"who\":";
    json_string(line, who);
    if (who.rfind("stage ", 0) == 0) {
      auto name = who.substr(6);
      auto slash = name.rfind('/');
      line += ",\"stage\":";
      json_string(line, slash == std::string_view::npos ? name : name.substr(0, slash));
      if (slash != std::string_view::npos && slash + 1 < name.size() &&
          name.find_first_not_of("0123456789", slash + 1) == std::string_view::npos) {
        line += ",\"worker\":";
        line += name.substr(slash + 1);
      }
    }
    line += ",\"msg\":";
    json_string(line, what);
    line += "}\n";
    std::lock_guard<std::mutex> guard{out_mutex};
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  line += stamp;
  line += frac;
  line += ' ';
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
