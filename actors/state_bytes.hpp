// Byte layouts for the keys and values the stateful built-in stages (sequence, window, batch)
// keep in their partition state: fixed-width big-endian numbers, so that a state scan walks
// them in numeric order, and length-prefixed record keys, so that no key is a prefix of another.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace troupe::state_bytes {

inline void put_be64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

inline uint64_t get_be64(std::string_view in, size_t at = 0) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  return v;
}

// A signed number whose big-endian bytes sort as the numbers do (the sign bit flipped).
inline void put_ordered_i64(std::string& out, int64_t v) {
  put_be64(out, static_cast<uint64_t>(v) ^ (uint64_t{1} << 63));
}
inline int64_t get_ordered_i64(std::string_view in, size_t at = 0) {
  return static_cast<int64_t>(get_be64(in, at) ^ (uint64_t{1} << 63));
}

// tag, then the record key with its length in front.
inline std::string tagged(char tag, std::string_view key) {
  std::string out(1, tag);
  auto n = static_cast<uint32_t>(key.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(key.data(), key.size());
  return out;
}

// The record key back from tagged(tag, key) + suffix, or false when `k` is not one.
inline bool untag(std::string_view k, std::string_view& key, std::string_view& rest) {
  if (k.size() < 5)
    return false;
  uint32_t n = 0;
  for (size_t i = 1; i < 5; ++i)
    n = (n << 8) | static_cast<unsigned char>(k[i]);
  if (k.size() < 5 + size_t{n})
    return false;
  key = k.substr(5, n);
  rest = k.substr(5 + n);
  return true;
}

} // namespace troupe::state_bytes
