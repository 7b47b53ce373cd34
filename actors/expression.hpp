// Boolean expressions over the fields of a payload struct, for filter and splitter:
//
//   amount >= 100 && (country == "DE" || country in ["AT", "CH"]) && !has(coupon)
//   name starts_with "Jo" || tags contains "vip" || status == shipped
//
// Operands are field paths (nested through structs and groups), numbers, "strings" or 'strings',
// true and false. Operators: == != < <= > >= (numbers with numbers, text with text; bools and
// enums with == and != only), `in [literal, ...]`, `starts_with` and `contains` (text), `has(path)`
// (the record has the field: a pointer field set, the union member set), `&& || !` and
// parentheses. A bool field alone is a condition. An enum compares with the name of one of its
// enumerants, quoted or not.
//
// An expression is parsed and type-checked against the struct once, when the stage is built, so
// a mistake is reported by `troupe lint` with its column. Evaluating a field the record does not
// have (outside has()) throws missing_field: the stage dead-letters the record, naming the field.
#pragma once

#include <capnp/any.h>
#include <capnp/dynamic.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace troupe {

// A parse or type error; `column` is 1-based within the expression.
class expression_error : public std::invalid_argument {
public:
  expression_error(size_t column, const std::string& what);
  size_t column() const { return column_; }

private:
  size_t column_;
};

class missing_field : public std::runtime_error {
public:
  explicit missing_field(const std::string& path)
      : std::runtime_error("the record has no field '" + path + "'"), path_(path) {}
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

class expression {
public:
  // Throws expression_error.
  expression(capnp::StructSchema schema, const std::string& text);
  ~expression();
  expression(expression&&) noexcept;
  expression& operator=(expression&&) noexcept;

  // Throws missing_field.
  bool matches(capnp::AnyStruct::Reader record) const;
  bool matches(capnp::DynamicStruct::Reader record) const;
  const std::string& text() const { return text_; }

  struct node;

private:
  std::string text_;
  std::unique_ptr<node> root_;
};

} // namespace troupe
