// The fold of reduce and window: count, sum, min, max or avg of a number field, kept as a few
// bytes in state. Integers fold exactly in int64 (a sum that would overflow is refused, so the
// record can be dead-lettered instead of wrapping); floats in doubles; avg keeps the sum and the
// count and divides once, at the end.
#pragma once

#include "field_path.hpp"

#include <troupe/stage.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace troupe {

class aggregator {
public:
  enum class op { count, sum, min, max, avg };

  // Reads `op` and `field` (the input's number field, for all but count) and checks that the
  // output struct's value field (`value_field`, default "value") can hold the result. `who`
  // names the stage type in messages. `with_count`: the state also counts the records of an op
  // that would not (for a window's count field).
  aggregator(const params& p, const char* who, capnp::StructSchema out, bool with_count);

  // Folds the record into `acc` (empty: nothing folded yet). Returns why it cannot (the field is
  // missing, an integer overflows), or an empty string; `acc` is then unchanged.
  std::string fold(std::string& acc, const record& r, std::string_view key) const;
  // Writes the result into the output's value field.
  void write(capnp::DynamicStruct::Builder out, std::string_view acc) const;
  // How many records were folded (0 when the state does not count them).
  uint64_t count(std::string_view acc) const;

private:
  struct value {
    int64_t i = 0;
    double f = 0;
    uint64_t n = 0;
  };
  bool counted() const { return with_count_ || op_ == op::avg; }
  std::optional<value> decode(std::string_view acc) const;
  std::string encode(const value& v) const;

  op op_;
  std::string name_;
  std::optional<field_path> field_; // what sum, min, max and avg fold
  bool int_fold_ = false;           // folding integers exactly (int64), else doubles
  bool integral_ = false;           // and the result is one (not an avg)
  bool with_count_ = false;
  capnp::StructSchema::Field value_field_;
};

// A top-level field of `s` named by the param `key` (default `fallback`), of a type `fits`
// accepts; a config_error naming `key` otherwise.
capnp::StructSchema::Field field_param(const params& p, capnp::StructSchema s,
                                       const std::string& key, const std::string& fallback,
                                       bool (*fits)(capnp::Type), const char* wanted);
bool is_text_type(capnp::Type t);
bool is_integer_type(capnp::Type t);
bool is_number_type(capnp::Type t);
// The struct of the `out` port's edge; a config_error when it carries none.
capnp::StructSchema output_struct(const params& p, const char* who);

} // namespace troupe
