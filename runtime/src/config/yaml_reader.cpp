// Reading YAML nodes, reporting what is wrong with them (see yaml_reader.hpp).
#include "config/yaml_reader.hpp"

#include <set>

namespace troupe::detail {

namespace {

std::string dot(const std::string& field, const std::string& key) {
  return field.empty() ? key : field + "." + key;
}

std::string range_text(uint64_t min, uint64_t max) {
  if (max == std::numeric_limits<uint64_t>::max())
    return min == 0 ? "a non-negative integer" : "an integer >= " + std::to_string(min);
  return "an integer from " + std::to_string(min) + " to " + std::to_string(max);
}

} // namespace

int line_of(const YAML::Mark& m) {
  return m.is_null() ? 0 : m.line + 1;
}
int column_of(const YAML::Mark& m) {
  return m.is_null() ? 0 : m.column + 1;
}

YAML::Mark mark_of(const YAML::Node& n) {
  return n.IsDefined() ? n.Mark() : YAML::Mark::null_mark();
}

std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull())
    return "nothing";
  if (n.IsScalar())
    return "'" + n.Scalar() + "'";
  if (n.IsMap())
    return n.size() == 0 ? "an empty map" : "a map";
  if (n.IsSequence())
    return n.size() == 0 ? "an empty list" : "a list";
  return "something else";
}

std::string index(const std::string& field, size_t i) {
  return field + "[" + std::to_string(i) + "]";
}

size_t reporter::errors() const {
  return size_t(std::count_if(issues_.begin(), issues_.end(), [](const config_issue& i) {
    return i.severity == issue_severity::error;
  }));
}

namespace {

bool inside(const std::string& field, const std::string& of) {
  return field.compare(0, of.size(), of) == 0 &&
         (field.size() == of.size() || field[of.size()] == '.' || field[of.size()] == '[');
}

} // namespace

std::string reporter::override_of(const std::string& field) const {
  for (auto o = overrides_.rbegin(); o != overrides_.rend(); ++o)
    if (inside(field, o->field))
      return "--set " + o->text;
  return "";
}

std::vector<config_issue> reporter::take() {
  for (const auto& field : settled_) {
    auto first = std::find_if(issues_.begin(), issues_.end(),
                              [&](const config_issue& i) { return i.field == field; });
    if (first != issues_.end())
      issues_.erase(std::remove_if(std::next(first), issues_.end(),
                                   [&](const config_issue& i) { return i.field == field; }),
                    issues_.end());
  }
  for (auto& issue : issues_) {
    if (issue.from_override)
      continue;
    // The last override that reaches the field is the one that set its value.
    for (auto o = overrides_.rbegin(); o != overrides_.rend(); ++o)
      if (inside(issue.field, o->field)) {
        issue.file = "--set " + o->text;
        issue.line = issue.column = 0;
        issue.from_override = true;
        break;
      }
  }
  std::stable_sort(issues_.begin(), issues_.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.line, a.column) < std::make_pair(b.line, b.column);
  });
  return std::move(issues_);
}

bool open_map(reporter& r, const YAML::Node& n, const std::string& field) {
  if (!n.IsDefined() || n.IsNull())
    return false;
  if (!n.IsMap()) {
    r.expected(n, field, "a map");
    return false;
  }
  return true;
}

void check_keys(reporter& r, const YAML::Node& map, const std::string& field,
                const std::vector<std::string>& allowed) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    YAML::Node key = entry.first;
    if (!key.IsScalar()) {
      r.expected(key, field, "a plain key");
      continue;
    }
    const auto& name = key.Scalar();
    if (!seen.insert(name).second)
      r.at(key, dot(field, name), "key '" + name + "' is given twice");
    else if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end())
      r.at(key, dot(field, name),
           "unknown key '" + name + "'" + suggest(name, allowed) + "; expected one of " +
               join(allowed));
  }
}

std::optional<uint64_t> read_uint(reporter& r, const YAML::Node& n, const std::string& field,
                                  uint64_t min, uint64_t max) {
  std::optional<uint64_t> v = n.IsScalar() ? parse_uint(trim(n.Scalar())) : std::nullopt;
  if (!v || *v < min || *v > max) {
    r.expected(n, field, range_text(min, max));
    return std::nullopt;
  }
  return v;
}

std::optional<uint32_t> read_u32(reporter& r, const YAML::Node& n, const std::string& field,
                                 uint32_t min, uint32_t max) {
  auto v = read_uint(r, n, field, min, max);
  return v ? std::optional<uint32_t>(uint32_t(*v)) : std::nullopt;
}

std::optional<std::chrono::milliseconds> read_duration(reporter& r, const YAML::Node& n,
                                                       const std::string& field, bool positive) {
  auto v = n.IsScalar() ? parse_duration(n.Scalar()) : std::nullopt;
  if (!v || (positive && v->count() == 0)) {
    r.expected(n, field,
               std::string("a duration") + (positive ? " > 0" : "") +
                   " such as 250ms, 2s, 5m, 1h or 1h30m");
    return std::nullopt;
  }
  return v;
}

std::optional<double> read_fraction(reporter& r, const YAML::Node& n, const std::string& field) {
  auto v = n.IsScalar() ? parse_double(trim(n.Scalar())) : std::nullopt;
  if (!v || *v < 0 || *v > 1) {
    r.expected(n, field, "a number from 0 to 1");
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> read_string(reporter& r, const YAML::Node& n, const std::string& field,
                                       const char* what) {
  if (!n.IsScalar() || n.Scalar().empty()) {
    r.expected(n, field, what);
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::string> read_name(reporter& r, const YAML::Node& n, const std::string& field,
                                     const char* what) {
  if (!n.IsScalar() || !valid_name(n.Scalar())) {
    r.expected(n, field, std::string(what) + " made of letters, digits, '_', '.' and '-'");
    return std::nullopt;
  }
  return n.Scalar();
}

} // namespace troupe::detail
