// Tests of runtime/src/config/app_schema.cpp and app_payload_checks.cpp: several schema files,
// the struct each edge carries, and the checks of producers and consumers against it. The
// typed test stages declare structs of troupe's own envelope.capnp by their generated types;
// the fixtures parse the same file at run time, which gives its structs the same ids.
#include "config_support.hpp"

#include "envelope.capnp.h"

#include <catch2/catch.hpp>

using namespace troupe;
using namespace troupe::test;

namespace {

void add_typed_types(registry& reg) {
  reg.add(type("test.emits_gen", stage_kind::source))
      .outputs({"out"})
      .emits<schema::Generated>("out");
  reg.add(type("test.gen_to_id", stage_kind::op))
      .outputs({"out"})
      .reads<schema::Generated>()
      .emits<schema::RecordId>("out");
  reg.add(type("test.reads_id", stage_kind::sink)).reads<schema::RecordId>();
  reg.add(type("test.json_like", stage_kind::sink)).needs_payload_struct();
}

std::string carried(const loaded& l, const std::string& edge) {
  auto i = l.app().edge_payloads.find(edge);
  return i == l.app().edge_payloads.end() ? "(none)" : i->second.name;
}

} // namespace

TEST_CASE("edges name structs from several schema files, qualified where needed",
          "[runtime][config]") {
  loaded l("schema_files.yaml");
  INFO(dump(l.issues()));
  REQUIRE(l.result.app);
  CHECK(l.app().schema_files.size() == 2);
  CHECK(l.app().payload_type == "orders.capnp:Order");
  CHECK(carried(l, "orders") == "orders.capnp:Order"); // the default
  CHECK(carried(l, "invoices") == "billing.capnp:Invoice");
  CHECK(carried(l, "lines") == "orders.capnp:Order.Line");
  CHECK(carried(l, "theirs") == "billing.capnp:Order");
  // The stages see them through their params.
  const auto& bill = *l.app().stages[1].stage_params;
  REQUIRE(bill.input_schema("orders"));
  CHECK(bill.input_schema("orders")->getShortDisplayName() == "Order");
  REQUIRE(bill.output_schema("out"));
  CHECK(bill.output_schema("out")->getShortDisplayName() == "Invoice");
  CHECK_FALSE(bill.output_schema("rejects")); // not connected
  CHECK_FALSE(bill.input_schema("lines"));    // not its input
}

TEST_CASE("a struct name that is ambiguous, unknown or not a struct says so", "[runtime][config]") {
  loaded l("schema_types_bad.yaml");
  check_issue(l, "edges.a.type", 5, 13,
              "'Order' is declared in more than one schema file; write one of "
              "orders.capnp:Order or billing.capnp:Order to say which");
  check_issue(l, "edges.b.type", 6, 13,
              "no declaration 'Invoce' in the schema files (did you mean 'Invoice'?)");
  check_issue(l, "edges.c.type", 7, 13,
              "no schema file 'nowhere.capnp' in schema.files; the files: orders.capnp, "
              "billing.capnp");
  check_issue(l, "edges.d.type", 8, 13, "expected a struct, found 'Color', an enum");
  check_issue(l, "edges.e.type", 9, 13, "no declaration 'Lien' in Order (did you mean 'Line'?)");
  CHECK(l.issues().size() == 5);

  loaded both("schema_files_bad.yaml");
  check_issue(both, "schema.files", 3, 10, "give either 'file' or 'files', not both");
  CHECK(both.issues().size() == 1); // the edge's type is not looked up in a failed schema
}

TEST_CASE("an edge that names a struct in an app without a schema is an error",
          "[runtime][config]") {
  temp_dir d;
  auto file = d.write("app.yaml", "app: no-schema\n"
                                  "edges: {x: {type: Order}}\n"
                                  "stages:\n"
                                  "  - {name: gen, type: test.source, output: x}\n"
                                  "  - {name: out, type: test.sink, input: x}\n");
  loaded l(file, load_options{});
  REQUIRE(l.issues().size() == 1);
  check_issue(l, "edges.x.type", 2, 19,
              "edge 'x' names the struct 'Order', but the app has no schema (add schema: "
              "{files: [your.capnp]})");
}

TEST_CASE("what a port emits, what an edge carries and what a stage reads must agree",
          "[runtime][config]") {
  loaded l("payload_checks.yaml", load_options{}, add_typed_types);
  INFO(dump(l.issues()));
  auto at = [&](const std::string& field, int line) {
    auto* i = find_issue(l.issues(), field, line);
    return i ? i->message : "(no issue about " + field + " at line " + std::to_string(line) + ")";
  };
  // A port that emits another struct than the edge's type, or than the default.
  CHECK(at("stages[3].output", 10) ==
        "stage 'gen2' port 'out' emits envelope.capnp:Generated, but edge 'wrong' carries "
        "envelope.capnp:DeadLetter (edges.wrong.type, line 5); set edges.wrong.type to the "
        "struct the port emits");
  CHECK(at("stages[5].output", 12) ==
        "stage 'conv2' port 'out' emits envelope.capnp:RecordId, but edge 'def' carries "
        "envelope.capnp:Generated (schema.payload, the default); set edges.def.type to the "
        "struct the port emits");
  // A stage that reads another struct than the edge carries.
  CHECK(at("stages[6].input", 13) ==
        "stage 'readid2' reads envelope.capnp:RecordId, but edge 'def' carries "
        "envelope.capnp:Generated (schema.payload, the default)");
  CHECK(at("stages[7].input", 14) ==
        "stage 'readid3' reads envelope.capnp:RecordId, but edge 'gens' carries "
        "envelope.capnp:Generated (schema.payload, the default)");
  CHECK(l.issues().size() == 4); // gen -> conv -> readid agree, and sink2 takes anything
}

TEST_CASE("an edge without a type carries what its producer emits; a stage that needs a struct "
          "gets one or fails",
          "[runtime][config]") {
  loaded l("payload_inferred.yaml", load_options{}, add_typed_types);
  INFO(dump(l.issues()));
  auto at = [&](const std::string& field, int line) {
    auto* i = find_issue(l.issues(), field, line);
    return i ? i->message : "(no issue about " + field + " at line " + std::to_string(line) + ")";
  };
  CHECK(at("stages[2].input", 6) ==
        "stage 'readid' reads envelope.capnp:RecordId, but edge 'gens' carries "
        "envelope.capnp:Generated (as stage 'gen' port 'out' emits)");
  CHECK(at("stages[4].input", 8) ==
        "stage 'json2' (type 'test.json_like') needs a payload struct on edge 'untyped', which "
        "carries none; name one with edges.untyped.type or schema.payload");
  CHECK(l.issues().size() == 2); // 'json' reads gens, which carries Generated: fine

  loaded fixed("payload_inferred.yaml",
               load_options{{}, {"stages.readid.type=test.sink", "edges.untyped.type=RecordId"}},
               add_typed_types);
  INFO(dump(fixed.issues()));
  REQUIRE(fixed.result.app);
  CHECK(carried(fixed, "gens") == "envelope.capnp:Generated");
  CHECK(carried(fixed, "untyped") == "envelope.capnp:RecordId");
}
