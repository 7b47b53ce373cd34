// What the two halves of expressions share (expression.hpp): expression.cpp evaluates the tree,
// expression_parse.cpp tokenizes, parses and type-checks it. Private to actors/.
#pragma once

#include "expression.hpp"
#include "field_path.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

namespace expression_detail {

// -- values -------------------------------------------------------------------------------------

enum class kind { boolean, number, text, enumerant };

inline const char* kind_name(kind k) {
  switch (k) {
  case kind::boolean: return "a bool";
  case kind::number: return "a number";
  case kind::text: return "text";
  case kind::enumerant: return "an enum";
  }
  return "?";
}

struct number {
  enum class rep { i, u, f } r = rep::i;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
};

// -1, 0, 1 for a < b, a == b, a > b; integers compare exactly, a float with anything as doubles.
inline int compare_numbers(const number& a, const number& b) {
  using rep = number::rep;
  auto as_double = [](const number& n) {
    return n.r == rep::i ? static_cast<double>(n.i) : n.r == rep::u ? static_cast<double>(n.u) : n.f;
  };
  if (a.r == rep::f || b.r == rep::f) {
    double x = as_double(a), y = as_double(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.r == rep::i && b.r == rep::i)
    return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
  if (a.r == rep::u && b.r == rep::u)
    return a.u < b.u ? -1 : a.u > b.u ? 1 : 0;
  if (a.r == rep::i) // a signed, b unsigned
    return a.i < 0 ? -1 : static_cast<uint64_t>(a.i) < b.u ? -1 : static_cast<uint64_t>(a.i) > b.u;
  return -compare_numbers(b, a);
}

struct value {
  kind k = kind::boolean;
  bool b = false;
  number n;
  std::string_view text;
  uint16_t enumerant = 0;
};

} // namespace expression_detail

struct expression::node {
  enum class what { literal, field, has, not_, and_, or_, compare, in, starts_with, contains } w;
  std::string op;  // for compare
  expression_detail::kind k = expression_detail::kind::boolean; // the type of what it yields
  expression_detail::value lit; // a literal's value
  std::string lit_text;     // a literal string's storage
  std::optional<field_path> path;
  std::optional<capnp::EnumSchema> enum_schema;
  std::vector<std::unique_ptr<node>> args;
  size_t column = 0;

  expression_detail::value eval(capnp::AnyStruct::Reader r) const;
  bool test(capnp::AnyStruct::Reader r) const { return eval(r).b; }
};

} // namespace troupe
