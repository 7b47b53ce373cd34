// e2e.running: the end-to-end crash tests' stateful stage.
//
// For the record with index i: bucket = i % 16; the bucket's running sum of (i % 1000), mod 2^32,
// lives in keyed state (key "b<bucket>") and commits with the step; the stage emits
// Item{index = i, body = "", bucket, running = the sum including i}. After any number of crashes
// the output must equal the one a plain loop computes (tests/e2e/e2e_crash_test.cpp): a lost or
// repeated step shows up as a wrong running sum from then on in that bucket.
#include "e2e.capnp.h"

#include <troupe/stage.hpp>

#include <cstdint>
#include <string>

namespace {

constexpr uint32_t buckets = 16;

class running_stage : public troupe::stage {
public:
  explicit running_stage(const troupe::params&) {}

  void process(troupe::context& ctx, const troupe::record& r) override {
    uint32_t index = r.payload<e2e::Item>().getIndex();
    uint32_t bucket = index % buckets;
    std::string key = "b" + std::to_string(bucket);
    auto sum = static_cast<uint32_t>(ctx.state().get_u64(key).value_or(0) + index % 1000);
    ctx.state().put_u64(key, sum);

    auto out = ctx.emit("out").init_payload<e2e::Item>();
    out.setIndex(index);
    out.setBucket(bucket);
    out.setRunning(sum);
  }
};

} // namespace

void register_keyed_stages(troupe::registry& reg); // keyed.cpp

TROUPE_PLUGIN(reg) {
  reg.add_operator<running_stage>("e2e.running").reads<e2e::Item>().emits<e2e::Item>("out");
  register_keyed_stages(reg);
}
