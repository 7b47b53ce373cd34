// `troupe run` of an app with a `schedule:`: a scheduler that starts each run as a child process.
#pragma once

#include "config/app_config.hpp"

#include <string>
#include <vector>

namespace troupe::cli {

// The environment a run's YAML reads: TROUPE_RUN_ID, TROUPE_RUN_TIME, TROUPE_RUN_DATE and
// TROUPE_RUN_PREVIOUS_DATE for a run due at `due_ms` in `when`'s zone.
std::vector<std::pair<std::string, std::string>> run_environment(const cron_schedule& when,
                                                                 int64_t due_ms);
// Sets those of a run due now (in UTC) where they are not set, so that an app that names them
// loads outside a run too (troupe lint, troupe test, troupe run without schedule:).
void default_run_environment();

// Runs the schedule until SIGINT/SIGTERM: each run is `troupe run FILE --data-dir
// <data_dir>/runs/<id> --scheduled-run <id> ARGS...` with the run's environment; a run's
// progress and the runs done are in <data_dir>/schedule.json (see runtime/CONFIG.md,
// "Schedules"). `args` are passed to every run (--set, --log-level, ...). Returns the exit code.
int run_schedule(const app_config& app, const std::string& file,
                 const std::vector<std::string>& args);

} // namespace troupe::cli
