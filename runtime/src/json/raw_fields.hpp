// Primitive fields read and written in a struct's data section directly, at the offsets the
// schema gives, instead of through the dynamic API (which interprets the schema on every call:
// about half of the codec's time before this). The layout is Cap'n Proto's wire format:
// little-endian values XORed with the field's default; a field beyond the data section (a struct
// written by an older schema) reads as its default. A write that does not fit returns false and
// the caller falls back to the dynamic API.
#pragma once

#include <capnp/any.h>

#include <cstdint>
#include <cstring>

namespace troupe::json_detail {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "raw field access assumes a little-endian host, as Cap'n Proto's wire format is");

template <class T> struct bits_type;
template <> struct bits_type<int8_t> { using type = uint8_t; };
template <> struct bits_type<uint8_t> { using type = uint8_t; };
template <> struct bits_type<int16_t> { using type = uint16_t; };
template <> struct bits_type<uint16_t> { using type = uint16_t; };
template <> struct bits_type<int32_t> { using type = uint32_t; };
template <> struct bits_type<uint32_t> { using type = uint32_t; };
template <> struct bits_type<float> { using type = uint32_t; };
template <> struct bits_type<int64_t> { using type = uint64_t; };
template <> struct bits_type<uint64_t> { using type = uint64_t; };
template <> struct bits_type<double> { using type = uint64_t; };

template <class T>
T load_field(kj::ArrayPtr<const kj::byte> data, uint32_t offset, uint64_t default_bits) {
  using B = typename bits_type<T>::type;
  B bits = 0;
  size_t at = size_t{offset} * sizeof(T);
  if (at + sizeof(T) <= data.size())
    std::memcpy(&bits, data.begin() + at, sizeof bits);
  bits ^= static_cast<B>(default_bits);
  T value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

template <class T>
bool store_field(kj::ArrayPtr<kj::byte> data, uint32_t offset, T value, uint64_t default_bits) {
  using B = typename bits_type<T>::type;
  size_t at = size_t{offset} * sizeof(T);
  if (at + sizeof(T) > data.size())
    return false;
  B bits;
  std::memcpy(&bits, &value, sizeof bits);
  bits ^= static_cast<B>(default_bits);
  std::memcpy(data.begin() + at, &bits, sizeof bits);
  return true;
}

inline bool load_bool(kj::ArrayPtr<const kj::byte> data, uint32_t bit, uint64_t default_bits) {
  bool stored = bit / 8 < data.size() && ((data[bit / 8] >> (bit % 8)) & 1);
  return stored != (default_bits != 0);
}

inline bool store_bool(kj::ArrayPtr<kj::byte> data, uint32_t bit, bool value,
                       uint64_t default_bits) {
  if (bit / 8 >= data.size())
    return false;
  auto mask = static_cast<kj::byte>(1u << (bit % 8));
  if (value != (default_bits != 0))
    data[bit / 8] |= mask;
  else
    data[bit / 8] &= static_cast<kj::byte>(~mask);
  return true;
}

} // namespace troupe::json_detail
