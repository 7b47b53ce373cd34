// The one little-/big-endian codec of the runtime: fixed-width integers to and from bytes that
// may lie at any alignment (LMDB hands out values aligned to 2 bytes at best).
//
// Little-endian is the byte order of every integer Troupe stores inside a value; big-endian is
// used where integers are parts of LMDB keys, so that keys sort by number.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace troupe {

inline void put_le32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}
inline void put_le64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}
inline void put_be32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (8 * (3 - i)));
}
inline void put_be64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<char>(v >> (8 * (7 - i)));
}

inline uint32_t get_le32(const void* data) {
  auto p = static_cast<const unsigned char*>(data);
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t get_le64(const void* data) {
  auto p = static_cast<const unsigned char*>(data);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}
inline uint32_t get_be32(const void* data) {
  auto p = static_cast<const unsigned char*>(data);
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}
inline uint64_t get_be64(const void* data) {
  auto p = static_cast<const unsigned char*>(data);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | p[i];
  return v;
}

// Appending forms, for building keys and values in a reused std::string.
inline void append_le64(std::string& out, uint64_t v) {
  char b[8];
  put_le64(b, v);
  out.append(b, 8);
}
inline void append_be32(std::string& out, uint32_t v) {
  char b[4];
  put_be32(b, v);
  out.append(b, 4);
}
inline void append_be64(std::string& out, uint64_t v) {
  char b[8];
  put_be64(b, v);
  out.append(b, 8);
}

// 8 little-endian bytes, as a string (a state value).
inline std::string le64_bytes(uint64_t v) {
  std::string s(8, '\0');
  put_le64(s.data(), v);
  return s;
}

} // namespace troupe
