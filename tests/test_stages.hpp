// Small stages several tests share.
#pragma once

#include <troupe/stage.hpp>

#include <cstdint>

namespace troupe::test {

// Consumes and forgets.
class null_sink : public stage {
public:
  explicit null_sink(const params&) {}
  void process(context&, const record&) override {}
};

// Burns a little CPU, for stages that must be slower than their producer.
inline void busy_work() {
  volatile uint64_t x = 0;
  for (int i = 0; i < 20000; ++i)
    x = x + static_cast<uint64_t>(i);
}

} // namespace troupe::test
