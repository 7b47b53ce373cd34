// generator: a source of synthetic records, for tests and benchmarks.
//
// Params: count (records in all; 0 = unbounded, default 1000), rate (records per second;
// 0 = unlimited, the default), payload_size (bytes of filler per record, default 100).
//
// Record i has key "i" (decimal). Its payload is the struct its output edge carries, if any
// (the first integer field set to i, the first Text or Data field filled with payload_size
// bytes), else troupe's own Generated struct {index = i, body}. The index of the next record
// commits with each step, so a restarted generator continues where it stopped: a generated
// stream is the same whatever the crashes.
#include "generator.hpp"

#include "field_path.hpp" // is_integer

#include <troupe/builtin_schemas.hpp>

#include <algorithm>
#include <cmath>

namespace troupe {


generator::generator(const params& p)
  : count_(p.get_u64("count", 1000)),
    rate_(p.get_double("rate", 0)),
    payload_size_(p.get_u64("payload_size", 100)),
    schema_(p.output_schema("out")) {
  if (rate_ < 0)
    p.fail("rate", "must be >= 0 records per second");
  if (payload_size_ > 16 * 1024 * 1024)
    p.fail("payload_size", "must be at most 16 MiB");
  body_.assign(payload_size_, 'x');
  if (schema_) // the fields it fills, found once: the first integer and the first Text or Data
    for (auto field : schema_->getNonUnionFields()) {
      auto which = field.getType().which();
      if (!int_field_ && is_integer(which))
        int_field_ = {field, which};
      else if (!bytes_field_ && (which == capnp::schema::Type::TEXT || which == capnp::schema::Type::DATA))
        bytes_field_ = {field, which};
    }
}

void generator::fill(capnp::DynamicStruct::Builder b, uint64_t index) const {
  using W = capnp::schema::Type::Which;
  if (int_field_) {
    auto [field, which] = *int_field_;
    switch (which) { // narrow types wrap around; that is fine for synthetic data
      case W::INT8: b.set(field, static_cast<int8_t>(index)); break;
      case W::INT16: b.set(field, static_cast<int16_t>(index)); break;
      case W::INT32: b.set(field, static_cast<int32_t>(index)); break;
      case W::INT64: b.set(field, static_cast<int64_t>(index)); break;
      case W::UINT8: b.set(field, static_cast<uint8_t>(index)); break;
      case W::UINT16: b.set(field, static_cast<uint16_t>(index)); break;
      case W::UINT32: b.set(field, static_cast<uint32_t>(index)); break;
      default: b.set(field, index); break;
    }
  }
  if (bytes_field_) {
    auto [field, which] = *bytes_field_;
    if (which == W::TEXT)
      b.set(field, capnp::Text::Reader(body_.c_str(), body_.size()));
    else
      b.set(field, capnp::Data::Reader(reinterpret_cast<const kj::byte*>(body_.data()), body_.size()));
  }
}

void generator::open(context& ctx) {
  next_ = ctx.state().get_u64("next").value_or(0);
  started_ = std::chrono::steady_clock::now();
  produced_since_start_ = 0;
}

produce_result generator::produce(context& ctx, size_t max_items) {
  next_ = ctx.state().get_u64("next").value_or(0); // the committed position (retries repeat)
  uint64_t n = max_items;
  if (count_ > 0)
    n = std::min<uint64_t>(n, count_ - std::min(count_, next_));
  if (rate_ > 0) {
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_);
    auto allowed = static_cast<uint64_t>(elapsed.count() * rate_) + 1;
    auto budget = allowed > produced_since_start_ ? allowed - produced_since_start_ : 0;
    if (budget == 0 && (count_ == 0 || next_ < count_))
      return produce_result::idle(static_cast<uint32_t>(std::max(1.0, std::ceil(1000.0 / rate_))));
    n = std::min(n, budget);
  }
  for (uint64_t i = 0; i < n; ++i) {
    auto index = next_ + i;
    auto key = std::to_string(index);
    auto out = ctx.emit("out");
    out.key(key);
    if (schema_) {
      fill(out.init_payload_dynamic(), index);
    } else {
      init_generated(out, index, body_);
    }
  }
  next_ += n;
  produced_since_start_ += n;
  ctx.state().put_u64("next", next_);
  if (count_ > 0 && next_ >= count_)
    return produce_result::done();
  return produce_result::more();
}

} // namespace troupe
