// A field of a payload struct named by a dotted path ("customer.address.city"), resolved once
// against the struct at load and read from records through Cap'n Proto's dynamic API. Shared by
// the built-in stages that read fields of any user schema (filter, splitter, sharder, the JSON
// source's key).
#pragma once

#include <capnp/dynamic.h>
#include <capnp/schema.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe {

class field_path {
public:
  // Resolves `path` in `root`; std::invalid_argument naming the part that does not exist or is
  // not a struct (or group) to go into.
  field_path(capnp::StructSchema root, std::string path);

  const std::string& text() const { return text_; }
  capnp::Type type() const { return fields_.back().getType(); }

  // The field's value, or nullopt when the record does not have it: a struct or a pointer field
  // (Text, Data, a list) on the way that is not set, or a union member that is not the one set.
  std::optional<capnp::DynamicValue::Reader> get(capnp::DynamicStruct::Reader from) const;
  bool has(capnp::DynamicStruct::Reader from) const { return get(from).has_value(); }

private:
  std::string text_;
  std::vector<capnp::StructSchema::Field> fields_;
};

// The bytes a field's value contributes as a key (a record key, a shard key): a Text as its
// UTF-8 bytes, an integer in decimal. `key_type_error` says why another type cannot be a key,
// or is empty.
std::string key_bytes(const capnp::DynamicValue::Reader& v);
std::string key_type_error(capnp::Type t);

} // namespace troupe
