// What the writer knows about steps waiting for room in the store (a full or nearly full map).
//
// It reports the map's pressure once per episode: the first refusal logs a warning, and "room
// again" is logged only once a whole writer interval passed without pressure, so a map that
// hovers at its limit (the normal state of an app whose input is larger than the map) logs twice,
// not at every commit.
//
// And it notices when waiting cannot end: for `stall_limit`, steps were refused for room and none
// committed, while either a consuming step was among the refused (so no consumer can free room)
// or no edge holds a record any consumer could take. Then what is in flight does not fit the map,
// and the node stops with a message naming store.map_size, rather than waiting forever.
#pragma once

#include "store/step_delta.hpp"

#include <caf/error.hpp>

#include <chrono>

namespace troupe {

class store;

class room_watch {
public:
  using clock = std::chrono::steady_clock;

  explicit room_watch(std::chrono::milliseconds stall_limit) : stall_limit_(stall_limit) {}

  // After each flush: whether anything committed, and the steps refused for room.
  void committed();
  void refused(const step_delta& d);
  // After each flush and each tick: logs the start of a pressure episode.
  void observe(const store& db);
  // Every writer interval: logs the end of an episode; the error that stops the node when the
  // wait cannot end.
  caf::error at_tick(const store& db);

private:
  std::chrono::milliseconds stall_limit_;
  bool reported_ = false;        // a "nearly full" warning is out, "room again" is not
  bool pressure_seen_ = false;   // pressure was on since the last tick
  clock::time_point refused_since_{}; // first refusal since the last commit (epoch: none)
  bool consumer_refused_ = false;
};

} // namespace troupe
