// The one backoff of the runtime: how long to wait before the n-th consecutive retry of
// anything (a supervisor's restart, a failed step, a refused commit).
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace troupe {

// base * 2^(n-1) for n >= 1 (0 counts as 1), capped at `cap`, then scaled by a random factor in
// [1 - jitter, 1 + jitter] (jitter clamped to [0, 1]; at 0 the rng is not used), rounded to
// whole milliseconds. Never negative and never overflows, however large n or cap.
std::chrono::milliseconds backoff_delay(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                        uint32_t n, double jitter, std::mt19937_64& rng);

// The same without jitter.
std::chrono::milliseconds backoff_delay(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                        uint32_t n);

} // namespace troupe
