// `troupe launch`: every node of an app with `nodes:` here, as supervised child processes.
#pragma once

#include "config/app_config.hpp"

#include <string>

namespace troupe::cli {

// Runs `troupe run FILE --node N` for each node (with the --set overrides and, given a data
// dir, --data-dir DIR/N) until all finished, one failed, or SIGINT/SIGTERM. Returns the exit
// code: 0 every node finished (or stopped on a signal), 1 a node failed or was given up, 64 the
// app has no nodes.
int launch_app(const app_config& app, const std::string& file, const load_options& options);

} // namespace troupe::cli
