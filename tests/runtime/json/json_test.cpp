// The JSON codec (troupe/json.hpp): each rule of the mapping, the errors in words, round trips
// of a schema with every type (tests/data/json/all_types.capnp), and no allocation per line.
#include "config/schema_loader.hpp"

#include <troupe/json.hpp>

#include <capnp/message.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>

// Counts heap allocations while `counting` is set: the steady-state test below asserts none.
// (GCC warns that free() does not match operator new, not seeing that new is malloc here.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<bool> counting{false};
std::atomic<size_t> allocations{0};
} // namespace
void* operator new(size_t n) {
  if (counting.load(std::memory_order_relaxed))
    allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1))
    return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  if (counting.load(std::memory_order_relaxed))
    allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

using troupe::json_decode_options;
using troupe::json_decoder;
using troupe::json_encoder;

namespace {

capnp::StructSchema schema_named(const char* name) {
  static troupe::schema_loader loader;
  static capnp::ParsedSchema file =
    loader.parse(std::string(TROUPE_TEST_DATA) + "/json/all_types.capnp");
  return file.getNested(name).asStruct();
}
capnp::StructSchema all() { return schema_named("All"); }

// A decoded value with the message that holds it.
struct decoded {
  std::unique_ptr<capnp::MallocMessageBuilder> message = std::make_unique<capnp::MallocMessageBuilder>();
  capnp::DynamicStruct::Builder root;
  std::optional<troupe::json_error> error;
  capnp::DynamicValue::Reader get(const char* field) { return root.asReader().get(field); }
};

decoded decode(std::string_view json, json_decode_options options = {},
               capnp::StructSchema schema = all()) {
  json_decoder d{schema, std::move(options)};
  decoded out;
  out.root = out.message->initRoot<capnp::DynamicStruct>(schema);
  out.error = d.decode(json, out.root);
  return out;
}

// The error `json` gets, as the decoder words it; "" when it decodes.
std::string error_of(std::string_view json, json_decode_options options = {},
                     capnp::StructSchema schema = all()) {
  auto r = decode(json, std::move(options), schema);
  return r.error ? r.error->to_string() : "";
}

decoded decode_ok(std::string_view json, json_decode_options options = {}) {
  auto r = decode(json, std::move(options));
  INFO(json << " -> " << (r.error ? r.error->to_string() : "ok"));
  REQUIRE(!r.error);
  return r;
}

std::string encode(capnp::DynamicStruct::Reader r) {
  json_encoder e{r.getSchema()};
  std::string out;
  auto err = e.encode(r, out);
  INFO((err ? err->to_string() : "ok"));
  REQUIRE(!err);
  return out;
}

std::string text_of(capnp::DynamicValue::Reader v) {
  auto t = v.as<capnp::Text>();
  return {t.cStr(), t.size()};
}

} // namespace

TEST_CASE("a Bool field takes true and false, nothing else", "[json]") {
  CHECK(decode_ok(R"({"flag": true})").get("flag").as<bool>());
  CHECK(!decode_ok(R"({"flag": false})").get("flag").as<bool>());
  CHECK(error_of(R"({"flag": 1})") == "field 'flag': expected true or false, found a number");
  CHECK(error_of(R"({"flag": "true"})") == "field 'flag': expected true or false, found a string");
}

TEST_CASE("integer fields take their whole range and nothing beyond it", "[json]") {
  struct width {
    const char* field;
    const char* min;
    const char* max;
    const char* below;
    const char* above;
  };
  for (auto w : {width{"i8", "-128", "127", "-129", "128"},
                 width{"i16", "-32768", "32767", "-32769", "32768"},
                 width{"i32", "-2147483648", "2147483647", "-2147483649", "2147483648"},
                 width{"i64", "-9223372036854775808", "9223372036854775807",
                       "-9223372036854775809", "9223372036854775808"},
                 width{"u8", "0", "255", "-1", "256"},
                 width{"u16", "0", "65535", "-1", "65536"},
                 width{"u32", "0", "4294967295", "-1", "4294967296"},
                 width{"u64", "0", "18446744073709551615", "-1", "18446744073709551616"}}) {
    INFO(w.field);
    auto json = [&](const char* v) { return std::string("{\"") + w.field + "\": " + v + "}"; };
    auto lo = decode_ok(json(w.min)), hi = decode_ok(json(w.max));
    CHECK(encode(lo.root.asReader()).find(std::string("\"") + w.field + "\":" + w.min) !=
          std::string::npos);
    CHECK(encode(hi.root.asReader()).find(std::string("\"") + w.field + "\":" + w.max) !=
          std::string::npos);
    CHECK(error_of(json(w.below)).rfind(std::string("field '") + w.field + "': " + w.below +
                                          " is out of range for ", 0) == 0);
    CHECK(error_of(json(w.above)).rfind(std::string("field '") + w.field + "': " + w.above +
                                          " is out of range for ", 0) == 0);
  }
  CHECK(error_of(R"({"u32": 4294967296})") ==
        "field 'u32': 4294967296 is out of range for UInt32 (0 to 4294967295)");
  CHECK(error_of(R"({"i32": 2.5})") == "field 'i32': expected an integer, found 2.5");
  CHECK(error_of(R"({"i32": 1e3})") == "field 'i32': expected an integer, found 1e3");
  CHECK(error_of(R"({"u64": 123456789012345678901234567890})").rfind(
          "field 'u64': 123456789012345678901234567890 is out of range for UInt64", 0) == 0);
}

TEST_CASE("64-bit extremes round-trip exactly and are written as JSON numbers", "[json]") {
  auto r = decode_ok(R"({"u64": 18446744073709551615, "i64": -9223372036854775808})");
  CHECK(r.get("u64").as<uint64_t>() == std::numeric_limits<uint64_t>::max());
  CHECK(r.get("i64").as<int64_t>() == std::numeric_limits<int64_t>::min());
  auto json = encode(r.root.asReader());
  CHECK(json.find("\"i64\":-9223372036854775808,") != std::string::npos);
  CHECK(json.find("\"u64\":18446744073709551615,") != std::string::npos);
  auto again = decode_ok(json);
  CHECK(again.get("u64").as<uint64_t>() == std::numeric_limits<uint64_t>::max());
  CHECK(again.get("i64").as<int64_t>() == std::numeric_limits<int64_t>::min());
}

TEST_CASE("float fields take any number, integers too, and write the shortest exact form",
          "[json]") {
  auto r = decode_ok(R"({"f64": 7, "f32": 0.1})");
  CHECK(r.get("f64").as<double>() == 7.0);
  CHECK(r.get("f32").as<float>() == 0.1f);
  auto json = encode(r.root.asReader());
  CHECK(json.find("\"f32\":0.1,") != std::string::npos);
  CHECK(json.find("\"f64\":7,") != std::string::npos);
  auto pi = decode_ok(R"({"f64": 3.141592653589793, "f32": -3.4028234663852886e38})");
  CHECK(pi.get("f64").as<double>() == 3.141592653589793);
  CHECK(pi.get("f32").as<float>() == -std::numeric_limits<float>::max());
  CHECK(decode_ok(encode(pi.root.asReader())).get("f64").as<double>() == 3.141592653589793);
  CHECK(error_of(R"({"f32": 1e39})") == "field 'f32': 1e39 is out of range for Float32");
  CHECK(error_of(R"({"f64": 1e400})") == "field 'f64': 1e400 is out of range for Float64");
  CHECK(error_of(R"({"f64": "1.5"})") == "field 'f64': expected a number, found a string");
  CHECK(error_of(R"({"f64": [1]})") == "field 'f64': expected a number, found an array");
}

TEST_CASE("NaN and infinities are written as strings and read back", "[json]") {
  capnp::MallocMessageBuilder m;
  auto b = m.initRoot<capnp::DynamicStruct>(all());
  b.set("f64", std::numeric_limits<double>::quiet_NaN());
  b.set("f32", -std::numeric_limits<float>::infinity());
  auto json = encode(b.asReader());
  CHECK(json.find("\"f32\":\"-Infinity\"") != std::string::npos);
  CHECK(json.find("\"f64\":\"NaN\"") != std::string::npos);
  auto r = decode_ok(json);
  CHECK(std::isnan(r.get("f64").as<double>()));
  CHECK(r.get("f32").as<float>() == -std::numeric_limits<float>::infinity());
  CHECK(decode_ok(R"({"f64": "Infinity"})").get("f64").as<double>() > 1e308);
}

TEST_CASE("\\u escapes decode exactly, surrogate pairs included", "[json]") {
  CHECK(text_of(decode_ok(R"({"text": "Jos\u00e9"})").get("text")) == "Jos\xc3\xa9");
  CHECK(text_of(decode_ok(R"({"text": "\u4e2d\u6587"})").get("text")) == "\xe4\xb8\xad\xe6\x96\x87");
  CHECK(text_of(decode_ok(R"({"text": "\ud83d\ude00!"})").get("text")) == "\xf0\x9f\x98\x80!");
  CHECK(text_of(decode_ok(R"({"text": "\uD834\uDD1E"})").get("text")) == "\xf0\x9d\x84\x9e");
  CHECK(text_of(decode_ok(R"({"text": "a\u0000b"})").get("text")) == std::string("a\0b", 3));
  CHECK(text_of(decode_ok(R"({"text": "\"\\\/\b\f\n\r\t"})").get("text")) == "\"\\/\b\f\n\r\t");
  CHECK(error_of(R"({"text": "\ud83d"})") ==
        "a high surrogate (\\ud83d) not followed by a low surrogate at byte 10");
  CHECK(error_of(R"({"text": "\ude00"})") == "a lone low surrogate (\\ude00) in a string at byte 10");
  CHECK(error_of(R"({"text": "\q"})") == "invalid escape '\\q' in a string at byte 10");
  CHECK(error_of("{\"text\": \"a\x01\"}") ==
        "a control character (byte 0x01) inside a string must be escaped at byte 11");
}

TEST_CASE("strings are written with escapes only where JSON needs them", "[json]") {
  capnp::MallocMessageBuilder m;
  auto b = m.initRoot<capnp::DynamicStruct>(all());
  b.set("text", "q\"b\\s/\n\r\t\b\f\x01\x1f\x7f Jos\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80");
  auto json = encode(b.asReader());
  CHECK(json.find(R"("text":"q\"b\\s/\n\r\t\b\f\u0001\u001f)" "\x7f Jos\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80\"") != std::string::npos);
  CHECK(text_of(decode_ok(json).get("text")) == text_of(b.asReader().get("text")));
}

TEST_CASE("invalid UTF-8 in the input is an error naming its byte", "[json]") {
  CHECK(error_of("{\"text\": \"ab\xff\"}") == "invalid UTF-8 at byte 12");
  CHECK(error_of("{\"text\": \"\xc3\"}") == "invalid UTF-8 at byte 10");        // cut short
  CHECK(error_of("{\"text\": \"\xc0\xaf\"}") == "invalid UTF-8 at byte 10");    // overlong
  CHECK(error_of("{\"text\": \"\xed\xa0\x80\"}") == "invalid UTF-8 at byte 10"); // a surrogate
  CHECK(error_of("{\"\xfe\": 1}") == "invalid UTF-8 at byte 2");               // in a key
  auto r = decode("{\"text\": \"ab\xff\"}");
  REQUIRE(r.error);
  CHECK(r.error->offset == 12u);
}

TEST_CASE("Text that is not UTF-8 is never written", "[json]") {
  capnp::MallocMessageBuilder m;
  auto b = m.initRoot<capnp::DynamicStruct>(all());
  b.get("item").as<capnp::DynamicStruct>(); // unset still
  auto item = b.init("items", 3).as<capnp::DynamicList>()[2].as<capnp::DynamicStruct>();
  item.set("name", capnp::Text::Reader("ok\xff", 3));
  json_encoder e{all()};
  std::string out = "kept";
  auto err = e.encode(b.asReader(), out);
  REQUIRE(err);
  CHECK(err->to_string() == "field 'items[2].name': invalid UTF-8 at byte 2 of the text");
  CHECK(out == "kept");
  std::string s = "x";
  CHECK(!troupe::append_json_string(s, "\xe2\x82"));
  CHECK(s == "x");
}

TEST_CASE("Data is written as base64 and read from base64 or an array of bytes", "[json]") {
  capnp::MallocMessageBuilder m;
  auto b = m.initRoot<capnp::DynamicStruct>(all());
  const kj::byte raw[] = {0, 1, 2, 0xfb, 0xff};
  b.set("bytes", capnp::Data::Reader(raw, 5));
  auto json = encode(b.asReader());
  CHECK(json.find("\"bytes\":\"AAEC+/8=\"") != std::string::npos);
  auto r = decode_ok(json);
  auto d = r.get("bytes").as<capnp::Data>();
  CHECK(std::string(d.asChars().begin(), d.size()) == std::string("\0\1\2\xfb\xff", 5));
  CHECK(decode_ok(R"({"bytes": "TWFu"})").get("bytes").as<capnp::Data>().size() == 3);
  CHECK(decode_ok(R"({"bytes": ""})").get("bytes").as<capnp::Data>().size() == 0);
  CHECK(decode_ok(R"({"bytes": [77, 97, 110]})").get("bytes").as<capnp::Data>()[2] == 110);
  CHECK(error_of(R"({"bytes": "TWF"})") ==
        "field 'bytes': expected base64 (a length that is a multiple of 4, '=' only at the end)");
  CHECK(error_of(R"({"bytes": "TW*u"})") == "field 'bytes': invalid base64 at character 2");
  CHECK(error_of(R"({"bytes": "TWF="})") == "field 'bytes': invalid base64 at character 2");
  CHECK(error_of(R"({"bytes": [1, 256]})") ==
        "field 'bytes[1]': expected a byte (an integer 0 to 255), found 256");
  CHECK(error_of(R"({"bytes": 5})") ==
        "field 'bytes': expected a base64 string or an array of bytes, found a number");
}

TEST_CASE("enums are written and read by name; a number the schema lacks survives", "[json]") {
  auto r = decode_ok(R"({"color": "blueSky", "colors": ["red", 1, "blueSky"]})");
  CHECK(r.get("color").as<capnp::DynamicEnum>().getRaw() == 2);
  auto json = encode(r.root.asReader());
  CHECK(json.find("\"color\":\"blueSky\"") != std::string::npos);
  CHECK(json.find("\"colors\":[\"red\",\"green\",\"blueSky\"]") != std::string::npos);
  auto unknown = decode_ok(R"({"color": 7})");
  CHECK(encode(unknown.root.asReader()).find("\"color\":7,") != std::string::npos);
  CHECK(error_of(R"({"color": "purple"})") ==
        "field 'color': expected one of red, green, blueSky, found 'purple'");
  CHECK(error_of(R"({"color": true})") ==
        "field 'color': expected one of red, green, blueSky, found a boolean");
}

TEST_CASE("lists of every kind decode, with null elements left at their default", "[json]") {
  auto r = decode_ok(R"({"ints": [1, -2, null, 3], "texts": ["a", "\u00e9", ""],
    "items": [{"name": "x", "price": 1.5}, {}, null], "nested": [[1, 2], [], [255]],
    "bools": [true, false], "blobs": ["AA==", [1, 2]], "floats": [1, 2.5, "NaN"],
    "voids": [null, null]})");
  auto ints = r.get("ints").as<capnp::DynamicList>();
  REQUIRE(ints.size() == 4);
  CHECK(ints[1].as<int32_t>() == -2);
  CHECK(ints[2].as<int32_t>() == 0);
  CHECK(text_of(r.get("texts").as<capnp::DynamicList>()[1]) == "\xc3\xa9");
  auto items = r.get("items").as<capnp::DynamicList>();
  REQUIRE(items.size() == 3);
  CHECK(items[0].as<capnp::DynamicStruct>().get("price").as<double>() == 1.5);
  auto nested = r.get("nested").as<capnp::DynamicList>();
  CHECK(nested[2].as<capnp::DynamicList>()[0].as<uint8_t>() == 255);
  CHECK(r.get("voids").as<capnp::DynamicList>().size() == 2);
  auto json = encode(r.root.asReader());
  CHECK(json.find("\"ints\":[1,-2,0,3]") != std::string::npos);
  CHECK(json.find("\"nested\":[[1,2],[],[255]]") != std::string::npos);
  CHECK(json.find("\"blobs\":[\"AA==\",\"AQI=\"]") != std::string::npos);
  CHECK(json.find("\"voids\":[null,null]") != std::string::npos);
  CHECK(json.find("\"floats\":[1,2.5,\"NaN\"]") != std::string::npos);
  CHECK(error_of(R"({"ints": [1, "2"]})") == "field 'ints[1]': expected an integer, found a string");
  CHECK(error_of(R"({"ints": {"a": 1}})") == "field 'ints': expected an array, found an object");
  CHECK(error_of(R"({"nested": [[1], [2, 300]]})") ==
        "field 'nested[1][1]': 300 is out of range for UInt8 (0 to 255)");
}

TEST_CASE("a mismatch deep inside is reported with the field's whole path", "[json]") {
  CHECK(error_of(R"({"items": [{}, {}, {"name": "x", "price": "12.50"}]})") ==
        "field 'items[2].price': expected a number, found a string");
  CHECK(error_of(R"({"node": {"value": 1, "next": {"next": {"value": "v"}}}})") ==
        "field 'node.next.next.value': expected an integer, found a string");
  CHECK(error_of(R"({"pair": {"left": []}})") ==
        "field 'pair.left': expected an integer, found an array");
  CHECK(error_of(R"({"text": 5})") == "field 'text': expected a string, found a number");
  CHECK(error_of(R"({"item": "x"})") == "field 'item': expected an object, found a string");
}

TEST_CASE("nested structs decode, and an unset one is written as null", "[json]") {
  auto r = decode_ok(R"({"item": {"name": "pen", "quantity": 3},
                         "node": {"value": 1, "next": {"value": 2}}})");
  auto item = r.get("item").as<capnp::DynamicStruct>();
  CHECK(text_of(item.get("name")) == "pen");
  CHECK(item.get("quantity").as<uint32_t>() == 3);
  auto json = encode(r.root.asReader());
  CHECK(json.find("\"node\":{\"value\":1,\"next\":{\"value\":2,\"next\":null}}") !=
        std::string::npos);
  capnp::MallocMessageBuilder m;
  auto empty = m.initRoot<capnp::DynamicStruct>(all());
  auto fresh = encode(empty.asReader());
  CHECK(fresh.find("\"item\":null") != std::string::npos);
  CHECK(fresh.find("\"text\":\"\"") != std::string::npos); // Text, Data, List: their defaults
  CHECK(fresh.find("\"ints\":[]") != std::string::npos);
  CHECK(fresh.find("\"greeting\":\"hello\"") != std::string::npos);
}

TEST_CASE("a union member is named by its field, and only one may be given", "[json]") {
  auto r = decode_ok(R"({"label": "hi", "shape": {"square": 2}})");
  CHECK(text_of(r.get("label")) == "hi");
  auto json = encode(r.root.asReader());
  CHECK(json.find("\"label\":\"hi\"") != std::string::npos);
  CHECK(json.find("\"count\"") == std::string::npos); // inactive members are not written
  CHECK(json.find("\"none\"") == std::string::npos);
  CHECK(json.find("\"shape\":{\"square\":2}") != std::string::npos);
  auto point = decode_ok(R"({"point": {"x": 1, "y": -1}})");
  CHECK(encode(point.root.asReader()).find("\"point\":{\"x\":1,\"y\":-1}") != std::string::npos);
  auto voided = decode_ok(R"({"count": 5, "shape": {"empty": null}})");
  CHECK(encode(voided.root.asReader()).find("\"shape\":{\"empty\":null}") != std::string::npos);
  CHECK(error_of(R"({"count": 1, "label": "x"})") ==
        "fields 'count' and 'label' are members of one union: give at most one");
  CHECK(error_of(R"({"shape": {"circle": 1, "empty": null}})") ==
        "field 'shape': fields 'circle' and 'empty' are members of one union: give at most one");
  // null is no value: it selects no member, so another may follow.
  auto nulls = decode_ok(R"({"count": null, "label": "x"})");
  CHECK(text_of(nulls.get("label")) == "x");
}

TEST_CASE("Void is null, and null leaves any field at its default", "[json]") {
  auto r = decode_ok(R"({"nothing": null, "answer": null, "greeting": null, "item": null})");
  CHECK(r.get("answer").as<int32_t>() == 42);
  CHECK(text_of(r.get("greeting")) == "hello");
  CHECK(!r.root.has("item"));
  CHECK(encode(r.root.asReader()).rfind("{\"nothing\":null,\"flag\":false,", 0) == 0);
  CHECK(error_of(R"({"nothing": 0})") == "field 'nothing': expected null, found a number");
}

TEST_CASE("AnyPointer and interface fields are refused with a clear error", "[json]") {
  CHECK(error_of(R"({"any": {"a": 1}})") ==
        "field 'any': a field of type AnyPointer cannot be read from JSON (only null is accepted)");
  CHECK(error_of(R"({"service": 1})") ==
        "field 'service': a field of type interface cannot be read from JSON (only null is "
        "accepted)");
  CHECK(error_of(R"({"any": null, "service": null})").empty());
  capnp::MallocMessageBuilder m;
  auto b = m.initRoot<capnp::DynamicStruct>(all());
  CHECK(encode(b.asReader()).find("\"any\":null,\"service\":null") != std::string::npos);
  b.get("any").as<capnp::AnyPointer>().setAs<capnp::Text>("x");
  json_encoder e{all()};
  std::string out;
  auto err = e.encode(b.asReader(), out);
  REQUIRE(err);
  CHECK(err->to_string() == "field 'any': a set field of type AnyPointer cannot be written as JSON");
}

TEST_CASE("a key given twice is an error, however it is spelled", "[json]") {
  CHECK(error_of(R"({"i32": 1, "i32": 2})") == "key 'i32' appears twice");
  CHECK(error_of(R"({"i32": 1, "i\u0033\u0032": 2})") == "key 'i32' appears twice");
  CHECK(error_of(R"({"item": {"name": "a", "name": "b"}})") == "field 'item': key 'name' appears twice");
  CHECK(error_of(R"({"extra": 1, "extra": 1})") == "key 'extra' appears twice");
  CHECK(error_of(R"({"i32": null, "i32": 1})") == "key 'i32' appears twice");
}

TEST_CASE("unknown fields are ignored by default and refused on request", "[json]") {
  auto r = decode_ok(R"({"extra": {"deep": [1, {"x": null}], "s": "\u00e9"}, "i32": 5})");
  CHECK(r.get("i32").as<int32_t>() == 5);
  CHECK(error_of(R"({"extra": [1,,2], "i32": 5})") ==
        "expected a value, found ',' at byte 13");
  CHECK(error_of(R"({"extra": "\ud800", "i32": 5})") ==
        "a high surrogate (\\ud800) not followed by a low surrogate at byte 11");
  json_decode_options reject;
  reject.reject_unknown_fields = true;
  CHECK(error_of(R"({"i32": 5, "extra": 1})", reject) ==
        "field 'extra': no such field in All (unknown fields are rejected)");
  CHECK(error_of(R"({"item": {"colour": 1}})", reject) ==
        "field 'item.colour': no such field in Item (unknown fields are rejected)");
}

TEST_CASE("only exactly one JSON object is accepted", "[json]") {
  CHECK(error_of("") == "no JSON object (the text is empty or blank)");
  CHECK(error_of("   ") == "no JSON object (the text is empty or blank)");
  CHECK(error_of("[1, 2]") == "expected a JSON object, found an array at byte 0");
  CHECK(error_of(" 42") == "expected a JSON object, found a number at byte 1");
  CHECK(error_of("\"x\"") == "expected a JSON object, found a string at byte 0");
  CHECK(error_of("null") == "expected a JSON object, found null at byte 0");
  CHECK(error_of(R"({"i32": 1} x)") == "unexpected 'x' after the end of the object at byte 11");
  CHECK(error_of(R"({"i32": 1}{"i32": 2})") ==
        "unexpected '{' after the end of the object at byte 10");
  CHECK(error_of(R"({"i32": 1}})") == "unexpected '}' after the end of the object at byte 10");
  CHECK(error_of(R"({"i32": 1,})") == "expected a key (a string in double quotes), found '}' at byte 10");
  CHECK(error_of(R"({"i32": 1)") == "expected ',' or '}' in an object, found the end of the text at byte 9");
  CHECK(error_of(R"({"i32": 01})") == "malformed number (a leading zero) at byte 8");
  CHECK(error_of(R"({"flag": tru})") == "'tru' is not JSON (expected true; a string needs double quotes) at byte 9");
  CHECK(error_of("{\"i32\": 1}\r\n  ").empty()); // whitespace around is fine
}

TEST_CASE("required fields must be present and not null", "[json]") {
  json_decode_options o;
  o.required = {"text", "item.quantity", "pair.left"};
  CHECK(error_of(R"({"text": "a", "item": {"quantity": 1}, "pair": {"left": 0}})", o).empty());
  CHECK(error_of(R"({"item": {"quantity": 1}, "pair": {"left": 0}})", o) ==
        "field 'text': missing, and it is required");
  CHECK(error_of(R"({"text": null, "item": {"quantity": 1}, "pair": {"left": 0}})", o) ==
        "field 'text': missing, and it is required");
  CHECK(error_of(R"({"text": "a", "item": {}, "pair": {"left": 0}})", o) ==
        "field 'item.quantity': missing, and it is required");
  CHECK(error_of(R"({"text": "a", "pair": {"left": 0}})", o) ==
        "field 'item': missing, and it is required");
  auto bad = [](std::vector<std::string> paths) {
    json_decode_options x;
    x.required = std::move(paths);
    try {
      json_decoder d{all(), x};
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(bad({"nope"}) == "'nope': the payload struct has no field 'nope'");
  CHECK(bad({"item.nope"}) == "'item.nope': 'item' has no field 'nope'");
  CHECK(bad({"items.name"}) ==
        "'items.name': 'items' is a list, not a struct or group: a path goes through structs only");
  CHECK(bad({"i32.x"}) ==
        "'i32.x': 'i32' is Int32, not a struct or group: a path goes through structs only");
}

TEST_CASE("nesting deeper than Cap'n Proto reads back is refused", "[json]") {
  std::string deep = "{\"node\":";
  for (int i = 0; i < 70; ++i)
    deep += "{\"next\":";
  deep += "null" + std::string(71, '}');
  CHECK(error_of(deep).find("nested more than 60 levels deep") != std::string::npos);
  std::string ok = "{\"node\":";
  for (int i = 0; i < 50; ++i)
    ok += "{\"next\":";
  ok += "null" + std::string(51, '}');
  CHECK(error_of(ok).empty());
}

TEST_CASE("a value with every type round-trips through encoder and decoder", "[json]") {
  auto first = decode_ok(R"({"nothing": null, "flag": true, "i8": -8, "i16": -1600,
    "i32": -320000, "i64": -9223372036854775808, "u8": 8, "u16": 1600, "u32": 4294967295,
    "u64": 18446744073709551615, "f32": 1.5, "f64": -2.2250738585072014e-308,
    "text": "Jos\u00e9 \ud83d\ude00 \"q\" \\ \n", "bytes": "AP8=", "color": "green",
    "ints": [1, 2], "texts": ["\u4e2d"], "items": [{"name": "a", "price": 0.1, "quantity": 1}],
    "nested": [[1], []], "colors": ["red"], "bools": [true], "blobs": ["AQ=="],
    "floats": [1e300], "voids": [null], "item": {"name": "b"}, "node": {"value": 1},
    "point": {"x": 3, "y": 4}, "shape": {"circle": 0.5}, "pair": {"left": 1, "right": "r"},
    "any": null, "service": null, "answer": 7, "greeting": ""})");
  auto once = encode(first.root.asReader());
  auto second = decode_ok(once);
  CHECK(encode(second.root.asReader()) == once);
  CHECK(once ==
        R"({"nothing":null,"flag":true,"i8":-8,"i16":-1600,"i32":-320000,)"
        R"("i64":-9223372036854775808,"u8":8,"u16":1600,"u32":4294967295,)"
        R"("u64":18446744073709551615,"f32":1.5,"f64":-2.2250738585072014e-308,)"
        "\"text\":\"Jos\xc3\xa9 \xf0\x9f\x98\x80 \\\"q\\\" \\\\ \\n\",\"bytes\":\"AP8=\","
        R"("color":"green","ints":[1,2],"texts":[")" "\xe4\xb8\xad" R"("],)"
        R"("items":[{"name":"a","price":0.1,"quantity":1}],"nested":[[1],[]],"colors":["red"],)"
        R"("bools":[true],"blobs":["AQ=="],"floats":[1e+300],"voids":[null],)"
        R"("item":{"name":"b","price":0,"quantity":0},"node":{"value":1,"next":null},)"
        R"("point":{"x":3,"y":4},"shape":{"circle":0.5},"pair":{"left":1,"right":"r"},)"
        R"("any":null,"service":null,"answer":7,"greeting":""})");
}

TEST_CASE("decoding and encoding allocate nothing per line in the steady state", "[json]") {
  auto item = schema_named("Item");
  json_decoder d{item};
  json_encoder e{item};
  capnp::DynamicStruct::Reader value;
  std::string out;
  out.reserve(4096);
  const char* line = R"({"name": "Jos\u00e9 keyboard", "price": 49.5, "quantity": 12})";
  for (int i = 0; i < 3; ++i) { // warm up: buffers reach their size
    REQUIRE(!d.decode(line, value));
    out.clear();
    REQUIRE(!e.encode(value, out));
  }
  allocations = 0;
  counting = true;
  for (int i = 0; i < 1000; ++i) {
    auto err = d.decode(line, value);
    out.clear();
    auto err2 = e.encode(value, out);
    if (err || err2)
      break;
  }
  counting = false;
  CHECK(allocations.load() == 0);
  CHECK(out == "{\"name\":\"Jos\xc3\xa9 keyboard\",\"price\":49.5,\"quantity\":12}");
}

TEST_CASE("a struct written by an older schema is written with the newer fields' defaults",
          "[json]") {
  capnp::MallocMessageBuilder m;
  auto old = m.initRoot<capnp::DynamicStruct>(schema_named("Item"));
  old.set("name", "pen");
  old.set("quantity", 3u);
  auto as_new = m.getRoot<capnp::AnyPointer>().asReader().getAs<capnp::DynamicStruct>(
    schema_named("ItemV2"));
  CHECK(encode(as_new) == R"({"name":"pen","price":0,"quantity":3,"stock":7,"note":"n/a",)"
                          R"("fresh":true,"ratio":0.5})");
}

TEST_CASE("a value equal to a non-zero default reads back as itself", "[json]") {
  auto r = decode_ok(R"({"answer": 0, "greeting": ""})");
  CHECK(r.get("answer").as<int32_t>() == 0); // stored as 0 XOR 42
  CHECK(text_of(r.get("greeting")).empty());
  auto json = encode(r.root.asReader());
  CHECK(json.find("\"answer\":0,\"greeting\":\"\"}") != std::string::npos);
  CHECK(decode_ok(R"({})").get("answer").as<int32_t>() == 42);
  auto neg = decode_ok(R"({"f64": -0.0})");
  CHECK(encode(neg.root.asReader()).find("\"f64\":-0.0,") != std::string::npos);
}
