// libFuzzer harness for the two decoders that read bytes from disk or the wire: the Envelope
// decoder (codec.cpp) and the edge-log chunk parser (store/format.cpp). Built by the sanitizer
// build of tools/test.sh (clang, -DTROUPE_FUZZ=ON) and run by tools/fuzz.sh on corpus/decode
// (chunks taken from a real data dir with mdb_dump).
// Any crash, sanitizer report or hang is a bug: malformed input must become an error value.
#include "codec/codec.hpp"
#include "store/format.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes{reinterpret_cast<const char*>(data), size};

  // The same bytes as one Envelope: decode, then walk every field.
  (void)troupe::validate_envelope(bytes);

  // ... and as a chunk of records, each of which is then decoded. The checksum is not verified:
  // it would turn away nearly every input before the structure checks behind it.
  namespace sf = troupe::store_format;
  sf::chunk_view chunk;
  if (chunk.parse({}, bytes, /*verify=*/false) == sf::chunk_view::status::ok) {
    troupe::envelope_decoder dec;
    for (uint32_t i = 0; i < chunk.count() && i < 4096; ++i)
      (void)dec.decode(chunk.record(i));
  }
  return 0;
}
