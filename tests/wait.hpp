// Waiting on a condition with a deadline: the only way tests wait for anything.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace troupe::test {

// Polls `condition` until it holds or `timeout` passes; returns whether it held. The poll
// interval (`every`: longer for a costly condition) only sets how soon a met condition is
// noticed, never an outcome.
inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30),
                       std::chrono::milliseconds every = std::chrono::milliseconds(2)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::yield();
    std::this_thread::sleep_until(std::chrono::steady_clock::now() + every);
  }
  return true;
}

} // namespace troupe::test
