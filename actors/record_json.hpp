// A record as one JSON object, as the sinks write it: its payload through the struct of the edge
// it came from (one encoder per struct, so one sink may read edges of different structs), or in
// an envelope, {"origin":..,"seq":..,"key":..,"payload":{..}} (origin + seq is an idempotency key).
#pragma once

#include <troupe/json.hpp>
#include <troupe/stage.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace troupe {

class record_json {
public:
  explicit record_json(bool envelope) : envelope_(envelope) {}
  // Appends `r` to `out`, with no newline. Throws std::invalid_argument (which counts against the
  // record) for what JSON cannot carry: Text or a key that is not UTF-8, a set AnyPointer.
  void append(std::string& out, const record& r);

private:
  json_encoder& encoder_for(capnp::StructSchema schema);

  bool envelope_;
  std::map<uint64_t, json_encoder> encoders_; // by struct id
  uint64_t last_id_ = 0;                      // the last one used, found without a lookup
  json_encoder* last_ = nullptr;
};

} // namespace troupe
