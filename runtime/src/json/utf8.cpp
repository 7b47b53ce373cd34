// UTF-8 validation by the table of well-formed byte sequences in the Unicode standard (3.9,
// table 3-7).
#include "json/utf8.hpp"

namespace troupe::json_detail {

namespace {
bool in(unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; }
} // namespace

size_t utf8_sequence_length(std::string_view text, size_t i) {
  auto at = [&](size_t k) -> unsigned char {
    return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0;
  };
  unsigned char c = at(0);
  if (in(c, 0xC2, 0xDF))
    return in(at(1), 0x80, 0xBF) ? 2 : 0;
  if (c == 0xE0)
    return in(at(1), 0xA0, 0xBF) && in(at(2), 0x80, 0xBF) ? 3 : 0;
  if (in(c, 0xE1, 0xEC) || in(c, 0xEE, 0xEF))
    return in(at(1), 0x80, 0xBF) && in(at(2), 0x80, 0xBF) ? 3 : 0;
  if (c == 0xED) // U+D000..U+D7FF; U+D800..U+DFFF are surrogates
    return in(at(1), 0x80, 0x9F) && in(at(2), 0x80, 0xBF) ? 3 : 0;
  if (c == 0xF0)
    return in(at(1), 0x90, 0xBF) && in(at(2), 0x80, 0xBF) && in(at(3), 0x80, 0xBF) ? 4 : 0;
  if (in(c, 0xF1, 0xF3))
    return in(at(1), 0x80, 0xBF) && in(at(2), 0x80, 0xBF) && in(at(3), 0x80, 0xBF) ? 4 : 0;
  if (c == 0xF4)
    return in(at(1), 0x80, 0x8F) && in(at(2), 0x80, 0xBF) && in(at(3), 0x80, 0xBF) ? 4 : 0;
  return 0;
}

std::optional<size_t> find_invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = utf8_sequence_length(text, i);
    if (n == 0)
      return i;
    i += n;
  }
  return std::nullopt;
}

} // namespace troupe::json_detail
