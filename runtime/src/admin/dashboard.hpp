// The dashboard the admin endpoint serves at `/`: one self-contained HTML page (no build step,
// nothing fetched from elsewhere) that draws the app's stages and edges as a layered graph and
// refreshes each stage's state, rates, lag, restarts and dead letters from /v1/ps every second.
// Clicking a stage shows its workers and last error.
#pragma once

#include <string>

namespace troupe {

const std::string& dashboard_html();

} // namespace troupe
