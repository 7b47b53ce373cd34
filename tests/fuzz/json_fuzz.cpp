// libFuzzer harness for the JSON decoder (runtime/src/json): what jsonl_source reads from files
// and http_source from request bodies. Each input is split into lines as both of them split it
// (a byte-order mark, CRLF), and each line is decoded into tests/fuzz/fuzz.capnp's Everything,
// which holds a field of every kind; a decoded value is encoded back and decoded again, and
// must come back the same. Any crash, sanitizer report or hang is a bug.
#include "config/schema_loader.hpp"

#include <troupe/json.hpp>

#include <capnp/message.h>
#include <capnp/orphan.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

capnp::StructSchema everything() {
  static troupe::schema_loader loader;
  static auto schema =
    loader.parse(TROUPE_SOURCE_DIR "/tests/fuzz/fuzz.capnp").getNested("Everything").asStruct();
  return schema;
}

void decode_line(troupe::json_decoder& decoder, troupe::json_encoder& encoder,
                 std::string_view line) {
  capnp::MallocMessageBuilder message;
  auto value = message.initRoot<capnp::DynamicStruct>(everything());
  if (decoder.decode(line, value))
    return; // an error value: what malformed input must become
  std::string once;
  if (encoder.encode(value.asReader(), once))
    return; // a value JSON cannot carry (Text that is not UTF-8 cannot come from JSON, though)
  capnp::MallocMessageBuilder again;
  auto round = again.initRoot<capnp::DynamicStruct>(everything());
  if (decoder.decode(once, round))
    std::abort(); // the decoder refused what the encoder wrote
  std::string twice;
  if (encoder.encode(round.asReader(), twice) || twice != once)
    std::abort(); // a round trip changed the value
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static troupe::json_decoder decoder{everything()};
  static troupe::json_encoder encoder{everything()};
  std::string_view body{reinterpret_cast<const char*>(data), size};
  if (body.substr(0, 3) == "\xEF\xBB\xBF")
    body.remove_prefix(3);
  while (!body.empty()) {
    auto end = body.find('\n');
    auto line = body.substr(0, end);
    body.remove_prefix(end == std::string_view::npos ? body.size() : end + 1);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    decode_line(decoder, encoder, line);
  }
  return 0;
}
