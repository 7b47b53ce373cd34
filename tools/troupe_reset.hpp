// `troupe reset`: deletes what an app has written, so that its next run starts from nothing.
#pragma once

#include "config/app_config.hpp"

namespace troupe::cli {

// Deletes the app's store (data.mdb, lock.mdb and troupe.lock in its data dir, and the data dir
// when that leaves it empty) and every file its stages own (stage_config::owned_paths), after
// printing the list. Asks for confirmation when stdin is a terminal; elsewhere `yes` must be set.
// Refuses while a node has the data dir open (it holds the flock on troupe.lock), and holds that
// lock itself while deleting so that no node starts meanwhile. Returns the exit code.
int reset_app(const app_config& app, bool yes);

} // namespace troupe::cli
