// What the sources that take JSON records from other programs over the network (http_source,
// tcp_source) read from their params: where to listen, and how to decode a record.
#pragma once

#include "field_path.hpp"

#include <troupe/json.hpp>
#include <troupe/stage.hpp>

#include <optional>
#include <string>

namespace troupe {

struct listen_address {
  std::string host; // without brackets
  int port = 0;     // 0: a free one
  std::string text() const; // HOST:PORT, an IPv6 host in brackets
};
// `address` (HOST:PORT, an IPv6 host in brackets; `fallback` when absent), or p.fail.
listen_address read_listen_address(const params& p, const std::string& fallback);

struct json_intake {
  capnp::StructSchema schema;   // the struct of the output edge
  json_decode_options options;  // required fields (key and id_field among them), unknown_fields
  std::optional<field_path> key, id_field;
};
// `required`, `unknown_fields`, `key` and, with `with_id_field`, `id_field`; or p.fail.
json_intake read_json_intake(const params& p, bool with_id_field);

} // namespace troupe
