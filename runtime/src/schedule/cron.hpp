// Cron expressions: when a scheduled app's runs are due (`schedule:` in the app's YAML).
//
// Five fields, as in Vixie cron: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or
// jan-dec), day of week (0-7 or sun-sat; 0 and 7 are Sunday). Each field is `*` or a list of
// `N`, `A-B`, `*/S` or `A-B/S`; `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly` and
// `@yearly` (`@annually`) stand for the usual five. When both the day of month and the day of
// week are restricted, a day matches either (Vixie's rule: `0 0 1 * mon` is the 1st and Mondays).
//
// Times are read in an IANA time zone (the system's tz database). Across daylight saving:
// a local time the clocks skip (02:30 on the night they go forward) falls due at the moment
// they jump (03:00 local); a local time that happens twice (the night they go back) falls due
// once, the first time.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace date {
class time_zone;
}

namespace troupe {

// A bad expression or zone: `column` (1-based, in the expression; 0 for the zone) and why.
struct cron_error : std::runtime_error {
  cron_error(size_t column, const std::string& why) : std::runtime_error(why), column(column) {}
  size_t column;
};

class cron_schedule {
public:
  // Throws cron_error.
  static cron_schedule parse(std::string_view expression, const std::string& zone);

  // The first due time strictly after `t_ms` (ms since the epoch); nullopt when none comes
  // within 8 years (`0 0 31 2 *`: February has no 31st).
  std::optional<int64_t> next_after(int64_t t_ms) const;
  // The latest due time in (after_ms, until_ms]; nullopt when none.
  std::optional<int64_t> latest_in(int64_t after_ms, int64_t until_ms) const;

  // "2026-12-01" (midnight) or "2026-12-01T06:30" (seconds optional), local in the zone, as ms
  // since the epoch (a skipped local time: when the clocks jump); nullopt when not such a text.
  std::optional<int64_t> parse_local_time(const std::string& text) const;

  // `t_ms` in the zone: "2026-12-03T02:30:00+01:00"; its date "2026-12-03"; the date before.
  std::string local_time_text(int64_t t_ms) const;
  std::string local_date(int64_t t_ms, int days_offset = 0) const;
  // A name for the run due at `t_ms`, usable as a folder name: "20261203T0230+0100".
  std::string run_id(int64_t t_ms) const;

  const std::string& zone_name() const { return zone_name_; }

private:
  bool day_matches(int year, unsigned month, unsigned day) const;
  // Due times on one local day, as instants, earliest first, calling f(instant) until it
  // returns false.
  template <class F>
  void each_on_day(int year, unsigned month, unsigned day, F&& f) const;

  uint64_t minutes_ = 0;  // bit m: minute m
  uint32_t hours_ = 0;    // bit h
  uint32_t days_ = 0;     // bit d (1-31)
  uint16_t months_ = 0;   // bit m (1-12)
  uint8_t weekdays_ = 0;  // bit w (0 Sunday - 6)
  bool any_day_ = true;   // the day-of-month field was `*`
  bool any_weekday_ = true;
  const date::time_zone* zone_ = nullptr;
  std::string zone_name_;
};

} // namespace troupe
