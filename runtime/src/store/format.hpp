// The store's on-disk encodings (runtime/STORE_FORMAT.md is the prose; keep the two in step):
// the keys of every database, the checksummed ("sealed") values, and the chunks of an edge log.
//
// Every value but `meta`'s carries a 64-bit xxHash (XXH3) of its bytes, seeded with a hash of
// its key, verified on every read: a value that was damaged, cut short, or moved to another key
// fails the check and is reported as damage (errc::store_corrupt), never used.
#pragma once

#include "base/endian.hpp"
#include "store/step_delta.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::store_format {

inline constexpr const char* layout_version = "3";
inline constexpr size_t max_name = 200; // edge, stage and group names: bytes, no NUL

// ---- checksums --------------------------------------------------------------------------------

// XXH3-64 of `body`, seeded with XXH3-64 of `key`.
uint64_t checksum(std::string_view key, const void* body, size_t size);

// A sealed value: u64 LE checksum of the rest, then the body. `out` receives the whole value.
void seal(std::string& out, std::string_view key, std::string_view body);
// The body of a sealed value, or nullopt when the value is too short or its checksum fails.
std::optional<std::string_view> unseal(std::string_view key, std::string_view value);
inline constexpr size_t seal_size = 8;

// ---- keys -------------------------------------------------------------------------------------
// Each builder reuses `out`'s buffer, so hot paths do not allocate.

// heads: edge + NUL + u32 BE partition
void head_key(std::string& out, std::string_view edge, partition_id p);
// cursors: edge + NUL + group + NUL + u32 BE partition
void cursor_key(std::string& out, std::string_view edge, std::string_view group, partition_id p);
// times: edge + NUL + u64 BE wall-clock ms
void time_key(std::string& out, std::string_view edge, uint64_t ms);
// state/<stage>: u8 scope + u32 BE index + u8 space + the key's bytes
void state_key(std::string& out, state_scope scope, uint32_t index, state_space space,
               std::string_view key);
inline constexpr size_t state_key_prefix = 6;
// log/<edge>: u32 BE partition + u64 BE seq of the chunk's first record
inline constexpr size_t log_key_size = 12;
inline void log_key(char* out, partition_id p, uint64_t seq) {
  put_be32(out, p);
  put_be64(out + 4, seq);
}
inline partition_id log_key_partition(const void* k) { return get_be32(k); }
inline uint64_t log_key_seq(const void* k) { return get_be64(static_cast<const char*>(k) + 4); }

// ---- fixed-size bodies (all integers LE) -------------------------------------------------------

// heads: where a partition's log stands. `bytes_*` count record bytes ever appended before head,
// and before tail (trimmed), so that unconsumed bytes are bytes_head - a cursor's bytes.
struct head_body {
  uint64_t head = 0, tail = 0, bytes_head = 0, bytes_tail = 0;
  static constexpr size_t size = 32;
};
// cursors: the first sequence number the group has not consumed, and the record bytes before it.
struct cursor_body {
  uint64_t next = 0, bytes = 0;
  static constexpr size_t size = 16;
};
std::string encode(const head_body& b);
std::string encode(const cursor_body& b);
std::optional<head_body> decode_head(std::string_view body);
std::optional<cursor_body> decode_cursor(std::string_view body);

// ---- chunks -----------------------------------------------------------------------------------
// A value of log/<edge> holds records with consecutive sequence numbers:
//
//   offset 0     u64 LE  checksum of bytes 8.., seeded with the key's hash
//   offset 8     u32 LE  count n (>= 1)
//   offset 12    u32 LE  flags: 0
//   offset 16    n x u32 LE: end offset of each record in the record area
//   zero padding to a multiple of 8
//   record area  record i at align8(end[i-1]) (record 0 at 0), zero-padded to a multiple of 8

inline constexpr size_t align8(size_t n) { return (n + 7) & ~size_t{7}; }
inline constexpr size_t chunk_header_size(size_t count) { return align8(16 + 4 * count); }

// Writes a chunk of recs[0..n) to `out`, which has room for exactly chunk_header_size(n) + the
// sum of align8(size) over the records; the checksum (over `key` + the rest) is filled last.
void encode_chunk(char* out, std::string_view key, const std::string_view* recs, size_t n);

// A chunk as read from LMDB. Views point into the value: valid as long as the value is.
class chunk_view {
public:
  enum class status { ok, damaged };
  // Checks the structure and, when `verify`, the checksum. Only `ok` chunks may be used.
  status parse(std::string_view key, std::string_view value, bool verify = true);
  uint32_t count() const { return count_; }
  std::string_view record(uint32_t i) const; // i < count; parse made sure it is in the value
  // The sum of the records' sizes (no padding).
  uint64_t record_bytes() const;

private:
  size_t end_of(uint32_t i) const { return get_le32(data_ + 16 + 4 * size_t{i}); }

  const char* data_ = nullptr;
  const char* area_ = nullptr;
  size_t area_size_ = 0;
  uint32_t count_ = 0;
};

} // namespace troupe::store_format
