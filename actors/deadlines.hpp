// The deadlines of the stateful built-in stages (a sequence's gap timeouts, a batch's wait),
// kept in each partition's state as 'd' + time (ordered ms) + record key -> "": a scan from "d"
// walks them earliest first, and the earliest of a worker's partitions is its next wake-up
// (context::wake_at). Kept in LMDB, they survive restarts; open() re-arms them with arm().
#pragma once

#include <troupe/stage.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::deadlines {

// Moves the deadline of `key` from `current` (0: none) to `at` (0: none), asking for a wake-up
// at `at`; `current` becomes `at`.
void move(context& ctx, state_store& st, std::string_view key, int64_t& current, int64_t at);

struct entry {
  std::string state_key; // erase it to drop the deadline
  int64_t at;
  std::string key;       // the record key it belongs to
};
// The earliest deadlines of a partition, at most `max`, due at or before `until`.
std::vector<entry> due(const state_store& st, int64_t until, size_t max);
// Asks for a wake-up at the earliest deadline of each of the worker's partitions.
void arm(context& ctx);

} // namespace troupe::deadlines
