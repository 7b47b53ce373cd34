#include "schedule/cron.hpp"

#include <date/tz.h>

#include <array>
#include <cctype>
#include <vector>

namespace troupe {

namespace {

using namespace std::chrono;

constexpr int search_days = 8 * 366; // how far next_after and latest_in look

struct field_spec {
  const char* what;
  unsigned lo, hi;
  const char* const* names; // names[0] is the value lo (months: jan = 1); nullptr: none
};

const char* const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};
const char* const weekday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

const std::array<field_spec, 5> specs = {{{"minute", 0, 59, nullptr},
                                          {"hour", 0, 23, nullptr},
                                          {"day of month", 1, 31, nullptr},
                                          {"month", 1, 12, month_names},
                                          {"day of week", 0, 7, weekday_names}}};

std::string range_text(const field_spec& s) {
  std::string t = std::to_string(s.lo) + "-" + std::to_string(s.hi);
  if (s.names == month_names)
    t += " or jan-dec";
  if (s.names == weekday_names)
    t += " or sun-sat (0 and 7 are Sunday)";
  return t;
}

// One value of a field: a number or, where the field has them, a three-letter name.
unsigned parse_value(std::string_view text, size_t column, const field_spec& s) {
  if (text.empty())
    throw cron_error(column, std::string("a ") + s.what + " is missing (" + range_text(s) + ")");
  if (std::isdigit(static_cast<unsigned char>(text[0]))) {
    unsigned v = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(text[i])) || v > 1000)
        throw cron_error(column + i, std::string("expected a number, found '") +
                                       std::string(text) + "'");
      v = v * 10 + static_cast<unsigned>(text[i] - '0');
    }
    if (v < s.lo || v > s.hi)
      throw cron_error(column, std::string(s.what) + " " + std::to_string(v) +
                                 " is out of range (" + range_text(s) + ")");
    return v;
  }
  if (s.names != nullptr && text.size() == 3) {
    std::string lower;
    for (char c : text)
      lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t count = s.names == month_names ? 12 : 7;
    for (size_t i = 0; i < count; ++i)
      if (lower == s.names[i])
        return s.lo + static_cast<unsigned>(i);
  }
  throw cron_error(column, std::string("'") + std::string(text) + "' is not a " + s.what + " (" +
                             range_text(s) + ")");
}

// A whole field: `*` or a comma-separated list of N, A-B, */S, A-B/S, A/S. Bit v is value v.
uint64_t parse_field(std::string_view text, size_t column, const field_spec& s) {
  uint64_t bits = 0;
  size_t at = 0;
  while (true) {
    size_t comma = text.find(',', at);
    auto item = text.substr(at, comma == std::string_view::npos ? std::string_view::npos
                                                                 : comma - at);
    size_t col = column + at;
    if (item.empty())
      throw cron_error(col, std::string("an empty item in the ") + s.what + " field");
    unsigned step = 1;
    if (auto slash = item.find('/'); slash != std::string_view::npos) {
      auto step_text = item.substr(slash + 1);
      field_spec step_spec{"step", 1, s.hi - s.lo + 1, nullptr};
      step = parse_value(step_text, col + slash + 1, step_spec);
      item = item.substr(0, slash);
    }
    unsigned lo, hi;
    if (item == "*") {
      lo = s.lo;
      hi = s.hi;
    } else if (auto dash = item.find('-'); dash != std::string_view::npos) {
      lo = parse_value(item.substr(0, dash), col, s);
      hi = parse_value(item.substr(dash + 1), col + dash + 1, s);
      if (s.names == weekday_names && hi == 0 && lo > 0)
        hi = 7; // mon-sun: Sunday as the week's end
      if (hi < lo)
        throw cron_error(col, std::string("the ") + s.what + " range " + std::string(item) +
                                " runs backwards");
    } else {
      lo = parse_value(item, col, s);
      hi = step > 1 ? s.hi : lo; // 5/15: from 5 on, every 15th
    }
    for (unsigned v = lo; v <= hi; v += step)
      bits |= uint64_t{1} << v;
    if (comma == std::string_view::npos)
      return bits;
    at = comma + 1;
  }
}

std::string_view macro(std::string_view name) {
  if (name == "@hourly")
    return "0 * * * *";
  if (name == "@daily" || name == "@midnight")
    return "0 0 * * *";
  if (name == "@weekly")
    return "0 0 * * 0";
  if (name == "@monthly")
    return "0 0 1 * *";
  if (name == "@yearly" || name == "@annually")
    return "0 0 1 1 *";
  return {};
}

int64_t to_ms(date::sys_seconds at) {
  return static_cast<int64_t>(duration_cast<milliseconds>(at.time_since_epoch()).count());
}

// A local time's instant in the zone: a time the clocks skip is the moment they jump, a time
// that happens twice is its first.
date::sys_seconds instant(const date::time_zone* zone, date::local_seconds local) {
  auto info = zone->get_info(local);
  if (info.result == date::local_info::nonexistent)
    return info.second.begin;
  return date::sys_seconds{local.time_since_epoch() - info.first.offset};
}

date::year_month_day local_ymd(const date::time_zone* zone, int64_t t_ms) {
  auto local = zone->to_local(date::sys_seconds{duration_cast<seconds>(milliseconds{t_ms})});
  return date::year_month_day{date::floor<date::days>(local)};
}

} // namespace

cron_schedule cron_schedule::parse(std::string_view expression, const std::string& zone) {
  cron_schedule c;
  try {
    c.zone_ = date::locate_zone(zone);
  } catch (const std::runtime_error&) {
    throw cron_error(0, "'" + zone + "' is not a time zone of the system's tz database (an IANA "
                                     "name such as UTC, Europe/Paris or America/New_York)");
  }
  c.zone_name_ = zone;
  auto first = expression.find_first_not_of(" \t");
  if (first != std::string_view::npos && expression[first] == '@') {
    auto word = expression.substr(first, expression.find_last_not_of(" \t") + 1 - first);
    auto expanded = macro(word);
    if (expanded.empty())
      throw cron_error(first + 1, "'" + std::string(word) + "' is not one of @hourly, @daily, "
                                  "@midnight, @weekly, @monthly, @yearly, @annually");
    expression = expanded;
  }
  std::vector<std::pair<std::string_view, size_t>> fields; // text, 0-based column
  for (size_t at = 0; at < expression.size();) {
    at = expression.find_first_not_of(" \t", at);
    if (at == std::string_view::npos)
      break;
    auto end = expression.find_first_of(" \t", at);
    fields.emplace_back(expression.substr(at, end - at), at);
    at = end;
  }
  if (fields.size() != 5)
    throw cron_error(fields.size() > 5 ? fields[5].second + 1 : expression.size() + 1,
                     "a cron expression has 5 fields (minute hour day-of-month month "
                     "day-of-week), found " + std::to_string(fields.size()));
  uint64_t bits[5];
  for (size_t i = 0; i < 5; ++i)
    bits[i] = parse_field(fields[i].first, fields[i].second + 1, specs[i]);
  c.minutes_ = bits[0];
  c.hours_ = static_cast<uint32_t>(bits[1]);
  c.days_ = static_cast<uint32_t>(bits[2]);
  c.months_ = static_cast<uint16_t>(bits[3]);
  c.weekdays_ = static_cast<uint8_t>((bits[4] | (bits[4] >> 7)) & 0x7f); // 7 is Sunday too
  c.any_day_ = fields[2].first[0] == '*';
  c.any_weekday_ = fields[4].first[0] == '*';
  return c;
}

bool cron_schedule::day_matches(int year, unsigned month, unsigned day) const {
  if (!(months_ & (1u << month)))
    return false;
  auto ymd = date::year{year} / date::month{month} / date::day{day};
  if (!ymd.ok())
    return false;
  bool dom = days_ & (1u << day);
  bool dow = weekdays_ & (1u << date::weekday{ymd}.c_encoding());
  if (any_day_ || any_weekday_)
    return dom && dow; // one of them is `*`, which matches every day
  return dom || dow;
}

template <class F>
void cron_schedule::each_on_day(int year, unsigned month, unsigned day, F&& f) const {
  auto midnight = date::local_days{date::year{year} / date::month{month} / date::day{day}};
  for (unsigned h = 0; h < 24; ++h) {
    if (!(hours_ & (1u << h)))
      continue;
    for (unsigned m = 0; m < 60; ++m) {
      if (!(minutes_ & (uint64_t{1} << m)))
        continue;
      if (!f(to_ms(instant(zone_, date::local_seconds{midnight} + hours{h} + minutes{m}))))
        return;
    }
  }
}

std::optional<int64_t> cron_schedule::next_after(int64_t t_ms) const {
  auto d = date::local_days{local_ymd(zone_, t_ms)};
  for (int i = 0; i < search_days; ++i, d += date::days{1}) {
    date::year_month_day ymd{d};
    if (!day_matches(int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day())))
      continue;
    std::optional<int64_t> found;
    each_on_day(int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()), [&](int64_t at) {
      if (at > t_ms)
        found = at;
      return !found;
    });
    if (found)
      return found;
  }
  return std::nullopt;
}

std::optional<int64_t> cron_schedule::latest_in(int64_t after_ms, int64_t until_ms) const {
  if (until_ms <= after_ms)
    return std::nullopt;
  auto d = date::local_days{local_ymd(zone_, until_ms)};
  auto first = date::local_days{local_ymd(zone_, after_ms)};
  for (int i = 0; i < search_days && d >= first; ++i, d -= date::days{1}) {
    date::year_month_day ymd{d};
    if (!day_matches(int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day())))
      continue;
    std::optional<int64_t> found;
    each_on_day(int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()), [&](int64_t at) {
      if (at > until_ms)
        return false;
      if (at > after_ms)
        found = at;
      return true;
    });
    if (found)
      return found;
  }
  return std::nullopt;
}

std::optional<int64_t> cron_schedule::parse_local_time(const std::string& text) const {
  // YYYY-MM-DD, then optionally THH:MM and :SS: the digits where the pattern has 9s.
  const std::string pattern = "9999-99-99T99:99:99";
  if (text.size() != 10 && text.size() != 16 && text.size() != 19)
    return std::nullopt;
  for (size_t i = 0; i < text.size(); ++i)
    if (pattern[i] == '9' ? !std::isdigit(static_cast<unsigned char>(text[i]))
                          : text[i] != pattern[i])
      return std::nullopt;
  auto number = [&](size_t at, size_t n) { return std::stoi(text.substr(at, n)); };
  auto ymd = date::year{number(0, 4)} / date::month(unsigned(number(5, 2))) /
             date::day(unsigned(number(8, 2)));
  int h = text.size() > 10 ? number(11, 2) : 0, m = text.size() > 10 ? number(14, 2) : 0;
  int sec = text.size() > 16 ? number(17, 2) : 0;
  if (!ymd.ok() || h > 23 || m > 59 || sec > 59)
    return std::nullopt;
  return to_ms(instant(zone_, date::local_days{ymd} + hours{h} + minutes{m} + seconds{sec}));
}

std::string cron_schedule::local_time_text(int64_t t_ms) const {
  auto at = date::floor<seconds>(date::sys_time<milliseconds>{milliseconds{t_ms}});
  auto text = date::format("%FT%T%z", date::make_zoned(zone_, at)); // +0100
  text.insert(text.size() - 2, ":");                                  // +01:00
  return text;
}

std::string cron_schedule::local_date(int64_t t_ms, int days_offset) const {
  auto d = date::local_days{local_ymd(zone_, t_ms)} + date::days{days_offset};
  return date::format("%F", d);
}

std::string cron_schedule::run_id(int64_t t_ms) const {
  auto at = date::floor<seconds>(date::sys_time<milliseconds>{milliseconds{t_ms}});
  return date::format("%Y%m%dT%H%M%z", date::make_zoned(zone_, at));
}

} // namespace troupe
