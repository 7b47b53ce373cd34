// Recursive descent over RFC 8259's grammar, stopping at the first problem (see syntax.hpp).
#include "json/syntax.hpp"

#include "json/utf8.hpp"

#include <algorithm>
#include <cctype>

namespace troupe::json_detail {

namespace {

class checker {
public:
  checker(std::string_view text, unsigned max_depth) : s_(text), max_depth_(max_depth) {}

  std::optional<syntax_problem> run() {
    if (auto bad = find_invalid_utf8(s_))
      return syntax_problem{*bad, "invalid UTF-8"};
    skip_ws();
    if (i_ == s_.size())
      return syntax_problem{i_, "no JSON object (the text is empty or blank)", false};
    if (size_t start = i_; s_[start] != '{') {
      if (!value(0))
        return problem_;
      return syntax_problem{start, "expected a JSON object, found " + what_started(s_[start])};
    }
    if (!value(0))
      return problem_;
    skip_ws();
    if (i_ != s_.size())
      return syntax_problem{i_, "unexpected " + describe_char() + " after the end of the object"};
    return std::nullopt;
  }

private:
  static std::string what_started(char c) {
    switch (c) {
      case '[': return "an array";
      case '"': return "a string";
      case 't': case 'f': return "a boolean";
      case 'n': return "null";
      default: return "a number";
    }
  }
  std::string describe_char() const {
    if (i_ >= s_.size())
      return "the end of the text";
    unsigned char c = static_cast<unsigned char>(s_[i_]);
    if (c >= 0x20 && c < 0x7f)
      return std::string("'") + static_cast<char>(c) + "'";
    static const char* hex = "0123456789abcdef";
    return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
  }
  bool fail(std::string message) {
    problem_ = syntax_problem{i_, std::move(message)};
    return false;
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) {
      size_t end = i_;
      while (end < s_.size() && end - i_ < 20 && std::isalnum(static_cast<unsigned char>(s_[end])))
        ++end;
      return fail("'" + std::string(s_.substr(i_, std::max<size_t>(end - i_, 1))) +
                  "' is not JSON (expected " + std::string(word) +
                  "; a string needs double quotes)");
    }
    i_ += word.size();
    return true;
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-')
      ++i_;
    if (i_ >= s_.size() || !digit(s_[i_]))
      return fail("malformed number");
    if (s_[i_] == '0' && i_ + 1 < s_.size() && digit(s_[i_ + 1])) {
      i_ = start;
      return fail("malformed number (a leading zero)");
    }
    while (i_ < s_.size() && digit(s_[i_]))
      ++i_;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (i_ >= s_.size() || !digit(s_[i_]))
        return fail("malformed number (no digit after '.')");
      while (i_ < s_.size() && digit(s_[i_]))
        ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-'))
        ++i_;
      if (i_ >= s_.size() || !digit(s_[i_]))
        return fail("malformed number (no digit in the exponent)");
      while (i_ < s_.size() && digit(s_[i_]))
        ++i_;
    }
    return true;
  }

  bool hex4(unsigned& out) {
    out = 0;
    for (int k = 0; k < 4; ++k, ++i_) {
      int h = i_ < s_.size() ? hex_value(s_[i_]) : -1;
      if (h < 0)
        return fail("malformed \\u escape (expected 4 hex digits)");
      out = out * 16 + static_cast<unsigned>(h);
    }
    return true;
  }

  bool string() {
    ++i_; // the opening quote
    while (i_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20)
        return fail("a control character (" + describe_char() + ") inside a string must be "
                    "escaped");
      if (c != '\\') {
        ++i_;
        continue;
      }
      size_t escape = i_++;
      if (i_ >= s_.size())
        break;
      char e = s_[i_];
      if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
          e == 't') {
        ++i_;
        continue;
      }
      if (e != 'u') {
        i_ = escape;
        return fail("invalid escape '\\" + std::string(1, e) + "' in a string");
      }
      ++i_;
      unsigned code = 0;
      if (!hex4(code))
        return false;
      if (code >= 0xDC00 && code <= 0xDFFF) {
        i_ = escape;
        return fail("a lone low surrogate (\\u" + std::string(s_.substr(escape + 2, 4)) +
                    ") in a string");
      }
      if (code >= 0xD800 && code <= 0xDBFF) {
        unsigned low = 0;
        if (s_.substr(i_, 2) != "\\u") {
          i_ = escape;
          return fail("a high surrogate (\\u" + std::string(s_.substr(escape + 2, 4)) +
                      ") not followed by a low surrogate");
        }
        i_ += 2;
        if (!hex4(low))
          return false;
        if (low < 0xDC00 || low > 0xDFFF) {
          i_ = escape;
          return fail("a high surrogate (\\u" + std::string(s_.substr(escape + 2, 4)) +
                      ") not followed by a low surrogate");
        }
      }
    }
    return fail("a string is not closed before the end of the text");
  }

  bool value(unsigned depth) {
    skip_ws();
    if (i_ >= s_.size())
      return fail("expected a value, found the end of the text");
    char c = s_[i_];
    switch (c) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1);
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default:
        if (c == '-' || digit(c))
          return number();
        return fail("expected a value, found " + describe_char());
    }
  }

  bool array(unsigned depth) {
    if (depth > max_depth_)
      return fail("nested more than " + std::to_string(max_depth_) + " levels deep");
    ++i_;
    skip_ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return true;
    }
    for (;;) {
      if (!value(depth))
        return false;
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return true;
      }
      return fail("expected ',' or ']' in an array, found " + describe_char());
    }
  }

  bool object(unsigned depth) {
    if (depth > max_depth_)
      return fail("nested more than " + std::to_string(max_depth_) + " levels deep");
    ++i_;
    skip_ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != '"')
        return fail("expected a key (a string in double quotes), found " + describe_char());
      if (!string())
        return false;
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != ':')
        return fail("expected ':' after a key, found " + describe_char());
      ++i_;
      if (!value(depth))
        return false;
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return true;
      }
      return fail("expected ',' or '}' in an object, found " + describe_char());
    }
  }

  std::string_view s_;
  unsigned max_depth_;
  size_t i_ = 0;
  syntax_problem problem_;
};

} // namespace

std::optional<syntax_problem> check_json_object(std::string_view text, unsigned max_depth) {
  return checker(text, max_depth).run();
}

bool is_json_number(std::string_view t) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9')
      ++i;
    return i > start;
  };
  if (i < t.size() && t[i] == '-')
    ++i;
  if (i < t.size() && t[i] == '0' && i + 1 < t.size() && t[i + 1] >= '0' && t[i + 1] <= '9')
    return false;
  if (!digits())
    return false;
  if (i < t.size() && t[i] == '.' && (++i, !digits()))
    return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-'))
      ++i;
    if (!digits())
      return false;
  }
  return i == t.size();
}

} // namespace troupe::json_detail
