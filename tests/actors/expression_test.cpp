// Expressions of filter and splitter (actors/expression.hpp) over the test schema's All struct,
// records built from JSON.
#include "expression.hpp"
#include "field_path.hpp"

#include "config/schema_loader.hpp"

#include <troupe/json.hpp>

#include <catch2/catch.hpp>

#include <memory>

using troupe::expression;
using troupe::expression_error;

namespace {

capnp::StructSchema all() {
  static troupe::schema_loader loader;
  static capnp::ParsedSchema file =
    loader.parse(std::string(TROUPE_TEST_DATA) + "/json/all_types.capnp");
  return file.getNested("All").asStruct();
}

struct record {
  std::unique_ptr<capnp::MallocMessageBuilder> message = std::make_unique<capnp::MallocMessageBuilder>();
  capnp::DynamicStruct::Reader root;
};

record from_json(std::string_view json) {
  record r;
  auto b = r.message->initRoot<capnp::DynamicStruct>(all());
  troupe::json_decoder d{all()};
  auto err = d.decode(json, b);
  INFO(json);
  REQUIRE_FALSE(err);
  r.root = b.asReader();
  return r;
}

bool eval(const std::string& expr, std::string_view json) {
  expression e(all(), expr);
  auto r = from_json(json);
  return e.matches(r.root);
}

// The message of the error an expression gets at load ("" if it parses), and its column.
std::pair<std::string, size_t> error_of(const std::string& expr) {
  try {
    expression e(all(), expr);
    return {"", 0};
  } catch (const expression_error& e) {
    return {e.what(), e.column()};
  }
}

} // namespace

TEST_CASE("comparisons of numbers, text, bools and enums", "[actors][expression]") {
  auto j = R"({"i32": -5, "u64": 18446744073709551615, "f64": 2.5, "text": "José",
               "flag": true, "color": "blueSky", "item": {"name": "pen", "price": 1.5}})";
  CHECK(eval("i32 == -5", j));
  CHECK(eval("i32 < 0 && i32 >= -5", j));
  CHECK_FALSE(eval("i32 > -5", j));
  CHECK(eval("u64 == 18446744073709551615", j)); // exact: not through a double
  CHECK_FALSE(eval("u64 == 18446744073709551614", j));
  CHECK(eval("u64 > i32", j));                   // unsigned against negative signed
  CHECK(eval("f64 > 2 && f64 < 2.6 && f64 == 2.5", j));
  CHECK(eval("text == \"José\" && text != 'Jose'", j));
  CHECK(eval("text < \"Z\"", j)); // bytes order
  CHECK(eval("flag", j));
  CHECK(eval("flag == true && !(flag == false)", j));
  CHECK(eval("color == blueSky && color == \"blueSky\" && color != red", j));
  CHECK(eval("item.name == 'pen' && item.price == 1.5", j)); // nested structs
}

TEST_CASE("in, starts_with, contains, has, and the boolean operators", "[actors][expression]") {
  auto j = R"({"text": "order-17 express", "i64": 3, "color": "green", "item": {"name": "ink"}})";
  CHECK(eval("i64 in [1, 2, 3]", j));
  CHECK_FALSE(eval("i64 in [4, 5]", j));
  CHECK(eval("color in [red, green]", j));
  CHECK(eval("text in ['a', 'order-17 express']", j));
  CHECK(eval("text starts_with 'order-' && text contains 'press'", j));
  CHECK_FALSE(eval("text starts_with 'express'", j));
  CHECK(eval("has(text) && has(item) && has(item.name) && !has(bytes)", j));
  CHECK(eval("!has(label) && !has(point.x)", j)); // union members not set
  CHECK(eval("i64 == 1 || i64 == 3", j));
  CHECK(eval("(i64 == 1 || i64 == 3) && color == green", j));
  CHECK_FALSE(eval("i64 == 1 || i64 == 2 && color == green", j)); // && binds tighter
  CHECK(eval("i64 == 3 || i64 == 2 && color == red", j));
}

TEST_CASE("a field the record lacks is reported, unless has() guards it", "[actors][expression]") {
  auto j = R"({"i64": 3})";
  CHECK_THROWS_AS(eval("text == 'x'", j), troupe::missing_field);
  CHECK_THROWS_WITH(eval("item.name == 'x'", j), Catch::Contains("item.name"));
  CHECK_FALSE(eval("has(text) && text == 'x'", j)); // short-circuit: never read
  CHECK(eval("i64 == 3 || text == 'x'", j));
  // A scalar is never absent: a missing one reads as its default, as Cap'n Proto defines.
  CHECK(eval("i32 == 0 && answer == 42", j));
}

TEST_CASE("mistakes are refused at load with their column", "[actors][expression]") {
  CHECK(error_of("i32 == 1").first.empty());
  auto [m1, c1] = error_of("i32 = 1");
  CHECK(c1 == 5);
  CHECK_THAT(m1, Catch::Contains("'=='"));
  auto [m2, c2] = error_of("i32 == 1 && nme == 'x'");
  CHECK(c2 == 13);
  CHECK_THAT(m2, Catch::Contains("no field 'nme'"));
  auto [m3, c3] = error_of("text == 5");
  CHECK(c3 == 9);
  CHECK_THAT(m3, Catch::Contains("compares text with a number"));
  CHECK_THAT(error_of("color == purple").first, Catch::Contains("not a value of Color") &&
                                                    Catch::Contains("blueSky"));
  CHECK_THAT(error_of("flag < true").first, Catch::Contains("use == or !="));
  CHECK_THAT(error_of("i32").first, Catch::Contains("not a condition"));
  CHECK_THAT(error_of("(i32 == 1").first, Catch::Contains("expected ')'"));
  CHECK_THAT(error_of("i32 == 1 )").first, Catch::Contains("unexpected ')'"));
  CHECK_THAT(error_of("text == 'open").first, Catch::Contains("never closed"));
  CHECK_THAT(error_of("items == 1").first, Catch::Contains("cannot compare"));
  CHECK_THAT(error_of("i32 in [1, i64]").first, Catch::Contains("literals"));
  CHECK_THAT(error_of("i32 starts_with 'a'").first, Catch::Contains("takes text"));
  CHECK_THAT(error_of("text == x").first, Catch::Contains("needs quotes"));
  CHECK_THAT(error_of("i32 & 1").first, Catch::Contains("'&&'"));
  CHECK_THAT(error_of("  ").first, Catch::Contains("empty"));
  CHECK_THAT(error_of("i32 == 99999999999999999999").first, Catch::Contains("out of range"));
  CHECK_THAT(error_of("i32 == 12abc").first, Catch::Contains("not a number"));
  CHECK_THAT(error_of("color < red").first, Catch::Contains("not enums"));
}

TEST_CASE("field paths go through structs and groups, and know what is absent",
          "[actors][expression]") {
  troupe::field_path name(all(), "item.name");
  auto with = from_json(R"({"item": {"name": "pen"}})");
  auto without = from_json(R"({"i32": 1})");
  REQUIRE(name.get(with.root));
  CHECK(name.get(with.root)->as<capnp::Text>() == "pen");
  CHECK_FALSE(name.get(without.root));
  CHECK(troupe::field_path(all(), "pair.left").has(without.root)); // a group is always there
  CHECK_THROWS_WITH(troupe::field_path(all(), "item.colour"), Catch::Contains("no field 'colour'"));
  CHECK_THROWS_WITH(troupe::field_path(all(), "i32.x"), Catch::Contains("not a struct"));
  CHECK(troupe::key_bytes(*troupe::field_path(all(), "item.name").get(with.root)) == "pen");
  CHECK(troupe::key_bytes(*troupe::field_path(all(), "i32").get(without.root)) == "1");
}

TEST_CASE("an enumerant written bare wins over a field of the same name", "[actors][expression]") {
  // All has a field named `red`? No: use Item's `name` against Color via a struct that has both.
  // The test schema's Color has `green`; All has no field `green`, but `text` compares as text:
  CHECK(eval("color == green", R"({"color": "green"})"));
  CHECK(eval("color in [red, green]", R"({"color": "green"})"));
  CHECK_FALSE(eval("color in [red, blueSky]", R"({"color": "green"})"));
}

TEST_CASE("fields are read straight from the struct: every scalar, defaults, unions, groups",
          "[actors][expression]") {
  auto j = R"({"i8": -128, "i16": -300, "u8": 255, "u16": 65535, "u32": 4000000000,
               "f32": 1.5, "bytes": "aGk=", "flag": false, "point": {"x": 3, "y": -4},
               "shape": {"circle": 2.5}, "pair": {"left": 7, "right": "r"}})";
  CHECK(eval("i8 == -128 && i16 == -300 && u8 == 255 && u16 == 65535 && u32 == 4000000000", j));
  CHECK(eval("f32 == 1.5 && f32 > 1.4999", j));
  CHECK(eval("bytes == 'hi'", j)); // Data compares as bytes
  CHECK_THROWS_AS(eval("greeting == 'hello'", j), troupe::missing_field); // never set: absent
  CHECK(eval("!flag && answer == 42 && !has(greeting)", j));
  CHECK(eval("point.x == 3 && point.y == -4 && has(point.x)", j)); // a group in the union
  CHECK_FALSE(eval("has(label) || has(count)", j));
  CHECK(eval("shape.circle == 2.5 && !has(shape.square)", j));
  CHECK(eval("pair.left == 7 && pair.right == 'r'", j));
  CHECK_THROWS_AS(eval("shape.square == 1", j), troupe::missing_field);
  auto k = R"({"count": 9})";
  CHECK(eval("count == 9 && has(count) && !has(point.x)", k));
  CHECK_THROWS_AS(eval("point.x == 0", k), troupe::missing_field);
}
