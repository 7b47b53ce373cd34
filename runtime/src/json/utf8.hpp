// UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace troupe::json_detail {

// The offset of the first byte of the first invalid sequence in `text`, or nullopt when all of
// it is valid UTF-8. A sequence cut short by the end of `text` is invalid.
std::optional<size_t> find_invalid_utf8(std::string_view text);

// The length of the valid UTF-8 sequence starting at text[i] (a lead byte >= 0x80), or 0 when
// it is not one.
size_t utf8_sequence_length(std::string_view text, size_t i);

} // namespace troupe::json_detail
