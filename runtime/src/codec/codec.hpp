// Decoding and encoding Envelopes: the one place where Cap'n Proto's exceptions about malformed
// or oversized bytes are caught and turned into error values.
//
// Wire format: an Envelope is one Cap'n Proto message in flat-array (unpacked) form, as
// capnp::messageToFlatArray writes it: a segment table followed by the segments. Bytes read from
// LMDB or a CAF message need not be 8-byte aligned; the decoder copies them into aligned words
// when they are not.
#pragma once

#include "base/error.hpp"

#include "envelope.capnp.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <optional>
#include <string>
#include <string_view>

namespace troupe {

// Limits for untrusted bytes: at most this many words may be traversed, this deep.
constexpr uint64_t decode_traversal_limit_words = 8 * 1024 * 1024; // 64 MiB
constexpr unsigned decode_nesting_limit = 64;
constexpr size_t max_record_bytes = 64 * 1024 * 1024;

// Holds one decoded message. Reusable: decode() replaces what it held. Readers obtained from it
// are valid until the next decode() or its destruction. Not copyable or movable (readers point
// into it).
class envelope_decoder {
public:
  envelope_decoder() = default;
  envelope_decoder(const envelope_decoder&) = delete;
  envelope_decoder& operator=(const envelope_decoder&) = delete;
  ~envelope_decoder() { reset(); }

  // Validates the framing and the root pointer. `bytes` must outlive the decoder's use when it
  // is aligned (it is then read in place).
  caf::error decode(std::string_view bytes);
  schema::Envelope::Reader root() const { return root_; }
  void reset();

private:
  kj::Array<capnp::word> copy_; // aligned copy, when the input was not aligned
  alignas(capnp::FlatArrayMessageReader) unsigned char storage_[sizeof(capnp::FlatArrayMessageReader)];
  bool live_ = false;
  schema::Envelope::Reader root_;
};

// The cheap part of decode(): a whole number of words within the size limit, and a segment table
// whose segments add up to exactly the bytes given. A record that passes may still fail to
// decode (a bad pointer); one that fails this would never decode.
caf::error check_framing(std::string_view bytes);

// Serializes a finished message to flat-array bytes, appended to `out`.
void append_flat(capnp::MessageBuilder& message, std::string& out);

// Checks that `bytes` hold a valid Envelope whose payload (if `payload` is given) reads as that
// struct; deep-validates by walking the whole message within the traversal limit.
caf::error validate_envelope(std::string_view bytes);

// Milliseconds since the Unix epoch, now.
int64_t now_ms();

} // namespace troupe
