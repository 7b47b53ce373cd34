// Cron expressions (schedule/cron.hpp): parsing with the column of a mistake, due times in UTC
// and across daylight saving in Europe/Paris, Vixie's day-of-month-or-day-of-week rule, the
// latest run missed in a range. Expected instants are written out by hand, in UTC.
#include "schedule/cron.hpp"

#include <catch2/catch.hpp>

using troupe::cron_error;
using troupe::cron_schedule;

namespace {

// "2026-12-04T20:00" (UTC) as ms since the epoch.
int64_t utc(const std::string& text) {
  static const auto clock = cron_schedule::parse("* * * * *", "UTC");
  auto t = clock.parse_local_time(text);
  REQUIRE(t);
  return *t;
}

std::string utc_text(int64_t t) {
  static const auto clock = cron_schedule::parse("* * * * *", "UTC");
  return clock.local_time_text(t);
}

// The next `n` due times after `from`, in UTC text.
std::vector<std::string> next(const cron_schedule& c, const std::string& from, int n) {
  std::vector<std::string> out;
  auto t = utc(from);
  for (int i = 0; i < n; ++i) {
    auto due = c.next_after(t);
    REQUIRE(due);
    out.push_back(utc_text(*due));
    t = *due;
  }
  return out;
}

size_t error_column(const std::string& expression) {
  try {
    cron_schedule::parse(expression, "UTC");
  } catch (const cron_error& e) {
    return e.column;
  }
  FAIL("'" << expression << "' parsed");
  return 0;
}

std::string error_text(const std::string& expression, const std::string& zone = "UTC") {
  try {
    cron_schedule::parse(expression, zone);
  } catch (const cron_error& e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("a cron expression's mistakes are named with their column", "[schedule]") {
  CHECK(error_column("30 25 * * *") == 4);
  CHECK(error_text("30 25 * * *") == "hour 25 is out of range (0-23)");
  CHECK(error_column("0 0 1-x * *") == 7);
  CHECK(error_column("5 4 * * sun,mon,xyz") == 17);
  CHECK(error_column("*/0 * * * *") == 3);
  CHECK(error_column("0 0 5-1 * *") == 5);
  CHECK(error_column("0 0 1,,2 * *") == 7);
  CHECK(error_text("30 2 * *").find("5 fields") != std::string::npos);
  CHECK(error_column("0 0 * * * *") == 11);
  CHECK(error_text("@nightly").find("@daily") != std::string::npos);
  CHECK(error_text("-1 * * * *") == "a minute is missing (0-59)");
  CHECK(error_text("* * * * *", "Mars/Olympus").find("not a time zone") != std::string::npos);
  CHECK(error_text("0 0 * * 0-7").empty());
}

TEST_CASE("due times in UTC: lists, ranges, steps, names, macros", "[schedule]") {
  auto nightly = cron_schedule::parse("30 2 * * *", "UTC");
  CHECK(next(nightly, "2026-12-04T20:00", 2) ==
        std::vector<std::string>{"2026-12-05T02:30:00+00:00", "2026-12-06T02:30:00+00:00"});
  CHECK(next(nightly, "2026-12-05T02:30", 1)[0] == "2026-12-06T02:30:00+00:00"); // strictly after

  // Every quarter hour in office hours on weekdays: Friday 4 December 2026, then Monday.
  auto office = cron_schedule::parse("*/15 9-17 * * MON-fri", "UTC");
  CHECK(next(office, "2026-12-04T17:30", 3) ==
        std::vector<std::string>{"2026-12-04T17:45:00+00:00", "2026-12-07T09:00:00+00:00",
                                 "2026-12-07T09:15:00+00:00"});

  auto weekend = cron_schedule::parse("0 12 * * sat-sun", "UTC"); // Sunday ends a range
  CHECK(next(weekend, "2026-12-04T00:00", 2) ==
        std::vector<std::string>{"2026-12-05T12:00:00+00:00", "2026-12-06T12:00:00+00:00"});
  auto sundays = cron_schedule::parse("0 12 * * 7", "UTC"); // 7 is Sunday, as 0
  CHECK(next(sundays, "2026-12-04T00:00", 1)[0] == "2026-12-06T12:00:00+00:00");
  auto from_five = cron_schedule::parse("5/20 0 * * *", "UTC"); // 5, 25, 45
  CHECK(next(from_five, "2026-12-04T00:00", 3) ==
        std::vector<std::string>{"2026-12-04T00:05:00+00:00", "2026-12-04T00:25:00+00:00",
                                 "2026-12-04T00:45:00+00:00"});
  auto monthly = cron_schedule::parse("@monthly", "UTC");
  CHECK(next(monthly, "2026-12-04T00:00", 1)[0] == "2027-01-01T00:00:00+00:00");
  auto leap = cron_schedule::parse("0 0 29 feb *", "UTC");
  CHECK(next(leap, "2026-12-04T00:00", 1)[0] == "2028-02-29T00:00:00+00:00");
  CHECK_FALSE(cron_schedule::parse("0 0 31 2 *", "UTC").next_after(utc("2026-12-04")));
}

TEST_CASE("with both day fields restricted, a day matching either is due (Vixie cron)",
          "[schedule]") {
  // The 1st of the month and every Monday; Tuesday 1 December 2026 is a 1st.
  auto c = cron_schedule::parse("0 0 1 * mon", "UTC");
  CHECK(next(c, "2026-11-30T12:00", 6) ==
        std::vector<std::string>{"2026-12-01T00:00:00+00:00", "2026-12-07T00:00:00+00:00",
                                 "2026-12-14T00:00:00+00:00", "2026-12-21T00:00:00+00:00",
                                 "2026-12-28T00:00:00+00:00", "2027-01-01T00:00:00+00:00"});
  // One of them `*`: both must hold (the 1st only when it is a Friday).
  auto fridays = cron_schedule::parse("0 0 * * fri", "UTC");
  CHECK(next(fridays, "2026-12-04T12:00", 1)[0] == "2026-12-11T00:00:00+00:00");
}

TEST_CASE("across daylight saving, a skipped time is due when the clocks jump and a repeated "
          "one once", "[schedule]") {
  auto paris = cron_schedule::parse("30 2 * * *", "Europe/Paris");
  // 28 March 2027: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist; due at the jump
  // (01:00 UTC), between 02:30 CET the day before and 02:30 CEST the day after.
  CHECK(next(paris, "2027-03-26T12:00", 3) ==
        std::vector<std::string>{"2027-03-27T01:30:00+00:00", "2027-03-28T01:00:00+00:00",
                                 "2027-03-29T00:30:00+00:00"});
  // 25 October 2026: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice; due the first time.
  CHECK(next(paris, "2026-10-24T12:00", 3) ==
        std::vector<std::string>{"2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00",
                                 "2026-10-27T01:30:00+00:00"});
  // Every half hour through the repeated hour: 02:00 and 02:30 once each (CEST), then 03:00 CET.
  auto halves = cron_schedule::parse("0,30 * * * *", "Europe/Paris");
  CHECK(next(halves, "2026-10-24T23:45", 4) ==
        std::vector<std::string>{"2026-10-25T00:00:00+00:00", "2026-10-25T00:30:00+00:00",
                                 "2026-10-25T02:00:00+00:00", "2026-10-25T02:30:00+00:00"});
  CHECK(paris.local_time_text(utc("2026-10-25T00:30")) == "2026-10-25T02:30:00+02:00");
  CHECK(paris.run_id(utc("2026-10-26T01:30")) == "20261026T0230+0100");
}

TEST_CASE("the latest due time in a range is the run a stopped node missed", "[schedule]") {
  auto c = cron_schedule::parse("30 2 * * *", "UTC");
  CHECK(utc_text(*c.latest_in(utc("2026-12-01"), utc("2026-12-04T20:00"))) ==
        "2026-12-04T02:30:00+00:00");
  CHECK_FALSE(c.latest_in(utc("2026-12-04T02:30"), utc("2026-12-04T20:00")));
  CHECK(utc_text(*c.latest_in(utc("2026-12-04T02:29"), utc("2026-12-04T02:30"))) ==
        "2026-12-04T02:30:00+00:00"); // the end is included, the start is not
  CHECK_FALSE(c.latest_in(utc("2026-12-04T20:00"), utc("2026-12-04T20:00")));
  auto hourly = cron_schedule::parse("@hourly", "UTC");
  CHECK(utc_text(*hourly.latest_in(utc("2020-01-01"), utc("2026-12-04T20:59"))) ==
        "2026-12-04T20:00:00+00:00");
}

TEST_CASE("local dates and times of a run", "[schedule]") {
  auto paris = cron_schedule::parse("@daily", "Europe/Paris");
  auto t = *paris.parse_local_time("2027-01-01T00:10");
  CHECK(utc_text(t) == "2026-12-31T23:10:00+00:00");
  CHECK(paris.local_date(t) == "2027-01-01");
  CHECK(paris.local_date(t, -1) == "2026-12-31");
  CHECK(paris.parse_local_time("2027-01-01") == *paris.parse_local_time("2027-01-01T00:00:00"));
  for (const char* bad : {"2027-02-30", "2027-1-01", "2027-01-01T24:00", "2027-01-01 00:00",
                          "tomorrow", "2027-01-01T00:00Z"})
    CHECK_FALSE(paris.parse_local_time(bad));
}
