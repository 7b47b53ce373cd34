// `troupe test APP.yaml CASES.yaml`: runs stages of an app alone on given input records and
// compares what comes out (troupe_test.cpp; the cases' format is in runtime/CONFIG.md).
#pragma once

#include "config/app_config.hpp"

#include <string>

namespace troupe::cli {

// Runs every case of `cases_file` against the loaded app; prints one line per case (and what
// differs). Returns the exit code: 0 all passed, 1 a case failed, 2 the cases file is invalid.
int test_app(const app_config& app, const std::string& app_file, const std::string& cases_file);

} // namespace troupe::cli
