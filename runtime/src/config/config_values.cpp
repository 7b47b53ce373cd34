// Scalars of an app file: the text of sizes, durations, numbers, booleans and names, and the
// wording helpers the loader's messages share (lists, "did you mean", absolute paths).
#include "config/config_values.hpp"

#include "config/app_config.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace fs = std::filesystem;

namespace troupe {

namespace detail {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

} // namespace

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos)
    return {};
  auto e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

std::optional<uint64_t> parse_uint(std::string_view s) {
  if (!all_digits(s))
    return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    uint64_t d = uint64_t(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10)
      return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<double> parse_double(const std::string& s) {
  if (s.empty())
    return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "true" || s == "yes" || s == "on")
    return true;
  if (s == "false" || s == "no" || s == "off")
    return false;
  return std::nullopt;
}

bool valid_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : sep) + item;
  return out;
}

std::string suggest(std::string_view word, const std::vector<std::string>& choices) {
  const std::string* best = nullptr;
  size_t best_distance = 3; // beyond two edits it is a different word
  for (const auto& choice : choices) {
    size_t d = edit_distance(word, choice);
    if (d < best_distance && d < std::max<size_t>(word.size(), 2)) {
      best = &choice;
      best_distance = d;
    }
  }
  return best ? " (did you mean '" + *best + "'?)" : "";
}

std::string absolute_path(const fs::path& p) {
  auto out = fs::absolute(p.empty() ? fs::path(".") : p).lexically_normal();
  if (!out.has_filename() && out.has_parent_path() && out != out.root_path())
    out = out.parent_path(); // "a/b/" -> "a/b"
  return out.string();
}

std::optional<host_port> parse_host_port(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return std::nullopt;
  host_port a;
  a.host = std::string{text.substr(0, colon)};
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2); // [::1]:9090
  auto port = parse_uint(text.substr(colon + 1));
  if (a.host.empty() || !port || *port > 65535)
    return std::nullopt;
  a.port = static_cast<uint16_t>(*port);
  return a;
}

} // namespace detail

// Sizes: an integer, optionally followed by a binary unit (K = KiB = 1024, M, G, T).
std::optional<uint64_t> parse_size(const std::string& text) {
  auto s = detail::trim(text);
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9')
    ++digits;
  auto number = detail::parse_uint(std::string_view(s).substr(0, digits));
  if (!number)
    return std::nullopt;
  auto unit = detail::trim(std::string_view(s).substr(digits));
  static const std::vector<std::pair<std::string, int>> units = {
      {"", 0},     {"B", 0},  {"K", 10},   {"KiB", 10}, {"M", 20},
      {"MiB", 20}, {"G", 30}, {"GiB", 30}, {"T", 40},   {"TiB", 40}};
  for (const auto& [name, shift] : units) {
    if (unit != name)
      continue;
    if (*number > (std::numeric_limits<uint64_t>::max() >> shift))
      return std::nullopt;
    return *number << shift;
  }
  return std::nullopt;
}

// Durations: "0", or one or more <integer><unit> parts (ms, s, m, h, d), e.g. "1h30m".
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  auto s = detail::trim(text);
  if (s == "0")
    return std::chrono::milliseconds(0);
  if (s.empty())
    return std::nullopt;
  static const std::vector<std::pair<std::string, uint64_t>> units = {
      {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  uint64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9')
      ++i;
    auto number = detail::parse_uint(std::string_view(s).substr(start, i - start));
    start = i;
    while (i < s.size() && ((s[i] >= 'a' && s[i] <= 'z')))
      ++i;
    auto unit = s.substr(start, i - start);
    auto u =
        std::find_if(units.begin(), units.end(), [&](const auto& e) { return e.first == unit; });
    if (!number || u == units.end())
      return std::nullopt;
    constexpr uint64_t limit = uint64_t(std::numeric_limits<int64_t>::max());
    if (*number > limit / u->second || total > limit - *number * u->second)
      return std::nullopt;
    total += *number * u->second;
  }
  return std::chrono::milliseconds(int64_t(total));
}

} // namespace troupe
