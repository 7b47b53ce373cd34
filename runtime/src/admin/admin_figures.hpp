// What the admin module's views and figures share: the map's use, a stage's lag and its dead
// letters, read from the store. Private to runtime/src/admin.
#pragma once

#include "admin/admin_state.hpp"

#include <map>
#include <optional>
#include <string>

namespace troupe::detail {

struct map_use {
  uint64_t size = 0, used = 0;
};
map_use map_of(store& db);

// What a stage has yet to consume: records, and the age of the oldest of them.
struct stage_lag {
  uint64_t records = 0;
  std::optional<int64_t> oldest_ms;
  std::map<std::string, uint64_t> by_edge; // every input, a drained one with 0
};
stage_lag lag_of(admin_state& s, store_reader& r, const stage_config& cfg, int64_t now);
uint64_t dead_letters_of(admin_state& s, store_reader& r, const std::string& stage);

int64_t wall_ms();

} // namespace troupe::detail
