#include "base/backoff.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace troupe {

std::chrono::milliseconds backoff_delay(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                        uint32_t n, double jitter, std::mt19937_64& rng) {
  using rep = std::chrono::milliseconds::rep;
  double low = std::max<double>(0, static_cast<double>(base.count()));
  double high = std::max<double>(0, static_cast<double>(cap.count()));
  // base is a whole number of ms: 0 stays 0, and 2^64 ms exceeds any cap, so stop doubling there.
  int doublings = static_cast<int>(std::min<uint32_t>(n <= 1 ? 0 : n - 1, 64));
  double delay = std::min(std::ldexp(low, doublings), high);
  double spread = jitter > 0 ? std::min(jitter, 1.0) : 0.0; // NaN -> 0
  double factor = 1.0;
  if (spread > 0)
    factor = std::uniform_real_distribution<double>(1.0 - spread, 1.0 + spread)(rng);
  double ms = std::round(delay * factor);
  if (!(ms > 0))
    return std::chrono::milliseconds{0};
  // 2^63 as a double; anything at or above it does not fit the rep.
  if (ms >= std::ldexp(1.0, std::numeric_limits<rep>::digits))
    return std::chrono::milliseconds::max();
  return std::chrono::milliseconds{static_cast<rep>(ms)};
}

std::chrono::milliseconds backoff_delay(std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                        uint32_t n) {
  static thread_local std::mt19937_64 unused; // never drawn from at jitter 0
  return backoff_delay(base, cap, n, 0.0, unused);
}

} // namespace troupe
