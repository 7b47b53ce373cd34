// Builds the per-struct lookup tables the JSON decoder and encoder share (see schema_table.hpp).
#include "json/schema_table.hpp"

#include <troupe/json.hpp>

#include <cstring>

namespace troupe::json_detail {

namespace {

uint32_t hash_name(std::string_view s) { // FNV-1a: field names are short
  uint32_t h = 2166136261u;
  for (unsigned char c : s)
    h = (h ^ c) * 16777619u;
  return h;
}

std::string_view view(capnp::Text::Reader t) { return {t.cStr(), t.size()}; }

template <class T> uint64_t bits_of(T x) {
  static_assert(sizeof(T) <= 8);
  uint64_t out = 0;
  std::memcpy(&out, &x, sizeof x);
  return out;
}

uint64_t default_bits(capnp::schema::Value::Reader v) {
  using V = capnp::schema::Value;
  switch (v.which()) {
    case V::BOOL: return v.getBool() ? 1 : 0;
    case V::INT8: return bits_of(v.getInt8());
    case V::INT16: return bits_of(v.getInt16());
    case V::INT32: return bits_of(v.getInt32());
    case V::INT64: return bits_of(v.getInt64());
    case V::UINT8: return v.getUint8();
    case V::UINT16: return v.getUint16();
    case V::UINT32: return v.getUint32();
    case V::UINT64: return v.getUint64();
    case V::FLOAT32: return bits_of(v.getFloat32());
    case V::FLOAT64: return bits_of(v.getFloat64());
    case V::ENUM: return v.getEnum();
    default: return 0; // pointers: their defaults are read through the dynamic API
  }
}

} // namespace

const char* kind_name(kind k) {
  switch (k) {
    case kind::void_: return "Void";
    case kind::bool_: return "Bool";
    case kind::int8: return "Int8";
    case kind::int16: return "Int16";
    case kind::int32: return "Int32";
    case kind::int64: return "Int64";
    case kind::uint8: return "UInt8";
    case kind::uint16: return "UInt16";
    case kind::uint32: return "UInt32";
    case kind::uint64: return "UInt64";
    case kind::float32: return "Float32";
    case kind::float64: return "Float64";
    case kind::text: return "Text";
    case kind::data: return "Data";
    case kind::list: return "List";
    case kind::struct_: return "struct";
    case kind::enum_: return "enum";
    case kind::any_pointer: return "AnyPointer";
    case kind::capability: return "interface";
  }
  return "?";
}

int enum_table::find(std::string_view name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name)
      return static_cast<int>(i);
  return -1;
}

int struct_table::find(std::string_view name, size_t hint) const {
  if (hint < fields.size() && fields[hint].name == name)
    return static_cast<int>(hint);
  if (slots.empty())
    return -1;
  size_t mask = slots.size() - 1;
  for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
    int32_t f = slots[i];
    if (f < 0)
      return -1;
    if (fields[static_cast<size_t>(f)].name == name)
      return f;
  }
}

schema_tables::schema_tables(capnp::StructSchema root) {
  root_ = table_for(root);
  // Filled breadth-first rather than recursively: a schema may refer to itself.
  while (!to_fill_.empty()) {
    auto* t = to_fill_.back();
    to_fill_.pop_back();
    fill(*t);
  }
}

const struct_table* schema_tables::table_for(capnp::StructSchema s) {
  auto it = struct_index_.find(s);
  if (it != struct_index_.end())
    return it->second;
  auto& t = structs_.emplace_back();
  t.schema = s;
  struct_index_.emplace(s, &t);
  to_fill_.push_back(&t);
  return &t;
}

const enum_table* schema_tables::enum_for(capnp::EnumSchema s) {
  auto it = enum_index_.find(s);
  if (it != enum_index_.end())
    return it->second;
  auto& e = enums_.emplace_back();
  e.schema = s;
  for (auto en : s.getEnumerants()) {
    e.names.emplace_back(view(en.getProto().getName()));
    e.choices += (e.choices.empty() ? "" : ", ") + e.names.back();
  }
  enum_index_.emplace(s, &e);
  return &e;
}

type_desc schema_tables::describe(capnp::Type t) {
  type_desc d;
  switch (t.which()) {
    case capnp::schema::Type::VOID: d.what = kind::void_; break;
    case capnp::schema::Type::BOOL: d.what = kind::bool_; break;
    case capnp::schema::Type::INT8: d.what = kind::int8; break;
    case capnp::schema::Type::INT16: d.what = kind::int16; break;
    case capnp::schema::Type::INT32: d.what = kind::int32; break;
    case capnp::schema::Type::INT64: d.what = kind::int64; break;
    case capnp::schema::Type::UINT8: d.what = kind::uint8; break;
    case capnp::schema::Type::UINT16: d.what = kind::uint16; break;
    case capnp::schema::Type::UINT32: d.what = kind::uint32; break;
    case capnp::schema::Type::UINT64: d.what = kind::uint64; break;
    case capnp::schema::Type::FLOAT32: d.what = kind::float32; break;
    case capnp::schema::Type::FLOAT64: d.what = kind::float64; break;
    case capnp::schema::Type::TEXT: d.what = kind::text; break;
    case capnp::schema::Type::DATA: d.what = kind::data; break;
    case capnp::schema::Type::LIST: {
      d.what = kind::list;
      d.elem = &elements_.emplace_back(describe(t.asList().getElementType()));
      break;
    }
    case capnp::schema::Type::ENUM:
      d.what = kind::enum_;
      d.en = enum_for(t.asEnum());
      break;
    case capnp::schema::Type::STRUCT:
      d.what = kind::struct_;
      d.st = table_for(t.asStruct());
      break;
    case capnp::schema::Type::INTERFACE: d.what = kind::capability; break;
    case capnp::schema::Type::ANY_POINTER: d.what = kind::any_pointer; break;
  }
  return d;
}

// A field's JSON key: its name, or the text of Cap'n Proto's own `$Json.name("...")` annotation
// (capnp/compat/json.capnp), so a JSON key the schema language cannot spell ("opted_in") maps
// to a field (optedIn).
static std::string json_name(capnp::StructSchema::Field f) {
  constexpr uint64_t json_name_annotation = 0xfa5b1fd61c2e7c3dull;
  for (auto a : f.getProto().getAnnotations())
    if (a.getId() == json_name_annotation && a.getValue().isText())
      return std::string(view(a.getValue().getText()));
  return std::string(view(f.getProto().getName()));
}

void schema_tables::fill(struct_table& t) {
  auto proto = t.schema.getProto().getStruct();
  t.has_union = proto.getDiscriminantCount() > 0;
  t.discriminant_offset = proto.getDiscriminantOffset();
  for (auto f : t.schema.getFields()) {
    field_desc d;
    d.field = f;
    d.name = json_name(f);
    d.key.clear();
    append_json_string(d.key, d.name);
    d.key += ':';
    d.is_group = f.getProto().isGroup();
    d.in_union = f.getProto().getDiscriminantValue() != capnp::schema::Field::NO_DISCRIMINANT;
    d.type = describe(f.getType());
    d.discriminant = f.getProto().getDiscriminantValue();
    if (!d.is_group) {
      auto slot = f.getProto().getSlot();
      d.offset = slot.getOffset();
      d.default_bits = default_bits(slot.getDefaultValue());
    }
    t.fields.push_back(std::move(d));
  }
  size_t size = 8;
  while (size < t.fields.size() * 2)
    size *= 2;
  t.slots.assign(size, -1);
  for (size_t i = 0; i < t.fields.size(); ++i) {
    size_t j = hash_name(t.fields[i].name) & (size - 1);
    while (t.slots[j] >= 0)
      j = (j + 1) & (size - 1);
    t.slots[j] = static_cast<int32_t>(i);
  }
}

} // namespace troupe::json_detail
