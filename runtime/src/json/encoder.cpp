// json_encoder: a Cap'n Proto struct, read through the dynamic API, appended to a std::string as
// one JSON object (the mapping is in troupe/json.hpp). Keys come pre-escaped from the schema
// tables; numbers are written by std::to_chars (floating point in its shortest form that reads
// back to the same value).
#include "json/base64.hpp"
#include "json/raw_fields.hpp"
#include "json/schema_table.hpp"
#include "json/utf8.hpp"

#include <troupe/json.hpp>

#include <array>
#include <charconv>
#include <cmath>

namespace troupe {

namespace {

// 0: copied as is; 1: needs an escape; 2: starts a UTF-8 sequence, to be checked.
constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> c{};
  for (int i = 0; i < 0x20; ++i)
    c[i] = 1;
  c['"'] = 1;
  c['\\'] = 1;
  for (int i = 0x80; i < 0x100; ++i)
    c[i] = 2;
  return c;
}
constexpr auto char_class = make_classes();

void append_escape(std::string& out, unsigned char c) {
  switch (c) {
    case '"': out += "\\\""; return;
    case '\\': out += "\\\\"; return;
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    case '\b': out += "\\b"; return;
    case '\f': out += "\\f"; return;
    default: {
      static const char* hex = "0123456789abcdef";
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      out.append(u, 6);
    }
  }
}

template <class T> void append_number(std::string& out, T x) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, x);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

template <class T> void append_float(std::string& out, T x) {
  if (std::isnan(x))
    out += "\"NaN\"";
  else if (std::isinf(x))
    out += x > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  else if (x == 0 && std::signbit(x))
    out += "-0.0"; // "-0" reads back as the integer 0 in some languages (Python): keep the sign
  else
    append_number(out, x);
}

} // namespace

bool append_json_string(std::string& out, std::string_view text) {
  size_t start = out.size();
  out += '"';
  size_t run = 0; // start of the bytes not yet copied
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    uint8_t cls = char_class[c];
    if (cls == 0) {
      ++i;
    } else if (cls == 2) {
      size_t n = json_detail::utf8_sequence_length(text, i);
      if (n == 0) {
        out.resize(start);
        return false;
      }
      i += n;
    } else {
      out.append(text.data() + run, i - run);
      append_escape(out, c);
      run = ++i;
    }
  }
  out.append(text.data() + run, text.size() - run);
  out += '"';
  return true;
}

namespace json_detail {

class encoder_core {
public:
  explicit encoder_core(capnp::StructSchema schema) : tables_(schema) {}

  std::optional<json_error> encode(capnp::DynamicStruct::Reader value, std::string& out) {
    size_t start = out.size();
    path_.clear();
    if (encode_struct(value, tables_.root(), out))
      return std::nullopt;
    out.resize(start);
    json_error err;
    for (auto it = path_.rbegin(); it != path_.rend(); ++it)
      err.field += it->empty() || it->front() == '[' || err.field.empty() ? *it : "." + *it;
    err.message = std::move(message_);
    return err;
  }

private:
  bool encode_struct(capnp::DynamicStruct::Reader r, const struct_table& t, std::string& out) {
    auto raw = r.as<capnp::AnyStruct>();
    auto data = raw.getDataSection();
    auto pointers = raw.getPointerSection();
    uint16_t active = t.has_union ? load_field<uint16_t>(data, t.discriminant_offset, 0) : 0;
    out += '{';
    bool first = true;
    for (const auto& f : t.fields) {
      if (f.in_union && f.discriminant != active)
        continue;
      if (!first)
        out += ',';
      first = false;
      out += f.key;
      if (!encode_field(r, data, pointers, f, out))
        return at(f.name);
    }
    out += '}';
    return true;
  }

  // Primitives, and set pointers of the common kinds, are read in place (raw_fields.hpp);
  // everything else, unset pointers included (their defaults), through the dynamic API.
  bool encode_field(capnp::DynamicStruct::Reader r, kj::ArrayPtr<const kj::byte> data,
                    capnp::List<capnp::AnyPointer>::Reader pointers, const field_desc& f,
                    std::string& out) {
    auto bits = f.default_bits;
    switch (f.type.what) {
      case kind::void_: out += "null"; return true;
      case kind::bool_: out += load_bool(data, f.offset, bits) ? "true" : "false"; return true;
      case kind::int8: append_number(out, load_field<int8_t>(data, f.offset, bits)); return true;
      case kind::int16: append_number(out, load_field<int16_t>(data, f.offset, bits)); return true;
      case kind::int32: append_number(out, load_field<int32_t>(data, f.offset, bits)); return true;
      case kind::int64: append_number(out, load_field<int64_t>(data, f.offset, bits)); return true;
      case kind::uint8: append_number(out, load_field<uint8_t>(data, f.offset, bits)); return true;
      case kind::uint16: append_number(out, load_field<uint16_t>(data, f.offset, bits)); return true;
      case kind::uint32: append_number(out, load_field<uint32_t>(data, f.offset, bits)); return true;
      case kind::uint64: append_number(out, load_field<uint64_t>(data, f.offset, bits)); return true;
      case kind::float32: append_float(out, load_field<float>(data, f.offset, bits)); return true;
      case kind::float64: append_float(out, load_field<double>(data, f.offset, bits)); return true;
      case kind::enum_: append_enum(out, load_field<uint16_t>(data, f.offset, bits), *f.type.en); return true;
      default: break;
    }
    if (f.is_group)
      return encode_struct(r.get(f.field).as<capnp::DynamicStruct>(), *f.type.st, out);
    bool set = f.offset < pointers.size() && !pointers[f.offset].isNull();
    switch (f.type.what) {
      case kind::struct_:
        if (!set) {
          out += "null";
          return true;
        }
        return encode_struct(pointers[f.offset].getAs<capnp::DynamicStruct>(f.type.st->schema),
                             *f.type.st, out);
      case kind::text:
        if (set)
          return encode_text(pointers[f.offset].getAs<capnp::Text>(), out);
        break;
      case kind::any_pointer: case kind::capability:
        if (set) {
          message_ = std::string("a set field of type ") + kind_name(f.type.what) +
                     " cannot be written as JSON";
          return false;
        }
        out += "null";
        return true;
      default:
        break;
    }
    return encode_value(r.get(f.field), f.type, out);
  }

  bool encode_text(capnp::Text::Reader s, std::string& out) {
    if (append_json_string(out, {s.cStr(), s.size()}))
      return true;
    auto bad = find_invalid_utf8({s.cStr(), s.size()});
    message_ = "invalid UTF-8 at byte " + std::to_string(bad.value_or(0)) + " of the text";
    return false;
  }

  static void append_enum(std::string& out, uint16_t raw, const enum_table& e) {
    if (raw < e.names.size()) {
      out += '"';
      out += e.names[raw]; // an identifier: nothing to escape
      out += '"';
    } else {
      append_number(out, raw);
    }
  }

  bool encode_value(capnp::DynamicValue::Reader v, const type_desc& t, std::string& out) {
    switch (t.what) {
      case kind::void_: out += "null"; return true;
      case kind::bool_: out += v.as<bool>() ? "true" : "false"; return true;
      case kind::int8: case kind::int16: case kind::int32: case kind::int64:
        append_number(out, v.as<int64_t>());
        return true;
      case kind::uint8: case kind::uint16: case kind::uint32: case kind::uint64:
        append_number(out, v.as<uint64_t>());
        return true;
      case kind::float32: append_float(out, v.as<float>()); return true;
      case kind::float64: append_float(out, v.as<double>()); return true;
      case kind::text: return encode_text(v.as<capnp::Text>(), out);
      case kind::data: {
        auto d = v.as<capnp::Data>();
        out += '"';
        append_base64(out, d.begin(), d.size());
        out += '"';
        return true;
      }
      case kind::enum_: append_enum(out, v.as<capnp::DynamicEnum>().getRaw(), *t.en); return true;
      case kind::list: {
        auto l = v.as<capnp::DynamicList>();
        out += '[';
        for (unsigned i = 0; i < l.size(); ++i) {
          if (i)
            out += ',';
          if (!encode_value(l[i], *t.elem, out)) {
            path_.push_back("[" + std::to_string(i) + "]");
            return false;
          }
        }
        out += ']';
        return true;
      }
      case kind::struct_: return encode_struct(v.as<capnp::DynamicStruct>(), *t.st, out);
      case kind::any_pointer: case kind::capability:
        out += "null"; // only inside a list, which Cap'n Proto does not allow for these
        return true;
    }
    return true;
  }

  bool at(const std::string& name) {
    path_.push_back(name);
    return false;
  }

  schema_tables tables_;
  std::vector<std::string> path_; // innermost first; list indexes as "[i]"
  std::string message_;
};

} // namespace json_detail

struct json_encoder::impl {
  explicit impl(capnp::StructSchema schema) : core(schema) {}
  json_detail::encoder_core core;
};

json_encoder::json_encoder(capnp::StructSchema schema) : impl_(std::make_unique<impl>(schema)) {}
json_encoder::~json_encoder() = default;
json_encoder::json_encoder(json_encoder&&) noexcept = default;
json_encoder& json_encoder::operator=(json_encoder&&) noexcept = default;

std::optional<json_error> json_encoder::encode(capnp::DynamicStruct::Reader value,
                                               std::string& out) {
  return impl_->core.encode(value, out);
}

} // namespace troupe
