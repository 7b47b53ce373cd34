// The JSON decoder's working parts, shared by decoder.cpp (the public API, the document, error
// reports) and decode_values.cpp (objects, values, lists). Private to the json module.
//
// Errors travel as `false` returned up the recursion; the innermost failure sets the message,
// and each level on the way up adds its field name or list index to the path (in reverse order:
// the path is assembled when the error is reported).
#pragma once

#include "json/schema_table.hpp"

#include <troupe/json.hpp>

#include <simdjson.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::json_detail {

namespace od = simdjson::ondemand;

// Nesting limit, counting objects and arrays: a payload read back must stay within Cap'n Proto's
// nesting limit of 64 (codec.hpp), one level of which is the Envelope.
constexpr unsigned max_depth = 60;

// Which fields must be present in an object reached along required paths (see
// json_decode_options::required): `fields` of this object, `children` for the objects below.
struct required_node {
  std::vector<uint32_t> fields;
  std::vector<std::pair<uint32_t, std::unique_ptr<required_node>>> children;
  const required_node* child(uint32_t field) const {
    for (const auto& c : children)
      if (c.first == field)
        return c.second.get();
    return nullptr;
  }
};

// Per nesting level, reused from object to object so a decode allocates nothing: which fields
// this object has given (for duplicates), which non-null (for required), and unknown keys.
struct object_level {
  std::vector<uint64_t> seen, present;
  std::vector<std::string_view> unknown; // views into the parser's string buffer
  void reset(size_t fields) {
    seen.assign((fields + 63) / 64, 0);
    present.assign((fields + 63) / 64, 0);
    unknown.clear();
  }
  static bool test(const std::vector<uint64_t>& bits, size_t i) {
    return (bits[i / 64] >> (i % 64)) & 1;
  }
  static void mark(std::vector<uint64_t>& bits, size_t i) { bits[i / 64] |= uint64_t{1} << (i % 64); }
};

struct path_segment {
  std::string_view name; // empty for a list index
  size_t index = 0;
};

class decoder_core {
public:
  decoder_core(capnp::StructSchema schema, const json_decode_options& options);

  std::optional<json_error> decode(std::string_view json, capnp::DynamicStruct::Builder out);

  capnp::StructSchema schema() const { return tables_.root().schema; }

  // -- used by decode_values.cpp ----------------------------------------------------------------
  bool object(od::object& obj, const struct_table& t, capnp::DynamicStruct::Builder b,
              const required_node* req, unsigned depth);
  template <class Slot>
  bool value_into(Slot slot, od::value& v, od::json_type jt, const type_desc& t,
                  const required_node* req, unsigned depth);
  template <class Slot> bool integer(Slot slot, od::value& v, kind k);
  template <class Slot> bool floating(Slot slot, od::value& v, od::json_type jt, kind k);
  template <class Slot> bool enumerant(Slot slot, od::value& v, od::json_type jt, const enum_table& e);
  template <class Slot> bool data(Slot slot, od::value& v, od::json_type jt);
  bool list(capnp::DynamicList::Builder l, od::array& arr, const type_desc& elem, unsigned depth);
  bool skip(od::value& v, unsigned depth); // checks an ignored value

  // Failures: each sets the message and returns false.
  bool fail(std::string message);
  bool fail_parse(simdjson::error_code e); // the text is not valid JSON: diagnosed afterwards
  bool mismatch(const char* expected, od::json_type found);
  bool fail_number(od::value& v, simdjson::error_code e, kind k); // malformed or out of range
  bool at(std::string_view name) { // adds a field name to the path of the error in flight
    path_.push_back({name, 0});
    return false;
  }
  bool at(size_t index) {
    path_.push_back({{}, index});
    return false;
  }

private:
  json_error report(std::string_view json);
  void add_required(const std::string& path);

  schema_tables tables_;
  bool reject_unknown_;
  required_node required_;
  od::parser parser_;
  std::unique_ptr<char[]> buffer_; // the text, copied, with simdjson's padding after it
  size_t capacity_ = 0;
  std::vector<object_level> levels_; // by depth; reserved up front, never reallocated
  // The error in flight.
  std::string message_;
  std::vector<path_segment> path_; // innermost first
  simdjson::error_code parse_error_ = simdjson::SUCCESS;
  std::optional<size_t> offset_;
};

} // namespace troupe::json_detail
