// json_decoder: one JSON object into one Cap'n Proto struct, parsed by simdjson's on-demand API
// and written through Cap'n Proto's dynamic API. This file holds the document level (the copy
// into a padded buffer, the top-level checks, trailing content) and turns failures into
// json_error; decode_values.cpp walks the values.
#include "json/decoder_core.hpp"

#include "json/syntax.hpp"

#include <capnp/message.h>
#include <kj/exception.h>

#include <cstring>
#include <new>
#include <stdexcept>

namespace troupe {

std::string json_error::to_string() const {
  std::string s = field.empty() ? message : "field '" + field + "': " + message;
  if (offset)
    s += " at byte " + std::to_string(*offset);
  return s;
}

namespace json_detail {

decoder_core::decoder_core(capnp::StructSchema schema, const json_decode_options& options)
    : tables_(schema), reject_unknown_(options.reject_unknown_fields) {
  levels_.resize(max_depth + 2);
  for (const auto& path : options.required)
    add_required(path);
}

void decoder_core::add_required(const std::string& path) {
  const struct_table* t = &tables_.root();
  required_node* node = &required_;
  std::string so_far;
  size_t start = 0;
  for (;;) {
    auto dot = path.find('.', start);
    auto name = std::string_view(path).substr(start, dot == std::string::npos ? std::string::npos
                                                                              : dot - start);
    int f = t->find(name, 0);
    if (name.empty() || f < 0)
      throw std::invalid_argument("'" + path + "': " +
                                  (so_far.empty() ? std::string("the payload struct")
                                                  : "'" + so_far + "'") +
                                  " has no field '" + std::string(name) + "'");
    auto fi = static_cast<uint32_t>(f);
    if (std::find(node->fields.begin(), node->fields.end(), fi) == node->fields.end())
      node->fields.push_back(fi);
    so_far += (so_far.empty() ? "" : ".") + std::string(name);
    if (dot == std::string::npos)
      return;
    const auto& type = t->fields[fi].type;
    if (type.what != kind::struct_)
      throw std::invalid_argument("'" + path + "': '" + so_far + "' is " +
                                  (type.what == kind::list ? "a list" : kind_name(type.what)) +
                                  ", not a struct or group: a path goes through structs only");
    auto* child = const_cast<required_node*>(node->child(fi));
    if (!child) {
      node->children.emplace_back(fi, std::make_unique<required_node>());
      child = node->children.back().second.get();
    }
    node = child;
    t = type.st;
    start = dot + 1;
  }
}

std::optional<json_error> decoder_core::decode(std::string_view json,
                                               capnp::DynamicStruct::Builder out) {
  message_.clear();
  path_.clear();
  parse_error_ = simdjson::SUCCESS;
  offset_.reset();
  if (json.size() + simdjson::SIMDJSON_PADDING > capacity_) {
    capacity_ = std::max<size_t>(json.size() + simdjson::SIMDJSON_PADDING, 2 * capacity_);
    buffer_.reset(new char[capacity_]);
  }
  std::memcpy(buffer_.get(), json.data(), json.size());
  std::memset(buffer_.get() + json.size(), 0, simdjson::SIMDJSON_PADDING);

  bool ok = false;
  try {
    od::document doc;
    od::json_type type;
    od::object obj;
    const char* rest = nullptr;
    if (auto e = parser_.iterate(buffer_.get(), json.size(), capacity_).get(doc))
      fail_parse(e);
    else if ((e = doc.type().get(type)))
      fail_parse(e);
    else if (type != od::json_type::object)
      fail_parse(simdjson::INCORRECT_TYPE); // the checker says what it is instead
    else if ((e = doc.get_object().get(obj)))
      fail_parse(e);
    else if (!object(obj, tables_.root(), out, &required_, 1))
      ; // the message is set
    else if (doc.current_location().get(rest) == simdjson::SUCCESS) // something after the '}'
      fail_parse(simdjson::TRAILING_CONTENT);
    else
      ok = true;
  } catch (const kj::Exception& e) {
    // Cap'n Proto refuses what it cannot hold (a list of more than 2^29 elements, say).
    path_.clear();
    fail("the value is too large for a record");
  }
  if (ok)
    return std::nullopt;
  return report(json);
}

json_error decoder_core::report(std::string_view json) {
  json_error err;
  if (parse_error_ != simdjson::SUCCESS) {
    // simdjson says only that something is wrong; the plain checker says what, and where.
    if (auto p = check_json_object(json, max_depth)) {
      err.message = std::move(p->message);
      if (p->at_offset)
        err.offset = p->offset;
    } else if (parse_error_ == simdjson::DEPTH_ERROR) {
      err.message = "nested too deeply";
    } else {
      err.message = "not valid JSON";
    }
    return err;
  }
  for (auto it = path_.rbegin(); it != path_.rend(); ++it) {
    if (it->name.empty()) {
      err.field += "[" + std::to_string(it->index) + "]";
    } else {
      if (!err.field.empty())
        err.field += '.';
      err.field += it->name;
    }
  }
  err.message = std::move(message_);
  err.offset = offset_;
  return err;
}

bool decoder_core::fail(std::string message) {
  message_ = std::move(message);
  return false;
}

bool decoder_core::fail_parse(simdjson::error_code e) {
  parse_error_ = e;
  return false;
}

} // namespace json_detail

// -- json_decoder -------------------------------------------------------------------------------

struct json_decoder::impl {
  explicit impl(capnp::StructSchema schema, const json_decode_options& options)
      : core(schema, options) {}
  ~impl() { close_message(); }

  void close_message() {
    if (message) {
      message->~MallocMessageBuilder(); // zeroes the part of `first_segment` it used
      message = nullptr;
    }
  }

  json_detail::decoder_core core;
  // The message of decode(json, reader): its first segment is ours, zeroed, and reused.
  static constexpr size_t first_segment_words = 1024;
  std::unique_ptr<capnp::word[]> first_segment{new capnp::word[first_segment_words]()};
  alignas(capnp::MallocMessageBuilder) unsigned char storage[sizeof(capnp::MallocMessageBuilder)];
  capnp::MallocMessageBuilder* message = nullptr;
};

json_decoder::json_decoder(capnp::StructSchema schema, json_decode_options options)
    : impl_(std::make_unique<impl>(schema, options)) {}
json_decoder::~json_decoder() = default;
json_decoder::json_decoder(json_decoder&&) noexcept = default;
json_decoder& json_decoder::operator=(json_decoder&&) noexcept = default;

std::optional<json_error> json_decoder::decode(std::string_view json,
                                               capnp::DynamicStruct::Builder out) {
  return impl_->core.decode(json, out);
}

std::optional<json_error> json_decoder::decode(std::string_view json,
                                               capnp::DynamicStruct::Reader& value) {
  auto& m = *impl_;
  m.close_message();
  m.message = new (m.storage) capnp::MallocMessageBuilder(
    kj::arrayPtr(m.first_segment.get(), impl::first_segment_words));
  auto root = m.message->initRoot<capnp::DynamicStruct>(m.core.schema());
  auto err = m.core.decode(json, root);
  if (!err)
    value = root.asReader();
  return err;
}

capnp::StructSchema json_decoder::schema() const {
  return impl_->core.schema();
}

} // namespace troupe
