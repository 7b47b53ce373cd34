#include "field_path.hpp"

namespace troupe {

namespace {

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

bool is_pointer(capnp::schema::Type::Which t) {
  using T = capnp::schema::Type;
  return t == T::TEXT || t == T::DATA || t == T::LIST || t == T::STRUCT || t == T::ANY_POINTER;
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
    const auto& f = fields_[i];
    // A union member that is not the one set has no value; nor has a pointer that is not set.
    if (f.getProto().getDiscriminantValue() != capnp::schema::Field::NO_DISCRIMINANT) {
      KJ_IF_MAYBE (set, from.which()) {
        if (*set != f)
          return std::nullopt;
      } else {
        return std::nullopt;
      }
    }
    bool group = f.getProto().isGroup();
    if (!group && is_pointer(f.getType().which()) && !from.has(f))
      return std::nullopt;
    auto v = from.get(f);
    if (i + 1 == fields_.size())
      return v;
    from = v.as<capnp::DynamicStruct>();
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
