#include "store/format.hpp"

#include <xxhash.h>
#if defined(__x86_64__) && __has_include(<xxh_x86dispatch.h>)
// libxxhash's dispatch entry points pick the widest vector unit the CPU has at run time (AVX2
// hashes chunks twice as fast as the SSE2 baseline); the results are the same bytes.
#include <xxh_x86dispatch.h>
#endif

#include <cstring>

namespace troupe::store_format {

uint64_t checksum(std::string_view key, const void* body, size_t size) {
  uint64_t seed = XXH3_64bits(key.data(), key.size());
  return XXH3_64bits_withSeed(body, size, seed);
}

void seal(std::string& out, std::string_view key, std::string_view body) {
  out.resize(seal_size + body.size());
  if (!body.empty())
    std::memcpy(&out[seal_size], body.data(), body.size());
  put_le64(&out[0], checksum(key, body.data(), body.size()));
}

std::optional<std::string_view> unseal(std::string_view key, std::string_view value) {
  if (value.size() < seal_size)
    return std::nullopt;
  auto body = value.substr(seal_size);
  if (get_le64(value.data()) != checksum(key, body.data(), body.size()))
    return std::nullopt;
  return body;
}

void head_key(std::string& out, std::string_view edge, partition_id p) {
  out.assign(edge);
  out.push_back('\0');
  append_be32(out, p);
}

void cursor_key(std::string& out, std::string_view edge, std::string_view group, partition_id p) {
  out.assign(edge);
  out.push_back('\0');
  out.append(group);
  out.push_back('\0');
  append_be32(out, p);
}

void time_key(std::string& out, std::string_view edge, uint64_t ms) {
  out.assign(edge);
  out.push_back('\0');
  append_be64(out, ms);
}

void state_key(std::string& out, state_scope scope, uint32_t index, state_space space,
               std::string_view key) {
  out.clear();
  out.push_back(static_cast<char>(scope));
  append_be32(out, index);
  out.push_back(static_cast<char>(space));
  out.append(key);
}

std::string encode(const head_body& b) {
  std::string s(head_body::size, '\0');
  put_le64(&s[0], b.head);
  put_le64(&s[8], b.tail);
  put_le64(&s[16], b.bytes_head);
  put_le64(&s[24], b.bytes_tail);
  return s;
}

std::string encode(const cursor_body& b) {
  std::string s(cursor_body::size, '\0');
  put_le64(&s[0], b.next);
  put_le64(&s[8], b.bytes);
  return s;
}

std::optional<head_body> decode_head(std::string_view body) {
  if (body.size() != head_body::size)
    return std::nullopt;
  head_body b{get_le64(&body[0]), get_le64(&body[8]), get_le64(&body[16]), get_le64(&body[24])};
  if (b.tail > b.head || b.bytes_tail > b.bytes_head)
    return std::nullopt;
  return b;
}

std::optional<cursor_body> decode_cursor(std::string_view body) {
  if (body.size() != cursor_body::size)
    return std::nullopt;
  return cursor_body{get_le64(&body[0]), get_le64(&body[8])};
}

void encode_chunk(char* out, std::string_view key, const std::string_view* recs, size_t n) {
  put_le32(out + 8, static_cast<uint32_t>(n));
  put_le32(out + 12, 0);
  size_t header = chunk_header_size(n);
  std::memset(out + 16 + 4 * n, 0, header - (16 + 4 * n));
  char* area = out + header;
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    auto size = recs[i].size();
    if (size > 0) // an empty view may have no data pointer
      std::memcpy(area + at, recs[i].data(), size);
    std::memset(area + at + size, 0, align8(size) - size);
    at += size;
    put_le32(out + 16 + 4 * i, static_cast<uint32_t>(at));
    at = align8(at);
  }
  put_le64(out, checksum(key, out + 8, header + at - 8));
}

chunk_view::status chunk_view::parse(std::string_view key, std::string_view value, bool verify) {
  data_ = value.data();
  count_ = 0;
  if (value.size() < 16)
    return status::damaged;
  uint32_t n = get_le32(data_ + 8);
  if (n == 0 || get_le32(data_ + 12) != 0 || value.size() < chunk_header_size(n))
    return status::damaged;
  if (verify && get_le64(data_) != checksum(key, data_ + 8, value.size() - 8))
    return status::damaged;
  count_ = n;
  area_ = data_ + chunk_header_size(n);
  area_size_ = value.size() - chunk_header_size(n);
  // Ends never decrease and the last lies inside the value, so every record does.
  size_t prev = 0;
  for (uint32_t i = 0; i < n; ++i) {
    size_t start = i == 0 ? 0 : align8(prev);
    size_t end = end_of(i);
    if (end < start || end > area_size_) {
      count_ = 0;
      return status::damaged;
    }
    prev = end;
  }
  return status::ok;
}

std::string_view chunk_view::record(uint32_t i) const {
  size_t start = i == 0 ? 0 : align8(end_of(i - 1));
  return std::string_view{area_ + start, end_of(i) - start};
}

uint64_t chunk_view::record_bytes() const {
  uint64_t total = 0;
  for (uint32_t i = 0; i < count_; ++i)
    total += end_of(i) - (i == 0 ? 0 : align8(end_of(i - 1)));
  return total;
}

} // namespace troupe::store_format
