// A plain, strict JSON syntax checker (RFC 8259), run only after the fast parser has refused a
// text, to say in words what is wrong and at which byte. It shares no code with the parser.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::json_detail {

struct syntax_problem {
  size_t offset = 0;     // from 0 at the start of the text
  std::string message;   // "expected ',' or '}'" (the caller adds " at byte N")
  bool at_offset = true; // whether the offset says anything (not for an empty text)
};

// The first reason `text` is not exactly one JSON object (optionally surrounded by whitespace),
// or nullopt when it is one. Nesting deeper than `max_depth` is a problem too.
std::optional<syntax_problem> check_json_object(std::string_view text, unsigned max_depth);

// Whether `token` is exactly one JSON number (RFC 8259's grammar; no range is implied).
bool is_json_number(std::string_view token);

} // namespace troupe::json_detail
