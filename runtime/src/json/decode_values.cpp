// The JSON decoder's walk over values: an object's fields by the struct's lookup table, each
// value checked against its field's type and written through the dynamic API (see
// decoder_core.hpp for how errors travel).
#include "json/decoder_core.hpp"

#include "json/base64.hpp"
#include "json/raw_fields.hpp"
#include "json/syntax.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace troupe::json_detail {

namespace {

// Where a value goes: a field of a struct (primitives and blobs written in place: see
// raw_fields.hpp), or an element of a list.
struct field_slot {
  capnp::DynamicStruct::Builder& b;
  const field_desc& fd;
  kj::ArrayPtr<kj::byte> data;
  capnp::List<capnp::AnyPointer>::Builder& pointers;

  template <class T> void set(T v) {
    if (!store_field(data, fd.offset, v, fd.default_bits))
      b.set(fd.field, v);
  }
  void set(bool v) {
    if (!store_bool(data, fd.offset, v, fd.default_bits))
      b.set(fd.field, v);
  }
  void set_enum(const enum_table& e, uint16_t v) {
    if (!store_field(data, fd.offset, v, fd.default_bits))
      b.set(fd.field, capnp::DynamicEnum(e.schema, v));
  }
  template <class Blob> typename Blob::Builder init_blob(unsigned size) {
    if (fd.offset < pointers.size())
      return pointers[fd.offset].initAs<Blob>(size);
    return b.init(fd.field, size).as<Blob>();
  }
  capnp::DynamicValue::Builder init(unsigned size) { return b.init(fd.field, size); }
  capnp::DynamicStruct::Builder init_struct() { return b.init(fd.field).as<capnp::DynamicStruct>(); }
};

struct element_slot {
  capnp::DynamicList::Builder& l;
  unsigned i;
  template <class T> void set(T v) { l.set(i, v); }
  void set_enum(const enum_table& e, uint16_t v) { l.set(i, capnp::DynamicEnum(e.schema, v)); }
  template <class Blob> typename Blob::Builder init_blob(unsigned size) {
    return l.init(i, size).as<Blob>();
  }
  capnp::DynamicValue::Builder init(unsigned size) { return l.init(i, size); }
  capnp::DynamicStruct::Builder init_struct() { return l[i].as<capnp::DynamicStruct>(); }
};

const char* found(od::json_type t) {
  switch (t) {
    case od::json_type::array: return "an array";
    case od::json_type::object: return "an object";
    case od::json_type::number: return "a number";
    case od::json_type::string: return "a string";
    case od::json_type::boolean: return "a boolean";
    case od::json_type::null: return "null";
  }
  return "something else";
}

// The value's text as it is in the JSON, without the whitespace after it.
std::string_view raw_token(od::value& v) {
  auto t = v.raw_json_token();
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t' || t.back() == '\n' || t.back() == '\r'))
    t.remove_suffix(1);
  return t;
}

// The same, cut short for a message.
std::string shown(od::value& v) {
  auto t = raw_token(v);
  return t.size() > 40 ? std::string(t.substr(0, 40)) + "..." : std::string(t);
}

struct int_range {
  int64_t min;
  uint64_t max;
};

int_range range_of(kind k) {
  switch (k) {
    case kind::int8: return {INT8_MIN, INT8_MAX};
    case kind::int16: return {INT16_MIN, INT16_MAX};
    case kind::int32: return {INT32_MIN, INT32_MAX};
    case kind::int64: return {INT64_MIN, INT64_MAX};
    case kind::uint8: return {0, UINT8_MAX};
    case kind::uint16: return {0, UINT16_MAX};
    case kind::uint32: return {0, UINT32_MAX};
    default: return {0, UINT64_MAX};
  }
}

template <class Slot> void set_int(Slot& slot, kind k, int64_t x) {
  switch (k) {
    case kind::int8: slot.set(static_cast<int8_t>(x)); break;
    case kind::int16: slot.set(static_cast<int16_t>(x)); break;
    case kind::int32: slot.set(static_cast<int32_t>(x)); break;
    case kind::int64: slot.set(x); break;
    case kind::uint8: slot.set(static_cast<uint8_t>(x)); break;
    case kind::uint16: slot.set(static_cast<uint16_t>(x)); break;
    case kind::uint32: slot.set(static_cast<uint32_t>(x)); break;
    default: slot.set(static_cast<uint64_t>(x)); break;
  }
}

} // namespace

bool decoder_core::mismatch(const char* expected, od::json_type t) {
  return fail(std::string("expected ") + expected + ", found " + found(t));
}

bool decoder_core::fail_number(od::value& v, simdjson::error_code e, kind k) {
  if (!is_json_number(raw_token(v)))
    return fail_parse(e);
  std::string message = shown(v) + " is out of range for " + kind_name(k);
  if (k != kind::float32 && k != kind::float64) {
    auto r = range_of(k);
    message += " (" + std::to_string(r.min) + " to " + std::to_string(r.max) + ")";
  }
  return fail(std::move(message));
}

bool decoder_core::object(od::object& obj, const struct_table& t, capnp::DynamicStruct::Builder b,
                          const required_node* req, unsigned depth) {
  if (depth > max_depth)
    return fail("nested more than " + std::to_string(max_depth) + " levels deep");
  object_level& lv = levels_[depth];
  lv.reset(t.fields.size());
  auto raw = b.as<capnp::AnyStruct>();
  auto data = raw.getDataSection();
  auto pointers = raw.getPointerSection();
  size_t hint = 0;
  int member = -1; // the union member given
  for (auto result : obj) {
    od::field f;
    std::string_view key;
    if (auto e = std::move(result).get(f))
      return fail_parse(e);
    int i = -1;
    // Fast path: the key is the field after the previous one, spelled without escapes.
    if (hint < t.fields.size() && f.key().unsafe_is_equal(t.fields[hint].name)) {
      i = static_cast<int>(hint);
      key = t.fields[hint].name;
    } else if (auto e = f.unescaped_key().get(key)) {
      return fail_parse(e);
    } else {
      i = t.find(key, hint);
    }
    od::value& v = f.value();
    if (i < 0) {
      for (auto seen : lv.unknown)
        if (seen == key)
          return fail("key '" + std::string(key) + "' appears twice");
      lv.unknown.push_back(key);
      if (reject_unknown_) {
        fail("no such field in " + std::string(t.schema.getShortDisplayName().cStr()) +
             " (unknown fields are rejected)");
        return at(key);
      }
      if (!skip(v, depth))
        return false;
      continue;
    }
    auto fi = static_cast<size_t>(i);
    hint = fi + 1;
    if (object_level::test(lv.seen, fi))
      return fail("key '" + std::string(key) + "' appears twice");
    object_level::mark(lv.seen, fi);
    const field_desc& fd = t.fields[fi];
    od::json_type jt;
    if (auto e = v.type().get(jt))
      return fail_parse(e);
    if (jt == od::json_type::null) {
      bool null = false;
      if (auto e = v.is_null().get(null); e || !null)
        return fail_parse(e ? e : simdjson::INCORRECT_TYPE);
      if (fd.type.what != kind::void_)
        continue; // null leaves the default, and selects no union member
    }
    if (fd.in_union) {
      if (member >= 0)
        return fail("fields '" + t.fields[static_cast<size_t>(member)].name + "' and '" +
                    fd.name + "' are members of one union: give at most one");
      member = i;
      if (!store_field<uint16_t>(data, t.discriminant_offset, fd.discriminant, 0))
        b.set(fd.field, capnp::VOID); // (never: a struct we build has the schema's size)
    }
    object_level::mark(lv.present, fi);
    if (jt == od::json_type::null) // a Void field's one value
      continue;
    const required_node* below = req ? req->child(static_cast<uint32_t>(fi)) : nullptr;
    if (!value_into(field_slot{b, fd, data, pointers}, v, jt, fd.type, below, depth))
      return at(fd.name);
  }
  if (req)
    for (auto fi : req->fields)
      if (!object_level::test(lv.present, fi)) {
        fail("missing, and it is required");
        return at(t.fields[fi].name);
      }
  return true;
}

template <class Slot>
bool decoder_core::value_into(Slot slot, od::value& v, od::json_type jt, const type_desc& t,
                              const required_node* req, unsigned depth) {
  switch (t.what) {
    case kind::void_:
      return mismatch("null", jt);
    case kind::bool_: {
      if (jt != od::json_type::boolean)
        return mismatch("true or false", jt);
      bool x = false;
      if (auto e = v.get_bool().get(x))
        return fail_parse(e);
      slot.set(x);
      return true;
    }
    case kind::int8: case kind::int16: case kind::int32: case kind::int64:
    case kind::uint8: case kind::uint16: case kind::uint32: case kind::uint64:
      if (jt != od::json_type::number)
        return mismatch("an integer", jt);
      return integer(slot, v, t.what);
    case kind::float32: case kind::float64:
      return floating(slot, v, jt, t.what);
    case kind::enum_:
      return enumerant(slot, v, jt, *t.en);
    case kind::text: {
      if (jt != od::json_type::string)
        return mismatch("a string", jt);
      std::string_view s;
      if (auto e = v.get_string().get(s))
        return fail_parse(e);
      auto text = slot.template init_blob<capnp::Text>(static_cast<unsigned>(s.size()));
      std::memcpy(text.begin(), s.data(), s.size());
      return true;
    }
    case kind::data:
      return data(slot, v, jt);
    case kind::list: {
      if (jt != od::json_type::array)
        return mismatch("an array", jt);
      od::array arr;
      size_t n = 0;
      if (auto e = v.get_array().get(arr))
        return fail_parse(e);
      if (auto e = arr.count_elements().get(n))
        return fail_parse(e);
      if (depth + 1 > max_depth)
        return fail("nested more than " + std::to_string(max_depth) + " levels deep");
      auto l = slot.init(static_cast<unsigned>(n)).template as<capnp::DynamicList>();
      return list(l, arr, *t.elem, depth + 1);
    }
    case kind::struct_: {
      if (jt != od::json_type::object)
        return mismatch("an object", jt);
      od::object obj;
      if (auto e = v.get_object().get(obj))
        return fail_parse(e);
      return object(obj, *t.st, slot.init_struct(), req, depth + 1);
    }
    case kind::any_pointer: case kind::capability:
      return fail(std::string("a field of type ") + kind_name(t.what) +
                  " cannot be read from JSON (only null is accepted)");
  }
  return fail("unsupported type");
}

bool decoder_core::list(capnp::DynamicList::Builder l, od::array& arr, const type_desc& elem,
                        unsigned depth) {
  unsigned i = 0;
  for (auto result : arr) {
    od::value v;
    od::json_type jt;
    if (auto e = std::move(result).get(v))
      return fail_parse(e);
    if (auto e = v.type().get(jt))
      return fail_parse(e);
    if (jt == od::json_type::null) { // the element keeps its default
      bool null = false;
      if (auto e = v.is_null().get(null); e || !null)
        return fail_parse(e ? e : simdjson::INCORRECT_TYPE);
    } else if (!value_into(element_slot{l, i}, v, jt, elem, nullptr, depth)) {
      return at(size_t{i});
    }
    ++i;
  }
  return true;
}

template <class Slot> bool decoder_core::integer(Slot slot, od::value& v, kind k) {
  od::number_type nt;
  if (auto e = v.get_number_type().get(nt))
    return fail_parse(e);
  auto r = range_of(k);
  if (nt == od::number_type::floating_point_number) {
    if (!is_json_number(raw_token(v)))
      return fail_parse(simdjson::NUMBER_ERROR);
    return fail("expected an integer, found " + shown(v));
  }
  if (nt == od::number_type::unsigned_integer) { // above INT64_MAX
    uint64_t u = 0;
    if (auto e = v.get_uint64().get(u))
      return fail_number(v, e, k);
    if (u > r.max)
      return fail_number(v, simdjson::NUMBER_OUT_OF_RANGE, k);
    slot.set(u);
    return true;
  }
  int64_t x = 0;
  if (auto e = v.get_int64().get(x))
    return fail_number(v, e, k);
  if (x < r.min || (x >= 0 && static_cast<uint64_t>(x) > r.max))
    return fail_number(v, simdjson::NUMBER_OUT_OF_RANGE, k);
  set_int(slot, k, x);
  return true;
}

template <class Slot>
bool decoder_core::floating(Slot slot, od::value& v, od::json_type jt, kind k) {
  double d = 0;
  if (jt == od::json_type::string) { // how the encoder writes what JSON numbers cannot
    std::string_view s;
    if (auto e = v.get_string().get(s))
      return fail_parse(e);
    if (s == "NaN")
      d = std::numeric_limits<double>::quiet_NaN();
    else if (s == "Infinity")
      d = std::numeric_limits<double>::infinity();
    else if (s == "-Infinity")
      d = -std::numeric_limits<double>::infinity();
    else
      return fail("expected a number, found a string");
  } else if (jt != od::json_type::number) {
    return mismatch("a number", jt);
  } else if (auto e = v.get_double().get(d)) {
    return fail_number(v, e, k);
  }
  if (k == kind::float64) {
    slot.set(d);
    return true;
  }
  // Values up to half an ulp beyond FLT_MAX round to it; anything further is out of range.
  constexpr double float_limit = 3.4028235677973366e+38;
  if (std::isfinite(d) && std::fabs(d) >= float_limit)
    return fail_number(v, simdjson::NUMBER_OUT_OF_RANGE, k);
  float f = std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max()
              ? std::copysign(std::numeric_limits<float>::max(), static_cast<float>(d))
              : static_cast<float>(d);
  slot.set(f);
  return true;
}

template <class Slot>
bool decoder_core::enumerant(Slot slot, od::value& v, od::json_type jt, const enum_table& en) {
  if (jt == od::json_type::string) {
    std::string_view s;
    if (auto e = v.get_string().get(s))
      return fail_parse(e);
    int x = en.find(s);
    if (x < 0)
      return fail("expected one of " + en.choices + ", found '" +
                  std::string(s.substr(0, 40)) + "'");
    slot.set_enum(en, static_cast<uint16_t>(x));
    return true;
  }
  if (jt != od::json_type::number) // a number: a value this schema may not name (a newer one)
    return mismatch(("one of " + en.choices).c_str(), jt);
  uint64_t x = 0;
  if (auto e = v.get_uint64().get(x); e || x > UINT16_MAX)
    return fail("expected one of " + en.choices + " or a number 0 to 65535, found " + shown(v));
  slot.set_enum(en, static_cast<uint16_t>(x));
  return true;
}

template <class Slot> bool decoder_core::data(Slot slot, od::value& v, od::json_type jt) {
  if (jt == od::json_type::string) {
    std::string_view s;
    if (auto e = v.get_string().get(s))
      return fail_parse(e);
    auto size = base64_decoded_size(s);
    if (!size)
      return fail("expected base64 (a length that is a multiple of 4, '=' only at the end)");
    auto out = slot.template init_blob<capnp::Data>(static_cast<unsigned>(*size));
    if (auto bad = decode_base64(s, out.begin()))
      return fail("invalid base64 at character " + std::to_string(*bad));
    return true;
  }
  if (jt != od::json_type::array)
    return mismatch("a base64 string or an array of bytes", jt);
  od::array arr;
  size_t n = 0;
  if (auto e = v.get_array().get(arr))
    return fail_parse(e);
  if (auto e = arr.count_elements().get(n))
    return fail_parse(e);
  auto out = slot.template init_blob<capnp::Data>(static_cast<unsigned>(n));
  size_t i = 0;
  for (auto result : arr) {
    od::value el;
    uint64_t x = 0;
    if (auto e = std::move(result).get(el))
      return fail_parse(e);
    if (auto e = el.get_uint64().get(x); e || x > 255) {
      fail("expected a byte (an integer 0 to 255), found " + shown(el));
      return at(i);
    }
    out[i++] = static_cast<uint8_t>(x);
  }
  return true;
}

bool decoder_core::skip(od::value& v, unsigned depth) {
  od::json_type jt;
  if (auto e = v.type().get(jt))
    return fail_parse(e);
  switch (jt) {
    case od::json_type::object: {
      od::object obj;
      if (depth + 1 > max_depth)
        return fail("nested more than " + std::to_string(max_depth) + " levels deep");
      if (auto e = v.get_object().get(obj))
        return fail_parse(e);
      for (auto result : obj) {
        od::field f;
        std::string_view key;
        if (auto e = std::move(result).get(f))
          return fail_parse(e);
        if (auto e = f.unescaped_key().get(key))
          return fail_parse(e);
        if (!skip(f.value(), depth + 1))
          return false;
      }
      return true;
    }
    case od::json_type::array: {
      od::array arr;
      if (depth + 1 > max_depth)
        return fail("nested more than " + std::to_string(max_depth) + " levels deep");
      if (auto e = v.get_array().get(arr))
        return fail_parse(e);
      for (auto result : arr) {
        od::value el;
        if (auto e = std::move(result).get(el))
          return fail_parse(e);
        if (!skip(el, depth + 1))
          return false;
      }
      return true;
    }
    case od::json_type::string: {
      std::string_view s;
      if (auto e = v.get_string().get(s))
        return fail_parse(e);
      return true;
    }
    case od::json_type::number: // any size: the value is not used
      return is_json_number(raw_token(v)) || fail_parse(simdjson::NUMBER_ERROR);
    case od::json_type::boolean: {
      bool b = false;
      if (auto e = v.get_bool().get(b))
        return fail_parse(e);
      return true;
    }
    case od::json_type::null: {
      bool null = false;
      if (auto e = v.is_null().get(null); e || !null)
        return fail_parse(e ? e : simdjson::INCORRECT_TYPE);
      return true;
    }
  }
  return true;
}

} // namespace troupe::json_detail
