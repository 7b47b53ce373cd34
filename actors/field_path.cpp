#include "field_path.hpp"

#include <cstring>

namespace troupe {

bool is_integer(capnp::schema::Type::Which t) {
  using T = capnp::schema::Type;
  switch (t) {
  case T::INT8: case T::INT16: case T::INT32: case T::INT64:
  case T::UINT8: case T::UINT16: case T::UINT32: case T::UINT64:
    return true;
  default:
    return false;
  }
}

capnp::StructSchema input_struct(const params& p, const char* who) {
  auto inputs = p.input_edges();
  auto s = inputs.empty() ? std::nullopt : p.input_schema(inputs.front());
  if (!s)
    p.fail("type", std::string(who) + " reads fields, so its input edge must carry a struct "
                                      "(edges.<edge>.type, or schema.payload)");
  return *s;
}

namespace {

bool is_pointer(capnp::schema::Type::Which t) {
  using T = capnp::schema::Type;
  return t == T::TEXT || t == T::DATA || t == T::LIST || t == T::STRUCT || t == T::ANY_POINTER;
}

// The raw bits of a slot's default value, as the wire format XORs them into stored values.
uint64_t default_bits(capnp::schema::Value::Reader v) {
  using V = capnp::schema::Value;
  auto as_bits = [](auto x) {
    uint64_t bits = 0;
    std::memcpy(&bits, &x, sizeof x);
    return bits;
  };
  switch (v.which()) {
  case V::BOOL: return v.getBool() ? 1 : 0;
  case V::INT8: return static_cast<uint8_t>(v.getInt8());
  case V::INT16: return static_cast<uint16_t>(v.getInt16());
  case V::INT32: return static_cast<uint32_t>(v.getInt32());
  case V::INT64: return static_cast<uint64_t>(v.getInt64());
  case V::UINT8: return v.getUint8();
  case V::UINT16: return v.getUint16();
  case V::UINT32: return v.getUint32();
  case V::UINT64: return v.getUint64();
  case V::FLOAT32: return as_bits(v.getFloat32());
  case V::FLOAT64: return as_bits(v.getFloat64());
  case V::ENUM: return v.getEnum();
  default: return 0;
  }
}

unsigned bytes_of(capnp::schema::Type::Which t) {
  using T = capnp::schema::Type;
  switch (t) {
  case T::INT8: case T::UINT8: return 1;
  case T::INT16: case T::UINT16: case T::ENUM: return 2;
  case T::INT32: case T::UINT32: case T::FLOAT32: return 4;
  case T::INT64: case T::UINT64: case T::FLOAT64: return 8;
  default: return 0;
  }
}

// Reads `size` bytes at `offset` units of a data section, little-endian; 0 past its end (a
// message of an older, shorter version of the struct).
uint64_t data_bits(kj::ArrayPtr<const kj::byte> data, uint32_t offset, unsigned size) {
  uint64_t v = 0;
  if ((uint64_t{offset} + 1) * size <= data.size())
    for (unsigned i = 0; i < size; ++i)
      v |= uint64_t{data[offset * size + i]} << (8 * i);
  return v;
}

} // namespace

field_path::field_path(capnp::StructSchema root, std::string path) : text_(std::move(path)) {
  if (text_.empty())
    throw std::invalid_argument("an empty field path");
  auto s = root;
  size_t start = 0;
  for (;;) {
    auto dot = text_.find('.', start);
    auto name = text_.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    KJ_IF_MAYBE (f, s.findFieldByName(name)) {
      fields_.push_back(*f);
    } else {
      throw std::invalid_argument("'" + text_ + "': " + s.getShortDisplayName().cStr() +
                                  " has no field '" + name + "'");
    }
    const auto& f = fields_.back();
    step st;
    st.field = f;
    auto proto = f.getProto();
    st.in_union = proto.getDiscriminantValue() != capnp::schema::Field::NO_DISCRIMINANT;
    st.group = proto.isGroup();
    st.which = f.getType().which();
    st.pointer = !st.group && is_pointer(st.which);
    st.discriminant = proto.getDiscriminantValue();
    st.union_offset = s.getProto().getStruct().getDiscriminantOffset();
    if (!st.group) {
      st.offset = proto.getSlot().getOffset();
      st.default_bits = default_bits(proto.getSlot().getDefaultValue());
    }
    steps_.push_back(st);
    if (dot == std::string::npos)
      return;
    auto type = fields_.back().getType();
    if (!type.isStruct())
      throw std::invalid_argument("'" + text_ + "': '" + name + "' is not a struct or group");
    s = type.asStruct();
    start = dot + 1;
  }
}

std::optional<capnp::DynamicValue::Reader> field_path::get(capnp::DynamicStruct::Reader from) const {
  for (size_t i = 0;; ++i) {
    const auto& s = steps_[i];
    // A union member that is not the one set has no value; nor has a pointer that is not set.
    if (s.in_union) {
      KJ_IF_MAYBE (set, from.which()) {
        if (*set != s.field)
          return std::nullopt;
      } else {
        return std::nullopt;
      }
    }
    if (s.pointer && !from.has(s.field))
      return std::nullopt;
    auto v = from.get(s.field);
    if (i + 1 == steps_.size())
      return v;
    from = v.as<capnp::DynamicStruct>();
  }
}

std::optional<field_value> field_path::read(capnp::AnyStruct::Reader from) const {
  using T = capnp::schema::Type;
  for (size_t i = 0;; ++i) {
    const auto& s = steps_[i];
    auto data = from.getDataSection();
    if (s.in_union && data_bits(data, s.union_offset, 2) != s.discriminant)
      return std::nullopt;
    if (s.group)
      continue; // a group lives in its parent's sections
    if (i + 1 < steps_.size()) { // a struct on the way
      auto pointers = from.getPointerSection();
      if (s.offset >= pointers.size() || pointers[s.offset].isNull())
        return std::nullopt;
      from = pointers[s.offset].getAs<capnp::AnyStruct>();
      continue;
    }
    field_value v{};
    switch (s.which) {
    case T::TEXT:
    case T::DATA: {
      auto pointers = from.getPointerSection();
      if (s.offset >= pointers.size() || pointers[s.offset].isNull())
        return std::nullopt;
      v.k = field_value::kind::text;
      if (s.which == T::TEXT) {
        auto t = pointers[s.offset].getAs<capnp::Text>();
        v.text = {t.cStr(), t.size()};
      } else {
        auto d = pointers[s.offset].getAs<capnp::Data>();
        v.text = {reinterpret_cast<const char*>(d.begin()), d.size()};
      }
      return v;
    }
    case T::BOOL: {
      uint64_t byte = data_bits(data, s.offset / 8, 1);
      v.k = field_value::kind::boolean;
      v.b = (((byte >> (s.offset % 8)) & 1) ^ s.default_bits) != 0;
      return v;
    }
    default:
      break;
    }
    unsigned size = bytes_of(s.which);
    uint64_t bits = data_bits(data, s.offset, size) ^ s.default_bits;
    switch (s.which) {
    case T::INT8: v.k = field_value::kind::integer; v.i = static_cast<int8_t>(bits); break;
    case T::INT16: v.k = field_value::kind::integer; v.i = static_cast<int16_t>(bits); break;
    case T::INT32: v.k = field_value::kind::integer; v.i = static_cast<int32_t>(bits); break;
    case T::INT64: v.k = field_value::kind::integer; v.i = static_cast<int64_t>(bits); break;
    case T::UINT8: case T::UINT16: case T::UINT32: case T::UINT64:
      v.k = field_value::kind::unsigned_integer;
      v.u = bits;
      break;
    case T::FLOAT32: {
      float x;
      auto b32 = static_cast<uint32_t>(bits);
      std::memcpy(&x, &b32, 4);
      v.k = field_value::kind::floating;
      v.f = x;
      break;
    }
    case T::FLOAT64:
      v.k = field_value::kind::floating;
      std::memcpy(&v.f, &bits, 8);
      break;
    case T::ENUM:
      v.k = field_value::kind::enumerant;
      v.enumerant = static_cast<uint16_t>(bits);
      break;
    default:
      throw std::logic_error("field '" + text_ + "' cannot be read directly");
    }
    return v;
  }
}

bool field_path::present(capnp::AnyStruct::Reader from) const {
  for (size_t i = 0; i < steps_.size(); ++i) {
    const auto& s = steps_[i];
    if (s.in_union && data_bits(from.getDataSection(), s.union_offset, 2) != s.discriminant)
      return false;
    if (s.group || !s.pointer)
      continue;
    auto pointers = from.getPointerSection();
    if (s.offset >= pointers.size() || pointers[s.offset].isNull())
      return false;
    if (i + 1 < steps_.size())
      from = pointers[s.offset].getAs<capnp::AnyStruct>();
  }
  return true;
}

std::string key_bytes(const field_value& v) {
  switch (v.k) {
  case field_value::kind::text: return std::string(v.text);
  case field_value::kind::integer: return std::to_string(v.i);
  case field_value::kind::unsigned_integer: return std::to_string(v.u);
  default: throw std::invalid_argument("a key must be a Text or an integer");
  }
}

std::string key_bytes(const capnp::DynamicValue::Reader& v) {
  switch (v.getType()) {
  case capnp::DynamicValue::TEXT: {
    auto t = v.as<capnp::Text>();
    return {t.cStr(), t.size()};
  }
  case capnp::DynamicValue::INT:
    return std::to_string(v.as<int64_t>());
  case capnp::DynamicValue::UINT:
    return std::to_string(v.as<uint64_t>());
  default:
    throw std::invalid_argument("a key must be a Text or an integer");
  }
}

std::string key_type_error(capnp::Type t) {
  if (t.which() == capnp::schema::Type::TEXT || is_integer(t.which()))
    return {};
  return "must be a Text or integer field to be a key";
}

} // namespace troupe
