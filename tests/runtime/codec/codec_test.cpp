// Decoding untrusted bytes: every malformed input is an error value, never a crash.
#include "codec/codec.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace troupe;

namespace {

std::string sample_envelope(size_t body = 40) {
  capnp::MallocMessageBuilder mb;
  auto env = mb.initRoot<schema::Envelope>();
  env.initId().setOrigin("gen");
  env.getId().setSeq(42);
  env.setKey(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("k1"), 2));
  env.setEventTime(1700000000000);
  auto h = env.initHeaders(1);
  h[0].setName("trace");
  h[0].setValue(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("abc"), 3));
  auto g = env.getPayload().initAs<schema::Generated>();
  g.setIndex(7);
  std::string filler(body, 'x');
  g.setBody(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(filler.data()), filler.size()));
  std::string out;
  append_flat(mb, out);
  return out;
}

} // namespace

TEST_CASE("an envelope survives encoding and decoding", "[runtime][codec]") {
  auto bytes = sample_envelope();
  envelope_decoder dec;
  REQUIRE_FALSE(dec.decode(bytes));
  CHECK(std::string{dec.root().getId().getOrigin().cStr()} == "gen");
  CHECK(dec.root().getId().getSeq() == 42);
  CHECK(dec.root().getEventTime() == 1700000000000);
  CHECK(dec.root().getPayload().getAs<schema::Generated>().getIndex() == 7);
  CHECK_FALSE(validate_envelope(bytes));
}

TEST_CASE("decoding copes with unaligned buffers", "[runtime][codec]") {
  auto bytes = sample_envelope();
  for (size_t shift = 1; shift < 8; ++shift) {
    std::string buf(shift, '\0');
    buf += bytes;
    std::string_view unaligned{buf.data() + shift, bytes.size()};
    envelope_decoder dec;
    REQUIRE_FALSE(dec.decode(unaligned));
    CHECK(dec.root().getId().getSeq() == 42);
  }
}

TEST_CASE("truncated, empty and odd-sized bytes are errors", "[runtime][codec]") {
  auto bytes = sample_envelope();
  envelope_decoder dec;
  CHECK(code_of(dec.decode({})) == errc::decode_failed);
  CHECK(code_of(dec.decode(std::string_view{bytes}.substr(0, 5))) == errc::decode_failed);
  for (size_t len = 8; len < bytes.size(); len += 8) {
    auto err = validate_envelope(std::string_view{bytes}.substr(0, len));
    CHECK(code_of(err) == errc::decode_failed);
  }
}

TEST_CASE("oversized records are refused before they are read", "[runtime][codec]") {
  std::string huge(max_record_bytes + 8, '\0');
  envelope_decoder dec;
  auto err = dec.decode(huge);
  CHECK(code_of(err) == errc::decode_failed);
  CHECK(describe(err).find("exceeds the limit") != std::string::npos);
}

TEST_CASE("a segment table that claims too much is an error", "[runtime][codec]") {
  auto bytes = sample_envelope();
  bytes[4] = '\xff'; // first segment size: far beyond the buffer
  bytes[5] = '\xff';
  CHECK(code_of(validate_envelope(bytes)) == errc::decode_failed);
}

TEST_CASE("random corruption never crashes the decoder", "[runtime][codec]") {
  std::mt19937_64 rng{12345};
  auto bytes = sample_envelope(200);
  size_t errors = 0;
  for (int round = 0; round < 5000; ++round) {
    auto copy = bytes;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < flips; ++i)
      copy[rng() % copy.size()] = static_cast<char>(rng());
    if (validate_envelope(copy))
      ++errors;
  }
  // Most flips land in payload bytes and leave a valid message; some break the structure.
  CHECK(errors > 0);
  CHECK(errors < 5000);
}
