// Base64 (RFC 4648, section 4), strict on input: padding required, no whitespace, no stray bits.
#include "json/base64.hpp"

#include <array>

namespace troupe::json_detail {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_values() {
  std::array<int8_t, 256> v{};
  for (auto& x : v)
    x = -1;
  for (int i = 0; i < 64; ++i)
    v[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  return v;
}
constexpr auto values = make_values();

} // namespace

void append_base64(std::string& out, const uint8_t* data, size_t size) {
  size_t start = out.size();
  out.resize(start + (size + 2) / 3 * 4);
  char* p = out.data() + start;
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    uint32_t n = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    *p++ = alphabet[n >> 18];
    *p++ = alphabet[(n >> 12) & 63];
    *p++ = alphabet[(n >> 6) & 63];
    *p++ = alphabet[n & 63];
  }
  if (size - i == 1) {
    uint32_t n = uint32_t{data[i]} << 16;
    *p++ = alphabet[n >> 18];
    *p++ = alphabet[(n >> 12) & 63];
    *p++ = '=';
    *p++ = '=';
  } else if (size - i == 2) {
    uint32_t n = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    *p++ = alphabet[n >> 18];
    *p++ = alphabet[(n >> 12) & 63];
    *p++ = alphabet[(n >> 6) & 63];
    *p++ = '=';
  }
}

std::optional<size_t> base64_decoded_size(std::string_view text) {
  if (text.size() % 4 != 0)
    return std::nullopt;
  size_t pad = 0;
  if (!text.empty() && text.back() == '=')
    pad = text[text.size() - 2] == '=' ? 2 : 1;
  for (size_t i = 0; i + pad < text.size(); ++i)
    if (text[i] == '=')
      return std::nullopt;
  return text.size() / 4 * 3 - pad;
}

std::optional<size_t> decode_base64(std::string_view text, uint8_t* out) {
  size_t pad = text.empty() ? 0 : (text.back() != '=' ? 0 : text[text.size() - 2] == '=' ? 2 : 1);
  size_t chars = text.size() - pad;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < chars; ++i) {
    int8_t v = values[static_cast<unsigned char>(text[i])];
    if (v < 0)
      return i;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *out++ = static_cast<uint8_t>(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) // bits below the last whole byte must be zero: one encoding per value
    return chars - 1;
  return std::nullopt;
}

} // namespace troupe::json_detail
