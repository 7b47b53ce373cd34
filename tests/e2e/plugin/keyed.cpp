// Stages for the end-to-end tests of partitions and of records that kill the process.
//
// e2e.rekey: forwards each Item keyed by its bucket ("b<index % 16>"), so that the edge after it
//   is partitioned by bucket and e2e.running's per-bucket state lives with its partition.
// e2e.bomb: forwards each Item, except that it aborts the whole process (SIGABRT) on the item
//   whose index is the `poison` param: a record no exception handler can catch.
// e2e.broken: a sink that can never start (its open() throws), to see it given up.
#include "e2e.capnp.h"

#include <troupe/stage.hpp>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace {

class rekey_stage : public troupe::stage {
public:
  explicit rekey_stage(const troupe::params&) {}
  void process(troupe::context& ctx, const troupe::record& r) override {
    auto in = r.payload<e2e::Item>();
    auto out = ctx.emit("out").key("b" + std::to_string(in.getIndex() % 16)).init_payload<e2e::Item>();
    out.setIndex(in.getIndex());
  }
};

class bomb_stage : public troupe::stage {
public:
  explicit bomb_stage(const troupe::params& p) : poison_(p.get_u64("poison", 0)) {}
  void process(troupe::context& ctx, const troupe::record& r) override {
    if (r.payload<e2e::Item>().getIndex() == poison_)
      std::abort();
    ctx.forward("out", r);
  }

private:
  uint64_t poison_;
};

class broken_stage : public troupe::stage {
public:
  explicit broken_stage(const troupe::params&) {}
  void open(troupe::context&) override { throw std::runtime_error("the disk it needs is gone"); }
  void process(troupe::context&, const troupe::record&) override {}
};

} // namespace

void register_keyed_stages(troupe::registry& reg) {
  reg.add_operator<rekey_stage>("e2e.rekey").reads<e2e::Item>().emits<e2e::Item>("out");
  reg.add_operator<bomb_stage>("e2e.bomb").params({"poison"}).reads<e2e::Item>();
  reg.add_sink<broken_stage>("e2e.broken");
}
