// JSON in and out for Cap'n Proto structs of any schema, read and written through Cap'n Proto's
// dynamic API: one JSON object <-> one struct. Used by jsonl_source and jsonl_sink; any stage may
// use it too.
//
// The mapping (the full table, with examples, is "JSON" in runtime/CONFIG.md):
//
//   Cap'n Proto          JSON written                     JSON accepted
//   Bool                 true / false                     true / false
//   Int8..Int64,         a number (64-bit values exactly) an integer (no fraction, no
//   UInt8..UInt64                                         exponent) within the field's range
//   Float32, Float64     a number, shortest round-trip    any number (an integer too); the
//                        form; NaN and infinities as the  strings "NaN", "Infinity", "-Infinity";
//                        strings "NaN", "Infinity",       a Float32 must be within its range
//                        "-Infinity"
//   Text                 a string, UTF-8                  a string
//   Data                 a base64 string (RFC 4648,       a base64 string with its padding, or
//                        with padding)                    an array of byte values 0..255
//   enum                 the enumerant's name (a number   the name, or its number
//                        for a value the schema lacks)
//   List(T)              an array                         an array
//   struct               an object; an unset one: null    an object
//   group                an object                        an object
//   union member         its field, named as such; only   at most one member of a union
//                        the active member is written
//   Void                 null                             null
//   AnyPointer,          null when unset; a set one is    null only; anything else is an error
//   capability           an error
//
// Every field of the schema is written, in schema order (only the active member of a union); a
// Text, Data or List field that was never set is written as its default value ("" or []). Keys
// are the schema's field names. On input a key may be missing (the field keeps its default) or
// null (likewise: null never selects a union member, except a Void member, whose only value it
// is).
//
// Decoding is strict: the input must be exactly one JSON object (an empty text, a top-level
// array or scalar, and anything after the object are errors); a key twice in one object, a value
// of the wrong type, an integer out of range for its field, invalid UTF-8, a malformed escape
// (a lone surrogate, say) are errors. Keys the schema does not have are ignored (their values
// must still be valid JSON) unless `reject_unknown_fields` is set. Errors name the field by its
// path (`items[2].price`) and say what was expected and found, in words.
//
// Encoding writes escapes only where JSON needs them (", \, control characters); other
// characters, non-ASCII included, are written as UTF-8. Text that is not valid UTF-8 is an error:
// it is never copied to the output.
//
// Threading: a decoder or encoder is used by one thread at a time (it reuses buffers from call
// to call). The schema given must outlive it.
#pragma once

#include <capnp/dynamic.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

// What went wrong with one JSON value, in words.
struct json_error {
  std::string field;   // the field's path, e.g. "items[2].price"; empty for the whole object
  std::string message; // e.g. "expected a number, found a string"
  // For errors at a place in the text (invalid UTF-8, a syntax error): the byte offset of the
  // problem, counted from 0 at the start of the text given.
  std::optional<size_t> offset;

  // "field 'items[2].price': expected a number, found a string"; "invalid UTF-8 at byte 17"
  std::string to_string() const;
};

struct json_decode_options {
  // A key the schema does not have is an error instead of being ignored.
  bool reject_unknown_fields = false;
  // Dotted paths of fields that must be present and not null (`customer.id`); a path goes
  // through struct and group fields only. A missing one is an error naming it.
  std::vector<std::string> required;
};

// Parses JSON objects into structs of one schema. Built once (it prepares a lookup table per
// struct type of the schema), then reused: in the steady state a decode allocates nothing but
// what the output message needs.
class json_decoder {
public:
  // Throws std::invalid_argument, in words, for a required path the schema does not have.
  explicit json_decoder(capnp::StructSchema schema, json_decode_options options = {});
  ~json_decoder();
  json_decoder(json_decoder&&) noexcept;
  json_decoder& operator=(json_decoder&&) noexcept;

  // Decodes one JSON object into `out`, a struct of the decoder's schema, which should be freshly
  // initialised (fields the JSON does not mention are left as they are). On error `out` may hold
  // part of the object: discard it.
  std::optional<json_error> decode(std::string_view json, capnp::DynamicStruct::Builder out);

  // As above, into a message the decoder owns and reuses: on success `value` reads the result,
  // valid until the next call to decode or the decoder's destruction.
  std::optional<json_error> decode(std::string_view json, capnp::DynamicStruct::Reader& value);

  capnp::StructSchema schema() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Writes structs of one schema as JSON objects. Built once, then reused.
class json_encoder {
public:
  explicit json_encoder(capnp::StructSchema schema);
  ~json_encoder();
  json_encoder(json_encoder&&) noexcept;
  json_encoder& operator=(json_encoder&&) noexcept;

  // Appends `value` (a struct of the encoder's schema) to `out` as one JSON object, with no
  // newline. On error (Text that is not UTF-8, a set AnyPointer) `out` is left as it was.
  std::optional<json_error> encode(capnp::DynamicStruct::Reader value, std::string& out);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Appends `text` to `out` as a JSON string (quoted and escaped). Returns false, leaving `out` as
// it was, when `text` is not valid UTF-8.
bool append_json_string(std::string& out, std::string_view text);

} // namespace troupe
