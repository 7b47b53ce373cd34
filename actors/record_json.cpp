#include "record_json.hpp"

#include <stdexcept>

namespace troupe {

namespace {

void append_string(std::string& out, std::string_view s, const char* what) {
  if (!append_json_string(out, s))
    throw std::invalid_argument(std::string("the record's ") + what + " is not valid UTF-8");
}

} // namespace

json_encoder& record_json::encoder_for(capnp::StructSchema schema) {
  auto id = schema.getProto().getId();
  if (last_ && last_id_ == id)
    return *last_;
  auto i = encoders_.find(id);
  if (i == encoders_.end())
    i = encoders_.emplace(id, json_encoder{schema}).first;
  last_id_ = id;
  last_ = &i->second;
  return *last_;
}

void record_json::append(std::string& out, const record& r) {
  auto start = out.size();
  try {
    if (envelope_) {
      out += "{\"origin\":";
      append_string(out, r.origin(), "origin");
      out += ",\"seq\":";
      out += std::to_string(r.seq());
      if (r.has_key()) {
        out += ",\"key\":";
        append_string(out, r.key(), "key");
      }
      out += ",\"payload\":";
    }
    auto payload = r.payload_dynamic(); // the struct of the record's edge
    if (auto err = encoder_for(payload.getSchema()).encode(payload, out))
      throw std::invalid_argument("cannot write the record as JSON: " + err->to_string());
    if (envelope_)
      out += '}';
  } catch (...) {
    out.resize(start);
    throw;
  }
}

} // namespace troupe
