// A field of a payload struct named by a dotted path ("customer.address.city"), resolved once
// against the struct at load and read from records through Cap'n Proto's dynamic API. Shared by
// the built-in stages that read fields of any user schema (filter, splitter, sharder, the JSON
// source's key).
#pragma once

#include <capnp/any.h>
#include <capnp/dynamic.h>
#include <capnp/schema.h>

#include <troupe/stage.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe {

// A field's value as read(): numbers, bools, enums by number, Text and Data as bytes.
struct field_value {
  enum class kind { boolean, integer, unsigned_integer, floating, text, enumerant } k;
  bool b = false;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string_view text;
  uint16_t enumerant = 0;
};

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

  // The same for a path to a number, bool, enum, Text or Data field, read straight from the
  // struct's sections by the offsets the schema gives: no dynamic dispatch per record. Text and
  // Data views point into the message. Another type is a std::logic_error.
  std::optional<field_value> read(capnp::AnyStruct::Reader from) const;
  bool present(capnp::AnyStruct::Reader from) const;

private:
  // Each step of the path, with what get() needs of it worked out once (the dynamic API's
  // Field::getType() is slow to call per record).
  struct step {
    capnp::StructSchema::Field field;
    bool in_union = false;
    bool pointer = false; // Text, Data, a list or a struct (not a group): may be unset
    bool group = false;
    capnp::schema::Type::Which which = capnp::schema::Type::VOID;
    uint32_t offset = 0;         // data: in units of the field's size (bits for Bool); or pointer
    uint64_t default_bits = 0;   // what the wire format XORs into a data field
    uint16_t discriminant = 0;   // its union's value for it, when in_union
    uint32_t union_offset = 0;   // where the containing struct keeps its discriminant (16-bit units)
  };
  std::string text_;
  std::vector<capnp::StructSchema::Field> fields_;
  std::vector<step> steps_;
};

// The bytes a field's value contributes as a key (a record key, a shard key): a Text as its
// UTF-8 bytes, an integer in decimal. `key_type_error` says why another type cannot be a key,
// or is empty.
bool is_integer(capnp::schema::Type::Which t);

// The struct a stage's first input edge carries; a config_error through p.fail when it carries
// none ("<who> reads fields, so its input edge must carry a struct ...").
capnp::StructSchema input_struct(const params& p, const char* who);

std::string key_bytes(const capnp::DynamicValue::Reader& v);
std::string key_bytes(const field_value& v);
std::string key_type_error(capnp::Type t);

} // namespace troupe
