// The store's encodings (format.cpp) against runtime/STORE_FORMAT.md: keys byte by byte, sealed
// values, head and cursor bodies, and chunks; every damage a checksum or a shape check must catch,
// including damage whose checksum was fixed up so the checks behind it stay tested.
#include "store/format.hpp"

#include "store_support.hpp"

using namespace troupe;
using namespace troupe::store_test;
namespace sf = troupe::store_format;
using namespace std::string_literals;

namespace {

std::string chunk_of(std::string_view key, const std::vector<std::string>& recs) {
  std::vector<std::string_view> views(recs.begin(), recs.end());
  size_t size = sf::chunk_header_size(recs.size());
  for (const auto& r : recs)
    size += sf::align8(r.size());
  std::string out(size, '\xAA'); // the encoder must write every byte
  sf::encode_chunk(out.data(), key, views.data(), views.size());
  return out;
}

// Recomputes a chunk's (or sealed value's) checksum after the test changed the bytes behind it.
void refix(std::string& value, std::string_view key) {
  auto sum = doc_checksum(key, std::string_view{value}.substr(8));
  for (int i = 0; i < 8; ++i)
    value[i] = static_cast<char>(sum >> (8 * i));
}

std::string log_key(partition_id p, uint64_t seq) {
  char k[sf::log_key_size];
  sf::log_key(k, p, seq);
  return {k, sf::log_key_size};
}

void put32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    s[at + i] = static_cast<char>(v >> (8 * i));
}

} // namespace

TEST_CASE("keys are built byte by byte as the format page says", "[runtime][store][format]") {
  std::string k = "left over";
  sf::head_key(k, "edge", 0x01020304);
  CHECK(k == "edge\0\x01\x02\x03\x04"s);
  sf::cursor_key(k, "edge", "stage", 7);
  CHECK(k == "edge\0stage\0\0\0\0\x07"s);
  sf::time_key(k, "e", 0x0102030405060708);
  CHECK(k == "e\0\x01\x02\x03\x04\x05\x06\x07\x08"s);
  sf::state_key(k, state_scope::worker, 0x0a0b0c0d, state_space::user, "key");
  CHECK(k == "\x01\x0a\x0b\x0c\x0d\x01key"s);
  sf::state_key(k, state_scope::partition, 2, state_space::runtime, "");
  CHECK(k == "\0\0\0\0\x02\0"s);
  CHECK(k.size() == sf::state_key_prefix);
  auto lk = log_key(3, 0x1122334455667788);
  CHECK(lk == "\0\0\0\x03\x11\x22\x33\x44\x55\x66\x77\x88"s);
  CHECK(sf::log_key_partition(lk.data()) == 3);
  CHECK(sf::log_key_seq(lk.data()) == 0x1122334455667788);
  // Big-endian numbers make keys sort by number: partition first, then seq.
  CHECK(log_key(0, 0xffffffffffffffff) < log_key(1, 0));
  CHECK(log_key(1, 255) < log_key(1, 256));
}

TEST_CASE("a sealed value is an XXH3 checksum seeded by its key, then the body",
          "[runtime][store][format]") {
  std::string v;
  sf::seal(v, "key", "body");
  REQUIRE(v.size() == 8 + 4);
  CHECK(v.substr(8) == "body");
  CHECK(le64(v.data()) == doc_checksum("key", "body")); // computed apart from format.cpp
  CHECK(sf::unseal("key", v) == std::optional<std::string_view>{"body"});
  CHECK(!sf::unseal("kez", v)); // moved to another key
  for (size_t i = 0; i < v.size(); ++i) {
    auto bad = v;
    bad[i] ^= 0x20;
    CHECK(!sf::unseal("key", bad));
  }
  CHECK(!sf::unseal("key", v.substr(0, v.size() - 1))); // cut short
  CHECK(!sf::unseal("key", v.substr(0, 7)));
  sf::seal(v, "key", "");
  CHECK(v.size() == 8);
  CHECK(sf::unseal("key", v) == std::optional<std::string_view>{""});
}

TEST_CASE("head and cursor bodies are little-endian and checked for shape",
          "[runtime][store][format]") {
  auto h = sf::encode(sf::head_body{10, 4, 300, 120});
  REQUIRE(h.size() == 32);
  CHECK(le64(h.data()) == 10);
  CHECK(le64(h.data() + 8) == 4);
  CHECK(le64(h.data() + 16) == 300);
  CHECK(le64(h.data() + 24) == 120);
  auto back = sf::decode_head(h);
  REQUIRE(back);
  CHECK(back->head == 10);
  CHECK(back->tail == 4);
  CHECK(back->bytes_head == 300);
  CHECK(back->bytes_tail == 120);
  CHECK(!sf::decode_head(h.substr(0, 31)));
  CHECK(!sf::decode_head(sf::encode(sf::head_body{3, 4, 0, 0})));   // tail past head
  CHECK(!sf::decode_head(sf::encode(sf::head_body{4, 3, 10, 11}))); // bytes likewise

  auto c = sf::encode(sf::cursor_body{7, 99});
  REQUIRE(c.size() == 16);
  CHECK(le64(c.data()) == 7);
  CHECK(le64(c.data() + 8) == 99);
  auto cb = sf::decode_cursor(c);
  REQUIRE(cb);
  CHECK(cb->next == 7);
  CHECK(cb->bytes == 99);
  CHECK(!sf::decode_cursor(c + "x"));
}

TEST_CASE("a chunk round-trips records of any size, padded with zeros to 8 bytes",
          "[runtime][store][format]") {
  auto key = log_key(1, 40);
  std::vector<std::string> recs{"", "a", "12345678", "123456789", std::string(100, 'z'), ""};
  auto v = chunk_of(key, recs);
  CHECK(v.size() == sf::align8(16 + 4 * 6) + 0 + 8 + 8 + 16 + 104 + 0);
  CHECK(le64(v.data()) == doc_checksum(key, std::string_view{v}.substr(8)));
  CHECK(le32(v.data() + 8) == 6);
  CHECK(le32(v.data() + 12) == 0);
  CHECK(le32(v.data() + 16) == 0);      // end of record 0 (empty)
  CHECK(le32(v.data() + 20) == 1);      // "a"
  CHECK(le32(v.data() + 24) == 8 + 8);  // starts at 8
  CHECK(le32(v.data() + 28) == 16 + 9); // starts at 16
  CHECK(le32(v.data() + 32) == 32 + 100);
  CHECK(le32(v.data() + 36) == 136); // empty, at align8(132)
  for (size_t i = 40; i < sf::chunk_header_size(6); ++i)
    CHECK(v[i] == 0);
  CHECK(v.find('\xAA') == std::string::npos);
  sf::chunk_view c;
  REQUIRE(c.parse(key, v) == sf::chunk_view::status::ok);
  REQUIRE(c.count() == 6);
  for (uint32_t i = 0; i < 6; ++i)
    CHECK(c.record(i) == recs[i]);
  CHECK(c.record_bytes() == 0 + 1 + 8 + 9 + 100 + 0);
}

TEST_CASE("a damaged chunk is refused: any flipped byte, a cut, another key, and shape faults "
          "behind a valid checksum",
          "[runtime][store][format]") {
  auto key = log_key(0, 8);
  auto good = chunk_of(key, {"first", "second record", "3"});
  sf::chunk_view c;
  REQUIRE(c.parse(key, good) == sf::chunk_view::status::ok);
  for (size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] ^= 0x01;
    INFO("byte " << i);
    CHECK(c.parse(key, bad) == sf::chunk_view::status::damaged);
    CHECK(c.count() == 0);
  }
  CHECK(c.parse(key, good.substr(0, good.size() - 8)) == sf::chunk_view::status::damaged);
  CHECK(c.parse(log_key(0, 9), good) == sf::chunk_view::status::damaged); // moved
  CHECK(c.parse(log_key(1, 8), good) == sf::chunk_view::status::damaged);
  CHECK(c.parse(key, good.substr(0, 15)) == sf::chunk_view::status::damaged);

  auto with = [&](auto change) {
    auto bad = good;
    change(bad);
    refix(bad, key);
    return c.parse(key, bad);
  };
  CHECK(with([](std::string&) {}) == sf::chunk_view::status::ok); // refix itself is right
  CHECK(with([](std::string& b) { put32(b, 8, 0); }) == sf::chunk_view::status::damaged);
  CHECK(with([](std::string& b) { put32(b, 12, 1); }) == sf::chunk_view::status::damaged);
  CHECK(with([](std::string& b) { put32(b, 8, 1000); }) == sf::chunk_view::status::damaged);
  CHECK(with([&](std::string& b) { put32(b, 24, static_cast<uint32_t>(b.size())); }) ==
        sf::chunk_view::status::damaged); // last end past the value
  CHECK(with([](std::string& b) { put32(b, 20, 3); }) ==
        sf::chunk_view::status::damaged); // record 1 would end before it starts (at 8)
  // Without verification (trimming only needs counts), shape faults are still caught.
  auto bad = good;
  put32(bad, 8, 0);
  CHECK(c.parse(key, bad, false) == sf::chunk_view::status::damaged);
  auto flipped = good;
  flipped[40] ^= 1; // a record byte: only the checksum would tell
  CHECK(c.parse(key, flipped, false) == sf::chunk_view::status::ok);
}
