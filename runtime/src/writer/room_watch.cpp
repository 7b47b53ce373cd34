#include "writer/room_watch.hpp"

#include "base/error.hpp"
#include "base/log.hpp"
#include "store/store.hpp"

#include <string>

namespace troupe {

void room_watch::committed() {
  refused_since_ = {};
  consumer_refused_ = false;
}

void room_watch::refused(const step_delta& d) {
  if (refused_since_ == clock::time_point{})
    refused_since_ = clock::now();
  if (!d.cursors.empty())
    consumer_refused_ = true;
}

void room_watch::observe(const store& db) {
  if (!db.under_pressure())
    return;
  pressure_seen_ = true;
  if (reported_)
    return;
  reported_ = true;
  log_event(log_level::warn, "writer",
            "the map is nearly full (store.map_size): intake waits, and so do steps that add more "
            "than they consume once the room left is spent; consumed records are trimmed until "
            "consumers make room");
}

caf::error room_watch::at_tick(const store& db) {
  observe(db);
  if (reported_ && !pressure_seen_) {
    reported_ = false;
    log_event(log_level::info, "writer", "the map has room again: intake resumes");
  }
  pressure_seen_ = db.under_pressure();
  if (refused_since_ == clock::time_point{} || clock::now() - refused_since_ < stall_limit_)
    return {};
  bool nothing_to_consume = true;
  for (edge_id e = 0; e < db.layout().edges.size(); ++e)
    if (db.backlog(e).records > 0)
      nothing_to_consume = false;
  if (!consumer_refused_ && !nothing_to_consume)
    return {}; // intake waits for consumers that hold records: backpressure, not a stall
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(stall_limit_).count();
  return make_error(errc::store_full,
                    "store: nothing could commit for " + std::to_string(secs) +
                      " s: the steps in flight do not fit in the map, and " +
                      (consumer_refused_ ? "the consumers' own steps are refused for room"
                                         : "no edge holds a record a consumer could take") +
                      "; raise store.map_size (nothing was lost: restart with a larger map)");
}

} // namespace troupe
