// expression.hpp: a tokenizer and a recursive-descent parser that type-checks as it builds the
// tree against the struct (evaluated by expression.cpp).
#include "expression_tree.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace troupe {

using namespace expression_detail;

namespace {

using node = expression::node;
using node_ptr = std::unique_ptr<node>;

// -- tokens -------------------------------------------------------------------------------------

enum class tok { end, name, number, string, op, lparen, rparen, lbracket, rbracket, comma };

struct token {
  tok kind = tok::end;
  std::string text; // a name or op as written; a string's decoded value
  size_t column = 0;
};

bool name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }

std::vector<token> tokenize(const std::string& s) {
  std::vector<token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    size_t col = i + 1;
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (name_start(c)) {
      size_t j = i;
      while (j < s.size() && name_char(s[j]))
        ++j;
      out.push_back({tok::name, s.substr(i, j - i), col});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '-' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i + 1;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '.' ||
                              ((s[j] == '-' || s[j] == '+') && (s[j - 1] == 'e' || s[j - 1] == 'E'))))
        ++j;
      out.push_back({tok::number, s.substr(i, j - i), col});
      i = j;
    } else if (c == '"' || c == '\'') {
      std::string v;
      size_t j = i + 1;
      for (;; ++j) {
        if (j >= s.size())
          throw expression_error(col, "a string that is never closed");
        if (s[j] == c)
          break;
        if (s[j] == '\\') {
          if (++j >= s.size())
            throw expression_error(col, "a string that is never closed");
          switch (s[j]) {
          case 'n': v += '\n'; break;
          case 't': v += '\t'; break;
          case '\\': case '"': case '\'': v += s[j]; break;
          default:
            throw expression_error(j, std::string("unknown escape '\\") + s[j] +
                                          "' (use \\\\, \\\", \\', \\n or \\t)");
          }
          continue;
        }
        v += s[j];
      }
      out.push_back({tok::string, v, col});
      i = j + 1;
    } else {
      static const char* ops[] = {"==", "!=", "<=", ">=", "&&", "||", "<", ">", "!"};
      bool found = false;
      for (const char* op : ops) {
        size_t n = std::char_traits<char>::length(op);
        if (s.compare(i, n, op) == 0) {
          out.push_back({tok::op, op, col});
          i += n;
          found = true;
          break;
        }
      }
      if (found)
        continue;
      tok k = c == '(' ? tok::lparen : c == ')' ? tok::rparen : c == '[' ? tok::lbracket
            : c == ']' ? tok::rbracket : c == ',' ? tok::comma : tok::end;
      if (k == tok::end) {
        if (c == '=')
          throw expression_error(col, "'=' is not an operator; compare with '=='");
        if (c == '&' || c == '|')
          throw expression_error(col, std::string("'") + c + "' alone is not an operator; use '" +
                                          c + c + "'");
        throw expression_error(col, std::string("unexpected character '") + c + "'");
      }
      out.push_back({k, std::string(1, c), col});
      ++i;
    }
  }
  out.push_back({tok::end, "", s.size() + 1});
  return out;
}

} // namespace

namespace {

class parser {
public:
  parser(capnp::StructSchema schema, const std::string& text)
      : schema_(schema), toks_(tokenize(text)) {}

  node_ptr parse() {
    auto n = parse_or();
    if (peek().kind != tok::end)
      throw expression_error(peek().column, "unexpected '" + peek().text + "' after a complete condition");
    want_bool(*n, "the expression");
    return n;
  }

private:
  const token& peek() const { return toks_[pos_]; }
  const token& take() { return toks_[pos_++]; }
  bool is_op(const char* op) const { return peek().kind == tok::op && peek().text == op; }
  bool is_word(const char* w) const { return peek().kind == tok::name && peek().text == w; }

  static void want_bool(const node& n, const std::string& what) {
    if (n.k != kind::boolean)
      throw expression_error(n.column, what + " is " + kind_name(n.k) + ", not a condition");
  }

  node_ptr make(node::what w, size_t column) {
    auto n = std::make_unique<node>();
    n->w = w;
    n->column = column;
    return n;
  }

  node_ptr binary(node::what w, node_ptr a, node_ptr b, size_t column) {
    auto n = make(w, column);
    n->args.push_back(std::move(a));
    n->args.push_back(std::move(b));
    return n;
  }

  node_ptr parse_or() {
    auto left = parse_and();
    while (is_op("||")) {
      auto col = take().column;
      auto right = parse_and();
      want_bool(*left, "the left side of '||'");
      want_bool(*right, "the right side of '||'");
      left = binary(node::what::or_, std::move(left), std::move(right), col);
    }
    return left;
  }

  node_ptr parse_and() {
    auto left = parse_unary();
    while (is_op("&&")) {
      auto col = take().column;
      auto right = parse_unary();
      want_bool(*left, "the left side of '&&'");
      want_bool(*right, "the right side of '&&'");
      left = binary(node::what::and_, std::move(left), std::move(right), col);
    }
    return left;
  }

  node_ptr parse_unary() {
    if (is_op("!")) {
      auto col = take().column;
      auto inner = parse_unary();
      want_bool(*inner, "what '!' negates");
      auto n = make(node::what::not_, col);
      n->args.push_back(std::move(inner));
      return n;
    }
    return parse_comparison();
  }

  node_ptr parse_comparison() {
    auto left = parse_operand();
    if (peek().kind == tok::op && peek().text != "&&" && peek().text != "||" && peek().text != "!") {
      auto op = take();
      auto right = parse_operand();
      return compare(op, std::move(left), std::move(right));
    }
    if (is_word("in"))
      return parse_in(std::move(left));
    if (is_word("starts_with") || is_word("contains")) {
      auto op = take();
      auto right = parse_operand();
      for (const auto* side : {left.get(), right.get()})
        if (side->k != kind::text)
          throw expression_error(side->column, "'" + op.text + "' takes text on both sides, not " +
                                                   kind_name(side->k));
      auto w = op.text == "contains" ? node::what::contains : node::what::starts_with;
      return binary(w, std::move(left), std::move(right), op.column);
    }
    return left;
  }

  node_ptr parse_in(node_ptr left) {
    auto col = take().column;
    if (peek().kind != tok::lbracket)
      throw expression_error(peek().column, "expected '[' after 'in'");
    take();
    auto n = make(node::what::in, col);
    n->args.push_back(std::move(left));
    for (;;) {
      n->args.push_back(parse_operand());
      check_comparable(*n->args[0], n->args.back(), "in", col);
      if (n->args.back()->w != node::what::literal)
        throw expression_error(n->args.back()->column, "a list after 'in' holds literals, not fields");
      if (peek().kind == tok::comma) {
        take();
        continue;
      }
      if (peek().kind != tok::rbracket)
        throw expression_error(peek().column, "expected ',' or ']' in the list after 'in'");
      take();
      return n;
    }
  }

  node_ptr compare(const token& op, node_ptr a, node_ptr b) {
    check_comparable(*a, b, op.text, op.column);
    if (a->w == node::what::literal && a->k == kind::text && b->k == kind::enumerant)
      throw expression_error(a->column, "put the field first: " + b->path->text() + " " + op.text + " ...");
    bool ordering = op.text != "==" && op.text != "!=";
    if (ordering && (a->k == kind::boolean || a->k == kind::enumerant))
      throw expression_error(op.column, "'" + op.text + "' orders numbers and text, not " +
                                            std::string(a->k == kind::boolean ? "bools" : "enums") +
                                            "; use == or !=");
    auto n = binary(node::what::compare, std::move(a), std::move(b), op.column);
    n->op = op.text;
    return n;
  }

  // Both sides of a comparison of one kind; an enum field against a name becomes an enumerant.
  void check_comparable(const node& a, node_ptr& b, const std::string& op, size_t column) {
    // Against an enum field, a bare word naming one of its enumerants is that enumerant, even
    // when a field has the same name (an enum never equals a field of another type anyway).
    if (a.k == kind::enumerant && a.enum_schema && b->w == node::what::field &&
        b->path->text().find('.') == std::string::npos &&
        a.enum_schema->findEnumerantByName(b->path->text()) != nullptr) {
      b->lit_text = b->path->text();
      b->path.reset();
      b->w = node::what::literal;
      b->k = b->lit.k = kind::enumerant;
      b->enum_schema.reset();
    }
    bool bare_word = b->w == node::what::literal && b->k == kind::enumerant && !b->enum_schema;
    if (bare_word && a.k != kind::enumerant)
      throw expression_error(b->column, "'" + b->lit_text + "': " + schema_.getShortDisplayName().cStr() +
                                            " has no field '" + b->lit_text + "' (a string needs quotes)");
    if (a.k == kind::enumerant && a.enum_schema && b->w == node::what::literal &&
        (b->k == kind::text || b->k == kind::enumerant)) {
      resolve_enumerant(*a.enum_schema, *b);
      return;
    }
    if (a.k == kind::enumerant && b->k == kind::enumerant && a.enum_schema && b->enum_schema &&
        *a.enum_schema != *b->enum_schema)
      throw expression_error(column, "'" + op + "' compares two different enums");
    if (a.k != b->k)
      throw expression_error(b->column, "'" + op + "' compares " + kind_name(a.k) + " with " +
                                            kind_name(b->k));
  }

  void resolve_enumerant(capnp::EnumSchema e, node& lit) {
    KJ_IF_MAYBE (v, e.findEnumerantByName(lit.lit_text)) {
      lit.k = kind::enumerant;
      lit.lit.k = kind::enumerant;
      lit.lit.enumerant = v->getOrdinal();
      lit.enum_schema = e;
      return;
    }
    std::string names;
    for (auto v : e.getEnumerants())
      names += (names.empty() ? "" : ", ") + std::string(v.getProto().getName().cStr());
    throw expression_error(lit.column, "'" + lit.lit_text + "' is not a value of " +
                                           e.getShortDisplayName().cStr() + " (" + names + ")");
  }

  node_ptr parse_operand() {
    const auto& t = peek();
    if (t.kind == tok::lparen) {
      take();
      auto inner = parse_or();
      if (peek().kind != tok::rparen)
        throw expression_error(peek().column, "expected ')'" + found());
      take();
      return inner;
    }
    if (t.kind == tok::number)
      return number_literal(take());
    if (t.kind == tok::string) {
      auto n = make(node::what::literal, t.column);
      n->k = n->lit.k = kind::text;
      n->lit_text = take().text;
      n->lit.text = n->lit_text; // re-pointed after moves by finish()
      return n;
    }
    if (t.kind == tok::name) {
      if (t.text == "true" || t.text == "false") {
        auto n = make(node::what::literal, t.column);
        n->k = n->lit.k = kind::boolean;
        n->lit.b = take().text == "true";
        return n;
      }
      if (t.text == "has")
        return parse_has();
      return field(take());
    }
    throw expression_error(t.column, "expected a field, a number, a string, '(' or '!'" + found());
  }

  std::string found() const {
    return peek().kind == tok::end ? ", found the end" : ", found '" + peek().text + "'";
  }

  node_ptr parse_has() {
    auto col = take().column;
    if (peek().kind != tok::lparen)
      throw expression_error(peek().column, "expected '(' after 'has'");
    take();
    if (peek().kind != tok::name)
      throw expression_error(peek().column, "has() takes a field" + found());
    auto n = make(node::what::has, col);
    n->path = resolve(take());
    if (peek().kind != tok::rparen)
      throw expression_error(peek().column, "expected ')'" + found());
    take();
    return n;
  }

  field_path resolve(const token& t) {
    try {
      return field_path(schema_, t.text);
    } catch (const std::invalid_argument& e) {
      // A bare word that is no field may be an enum's value written without quotes.
      throw expression_error(t.column, e.what());
    }
  }

  static bool after_comparison(const token& before) {
    if (before.kind == tok::lbracket || before.kind == tok::comma)
      return true;
    return before.kind == tok::op && before.text != "&&" && before.text != "||" && before.text != "!";
  }

  node_ptr field(const token& t) {
    // An unquoted word after a comparison with an enum field: an enumerant name, not a field.
    if (t.text.find('.') == std::string::npos && schema_.findFieldByName(t.text) == nullptr &&
        pos_ >= 2 && after_comparison(toks_[pos_ - 2])) {
      auto n = make(node::what::literal, t.column);
      n->k = n->lit.k = kind::enumerant; // resolved (or refused) against the enum it meets
      n->lit_text = t.text;
      return n;
    }
    auto n = make(node::what::field, t.column);
    n->path = resolve(t);
    auto type = n->path->type();
    using T = capnp::schema::Type;
    switch (type.which()) {
    case T::BOOL: n->k = kind::boolean; break;
    case T::INT8: case T::INT16: case T::INT32: case T::INT64:
    case T::UINT8: case T::UINT16: case T::UINT32: case T::UINT64:
    case T::FLOAT32: case T::FLOAT64: n->k = kind::number; break;
    case T::TEXT: case T::DATA: n->k = kind::text; break;
    case T::ENUM:
      n->k = kind::enumerant;
      n->enum_schema = type.asEnum();
      break;
    default:
      throw expression_error(t.column, "'" + t.text + "' is a struct, list or other value that "
                                       "an expression cannot compare; name a field inside it");
    }
    return n;
  }

  node_ptr number_literal(const token& t) {
    auto n = make(node::what::literal, t.column);
    n->k = n->lit.k = kind::number;
    const char* s = t.text.c_str();
    char* end = nullptr;
    errno = 0;
    bool integral = t.text.find_first_of(".eE") == std::string::npos;
    if (integral && t.text[0] == '-') {
      n->lit.n.r = number::rep::i;
      n->lit.n.i = std::strtoll(s, &end, 10);
    } else if (integral) {
      n->lit.n.r = number::rep::u;
      n->lit.n.u = std::strtoull(s, &end, 10);
    } else {
      n->lit.n.r = number::rep::f;
      n->lit.n.f = std::strtod(s, &end);
    }
    if (end == s + t.text.size() && (errno == ERANGE || (!integral && !std::isfinite(n->lit.n.f))))
      throw expression_error(t.column, "'" + t.text + "' is out of range (integers are 64-bit, "
                                       "from -9223372036854775808 to 18446744073709551615)");
    if (end != s + t.text.size())
      throw expression_error(t.column, "'" + t.text + "' is not a number");
    return n;
  }

  capnp::StructSchema schema_;
  std::vector<token> toks_;
  size_t pos_ = 0;
};

// Literal strings point into their node's own storage; nodes are heap-allocated and never move,
// but the string may have been moved into place after the view was taken.
void finish(node& n) {
  if (n.w == node::what::literal && n.k == kind::text)
    n.lit.text = n.lit_text;
  for (auto& a : n.args)
    finish(*a);
}

// An enumerant written without quotes that never met an enum field is an unknown field.
void check_bare_words(const node& n, capnp::StructSchema s) {
  if (n.w == node::what::literal && n.k == kind::enumerant && !n.enum_schema)
    throw expression_error(n.column, "'" + n.lit_text + "': " + s.getShortDisplayName().cStr() +
                                         " has no field '" + n.lit_text + "'");
  for (const auto& a : n.args)
    check_bare_words(*a, s);
}

} // namespace

expression::expression(capnp::StructSchema schema, const std::string& text) : text_(text) {
  if (text.find_first_not_of(" \t\n") == std::string::npos)
    throw expression_error(1, "an empty expression");
  root_ = parser(schema, text).parse();
  check_bare_words(*root_, schema);
  finish(*root_);
}

} // namespace troupe
