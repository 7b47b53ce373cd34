// expression.hpp: evaluating the tree (built by expression_parse.cpp) over a record's struct.
#include "expression_tree.hpp"

namespace troupe {

using namespace expression_detail;

expression_error::expression_error(size_t column, const std::string& what)
    : std::invalid_argument(what + " (at column " + std::to_string(column) + ")"),
      column_(column) {}

namespace {

value read_field(const field_value& v) {
  value out;
  switch (v.k) {
  case field_value::kind::boolean:
    out.k = kind::boolean;
    out.b = v.b;
    break;
  case field_value::kind::integer:
    out.k = kind::number;
    out.n.r = number::rep::i;
    out.n.i = v.i;
    break;
  case field_value::kind::unsigned_integer:
    out.k = kind::number;
    out.n.r = number::rep::u;
    out.n.u = v.u;
    break;
  case field_value::kind::floating:
    out.k = kind::number;
    out.n.r = number::rep::f;
    out.n.f = v.f;
    break;
  case field_value::kind::text:
    out.k = kind::text;
    out.text = v.text;
    break;
  case field_value::kind::enumerant:
    out.k = kind::enumerant;
    out.enumerant = v.enumerant;
    break;
  }
  return out;
}

bool equal(const value& a, const value& b) {
  switch (a.k) {
  case kind::boolean: return a.b == b.b;
  case kind::number: return compare_numbers(a.n, b.n) == 0;
  case kind::text: return a.text == b.text;
  case kind::enumerant: return a.enumerant == b.enumerant;
  }
  return false;
}

value boolean(bool b) {
  value v;
  v.k = kind::boolean;
  v.b = b;
  return v;
}

} // namespace

value expression::node::eval(capnp::AnyStruct::Reader r) const {
  switch (w) {
  case what::literal:
    return lit;
  case what::field: {
    auto v = path->read(r);
    if (!v)
      throw missing_field(path->text());
    return read_field(*v);
  }
  case what::has:
    return boolean(path->present(r));
  case what::not_:
    return boolean(!args[0]->test(r));
  case what::and_:
    return boolean(args[0]->test(r) && args[1]->test(r));
  case what::or_:
    return boolean(args[0]->test(r) || args[1]->test(r));
  case what::compare: {
    auto a = args[0]->eval(r), b = args[1]->eval(r);
    if (op == "==")
      return boolean(equal(a, b));
    if (op == "!=")
      return boolean(!equal(a, b));
    int c = a.k == kind::number ? compare_numbers(a.n, b.n) : a.text.compare(b.text);
    return boolean(op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0);
  }
  case what::in: {
    auto a = args[0]->eval(r);
    for (size_t i = 1; i < args.size(); ++i)
      if (equal(a, args[i]->lit))
        return boolean(true);
    return boolean(false);
  }
  case what::starts_with: {
    auto a = args[0]->eval(r), b = args[1]->eval(r);
    return boolean(a.text.substr(0, b.text.size()) == b.text);
  }
  case what::contains: {
    auto a = args[0]->eval(r), b = args[1]->eval(r);
    return boolean(a.text.find(b.text) != std::string_view::npos);
  }
  }
  return boolean(false);
}

expression::~expression() = default;
expression::expression(expression&&) noexcept = default;
expression& expression::operator=(expression&&) noexcept = default;

bool expression::matches(capnp::AnyStruct::Reader record) const {
  return root_->test(record);
}

bool expression::matches(capnp::DynamicStruct::Reader record) const {
  return matches(capnp::AnyStruct::Reader(record));
}

} // namespace troupe
