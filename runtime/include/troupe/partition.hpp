// How records are split into partitions: the stable hash that every edge, and every stage that
// routes by key, uses. Stable means the same on every run and every machine, documented here
// and in runtime/CONFIG.md ("Partitions"), and never changed within a store layout version.
#pragma once

#include <cstdint>
#include <string_view>

namespace troupe {

// The partition of a record with key `key` in an edge of `partitions` partitions (>= 1):
// XXH3-64 (xxHash 0.8, seed 0) of the key's bytes, modulo `partitions`.
uint32_t partition_of(std::string_view key, uint32_t partitions);

// The partition of a record without a key: its sequence number at its origin, modulo
// `partitions`, so that keyless records spread evenly.
inline uint32_t partition_of_keyless(uint64_t seq, uint32_t partitions) {
  return static_cast<uint32_t>(seq % partitions);
}

} // namespace troupe
