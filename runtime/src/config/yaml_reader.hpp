// Reading YAML nodes of an app file, reporting what is wrong with them: every problem becomes a
// config_issue at the node's line and column, and reading goes on.
#pragma once

#include "config/app_config.hpp"
#include "config/config_values.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace troupe::detail {

// 1-based, as config_issue counts; 0 for a null mark.
int line_of(const YAML::Mark& m);
int column_of(const YAML::Mark& m);
YAML::Mark mark_of(const YAML::Node& n); // null for an undefined node

std::string describe(const YAML::Node& n); // "'text'", "a map", "an empty list", "nothing", ...
std::string index(const std::string& field, size_t i); // "stages" -> "stages[2]"

class reporter {
public:
  explicit reporter(std::string file) : file_(std::move(file)) {}

  void at(const YAML::Mark& m, std::string field, std::string message,
          issue_severity severity = issue_severity::error) {
    issues_.push_back({file_, line_of(m), column_of(m), std::move(field), std::move(message),
                       severity});
  }
  void at(const YAML::Node& n, std::string field, std::string message) {
    at(mark_of(n), std::move(field), std::move(message));
  }
  void warn(const YAML::Mark& m, std::string field, std::string message) {
    at(m, std::move(field), std::move(message), issue_severity::warning);
  }
  void expected(const YAML::Node& n, const std::string& field, const std::string& what) {
    at(n, field, "expected " + what + ", found " + describe(n));
  }
  void add(config_issue issue) { issues_.push_back(std::move(issue)); }

  // From now on, an issue about `field` or anything inside it is the override's: take() names
  // the override (`text`, "stages.price.workers=4") instead of a position in the file.
  void blame_override(std::string field, std::string text) {
    overrides_.push_back({std::move(field), std::move(text)});
  }
  // `field` has an issue already that makes any later one about it a repetition (a value whose
  // ${NAME} failed): take() keeps the first issue about it only.
  void settled(std::string field) { settled_.push_back(std::move(field)); }
  // The override that set `field` (or a field around it), as "--set <it>"; empty when none.
  std::string override_of(const std::string& field) const;
  // An issue of the override itself (a path that leads nowhere).
  void at_override(const std::string& text, std::string field, std::string message) {
    issues_.push_back({"--set " + text, 0, 0, std::move(field), std::move(message),
                       issue_severity::error, true});
  }

  const std::string& file() const { return file_; }
  size_t count() const { return issues_.size(); }
  size_t errors() const;
  // Every issue, overrides' first, then by position in the file.
  std::vector<config_issue> take();

private:
  struct blamed {
    std::string field, text;
  };
  std::string file_;
  std::vector<config_issue> issues_;
  std::vector<blamed> overrides_;
  std::vector<std::string> settled_;
};

// True when `n` is a map to read; null counts as an empty map (nothing to read).
bool open_map(reporter& r, const YAML::Node& n, const std::string& field);

// Reports keys given twice and, unless `allowed` is empty, keys not in `allowed`.
void check_keys(reporter& r, const YAML::Node& map, const std::string& field,
                const std::vector<std::string>& allowed);

// Each reports an issue and returns nullopt when `n` is not what it reads.
std::optional<uint64_t> read_uint(reporter& r, const YAML::Node& n, const std::string& field,
                                  uint64_t min, uint64_t max);
std::optional<uint32_t> read_u32(reporter& r, const YAML::Node& n, const std::string& field,
                                 uint32_t min, uint32_t max = std::numeric_limits<uint32_t>::max());
std::optional<std::chrono::milliseconds> read_duration(reporter& r, const YAML::Node& n,
                                                       const std::string& field, bool positive);
std::optional<double> read_fraction(reporter& r, const YAML::Node& n, const std::string& field);
std::optional<std::string> read_string(reporter& r, const YAML::Node& n, const std::string& field,
                                       const char* what = "a string");
std::optional<std::string> read_name(reporter& r, const YAML::Node& n, const std::string& field,
                                     const char* what);

template <class T>
std::optional<T> read_enum(reporter& r, const YAML::Node& n, const std::string& field,
                           const std::vector<std::pair<std::string, T>>& choices) {
  std::vector<std::string> names;
  for (const auto& [name, v] : choices) {
    if (n.IsScalar() && n.Scalar() == name)
      return v;
    names.push_back(name);
  }
  auto hint = n.IsScalar() ? suggest(n.Scalar(), names) : "";
  r.at(n, field, "expected one of " + join(names, " | ") + ", found " + describe(n) + hint);
  return std::nullopt;
}

} // namespace troupe::detail
