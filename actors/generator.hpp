#pragma once

#include <troupe/stage.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <utility>

namespace troupe {

class generator : public source {
public:
  explicit generator(const params& p);
  void open(context& ctx) override;
  produce_result produce(context& ctx, size_t max_items) override;

private:
  void fill(capnp::DynamicStruct::Builder b, uint64_t index) const;

  uint64_t count_;   // 0: unbounded
  double rate_;      // records per second; 0: as fast as possible
  size_t payload_size_;
  std::optional<capnp::StructSchema> schema_;
  std::string body_;
  // The fields of schema_ it fills, with their types.
  using typed_field = std::pair<capnp::StructSchema::Field, capnp::schema::Type::Which>;
  std::optional<typed_field> int_field_, bytes_field_;
  uint64_t next_ = 0;
  // Rate limiting: records allowed since `started_` (reset on every open).
  std::chrono::steady_clock::time_point started_;
  uint64_t produced_since_start_ = 0;
};

} // namespace troupe
