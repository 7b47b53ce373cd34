// `schedule:`: the app is a batch job that `troupe run` starts on a cron expression.
//
//   schedule:
//     cron: "30 2 * * *"         # five fields, or @daily and the like (schedule/cron.hpp)
//     time_zone: Europe/Paris    # an IANA zone; default UTC
//     missed: run_once           # a run due while the node was down: run_once (the latest of
//                                # them, at start-up) or skip
//     start: 2026-12-01          # optional: at the first start, runs due since then are missed
#include "config/app_loader.hpp"
#include "config/config_values.hpp"

namespace troupe::detail {

void app_loader::read_schedule(const YAML::Node& schedule) {
  if (!open_map(r_, schedule, "schedule"))
    return;
  check_keys(r_, schedule, "schedule", {"cron", "time_zone", "missed", "start"});
  schedule_config cfg;
  cfg.line = line_of(mark_of(schedule));
  if (auto v = schedule["missed"]; v.IsDefined())
    if (auto m = read_enum<schedule_config::missed_policy>(
            r_, v, "schedule.missed",
            {{"run_once", schedule_config::missed_policy::run_once},
             {"skip", schedule_config::missed_policy::skip}}))
      cfg.missed = *m;
  std::string zone = "UTC";
  if (auto v = schedule["time_zone"]; v.IsDefined())
    if (auto z = read_string(r_, v, "schedule.time_zone", "a time zone such as Europe/Paris"))
      zone = *z;
  auto cron = schedule["cron"];
  if (!cron.IsDefined()) {
    r_.at(schedule, "schedule.cron", "missing required key 'cron' (when the runs are due, such "
                                     "as \"30 2 * * *\": 02:30 every day)");
    return;
  }
  auto text = read_string(r_, cron, "schedule.cron", "a cron expression such as \"30 2 * * *\"");
  if (!text)
    return;
  try {
    cfg.when = cron_schedule::parse(*text, zone);
  } catch (const cron_error& e) {
    if (e.column == 0) {
      r_.at(schedule["time_zone"], "schedule.time_zone", e.what());
    } else {
      // The column within the expression, where the file holds it on one line.
      auto m = mark_of(cron);
      bool quoted = cron.Tag() == "!";
      m.column += static_cast<int>(e.column - 1 + (quoted ? 1 : 0));
      r_.at(m, "schedule.cron", std::string(e.what()) + " (in \"" + *text + "\")");
    }
    return;
  }
  cfg.cron = *text;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  if (!cfg.when->next_after(now)) {
    r_.at(cron, "schedule.cron", "\"" + *text + "\" is never due (no such day in 8 years)");
    return;
  }
  if (auto v = schedule["start"]; v.IsDefined()) {
    auto start = v.IsScalar() ? cfg.when->parse_local_time(v.Scalar()) : std::nullopt;
    if (!start)
      r_.expected(v, "schedule.start",
                  "a local date or time in " + zone + " such as 2026-12-01 or 2026-12-01T06:30");
    else
      cfg.start_ms = *start;
  }
  app_.schedule = std::move(cfg);
}

} // namespace troupe::detail
