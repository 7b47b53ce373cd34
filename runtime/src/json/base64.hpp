// Base64 as RFC 4648 section 4 defines it (alphabet A-Z a-z 0-9 + /, '=' padding): how the JSON
// codec writes Data fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::json_detail {

void append_base64(std::string& out, const uint8_t* data, size_t size);

// The number of bytes `text` decodes to, or nullopt when it is not valid padded base64 (its
// length is not a multiple of 4, or '=' appears other than at the end). Characters are checked
// by decode_base64.
std::optional<size_t> base64_decoded_size(std::string_view text);

// Decodes `text` (whose size base64_decoded_size accepted) into `out`, which has room for that
// many bytes. Returns the offset of the first character outside the alphabet, or of non-zero
// padding bits, or nullopt on success.
std::optional<size_t> decode_base64(std::string_view text, uint8_t* out);

} // namespace troupe::json_detail
