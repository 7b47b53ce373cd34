// A stranger's app, written from scratch in a temp folder with only the docs to go on: two
// schema files of its own, two struct types on two edges, built-in stages only. Real `troupe`
// processes; the outputs are checked against the inputs with the tests' own JSON reader.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

using namespace troupe::test;

namespace {

void write_app(const temp_dir& dir) {
  write_file(dir / "sensors.capnp", "@0xd8c4a2f0b1e39a57;\n"
                                    "struct Reading {\n"
                                    "  sensor @0 :Text;\n"
                                    "  celsius @1 :Float64;\n"
                                    "}\n"
                                    "struct Meta { note @0 :Text; }\n");
  write_file(dir / "alerts.capnp", "@0xe1b7c3d9a2f04b68;\n"
                                   "struct Alert {\n"
                                   "  sensor @0 :Text;\n"
                                   "  level @1 :UInt8;\n"
                                   "  text @2 :Text;\n"
                                   "}\n"
                                   "struct Meta { source @0 :Text; }\n");
  std::string readings, alerts;
  for (int i = 0; i < 40; ++i)
    readings +=
        "{\"sensor\":\"s" + std::to_string(i % 3) + "\",\"celsius\":" + std::to_string(i) + ".5}\n";
  for (int i = 0; i < 7; ++i)
    alerts += "{\"sensor\":\"s" + std::to_string(i) + "\",\"level\":" + std::to_string(i % 4) +
              ",\"text\":\"alert " + std::to_string(i) + "\"}\n";
  write_file(dir / "readings.jsonl", readings);
  write_file(dir / "alerts.jsonl", alerts);
  write_file(dir / "app.yaml",
             "app: plant\n"
             "schema:\n"
             "  files: [sensors.capnp, alerts.capnp]\n"
             "edges:\n"
             "  readings: {type: Reading}\n"
             "  alerts: {type: Alert}\n"
             "stages:\n"
             "  - {name: read_readings, type: jsonl_source, path: readings.jsonl, "
             "output: readings}\n"
             "  - {name: read_alerts, type: jsonl_source, path: alerts.jsonl, "
             "output: alerts}\n"
             "  - {name: keep_readings, type: jsonl_sink, input: readings, "
             "path: out/readings.jsonl}\n"
             "  - {name: keep_alerts, type: jsonl_sink, input: alerts, "
             "path: out/alerts.jsonl}\n");
}

// Every line of `out` equals the line of `in` at the same place, as JSON objects.
void check_same_objects(const std::string& in, const std::string& out, size_t lines) {
  bool complete = false;
  auto in_text = read_file(in), out_text = read_file(out);
  auto want = split_lines(in_text, complete);
  auto got = split_lines(out_text, complete);
  CHECK(complete);
  REQUIRE(got.size() == lines);
  REQUIRE(want.size() == lines);
  for (size_t i = 0; i < lines; ++i) {
    INFO(out << " line " << i + 1 << ": " << got[i] << "\n  expected " << want[i]);
    auto a = parse_flat_json(want[i]), b = parse_flat_json(got[i]);
    REQUIRE((a && b));
    REQUIRE(a->size() == b->size());
    for (const auto& [key, value] : *a) {
      REQUIRE(b->count(key));
      CHECK(b->at(key).text == value.text);
    }
  }
}

} // namespace

TEST_CASE("an app from scratch carries its own two structs on two edges", "[e2e]") {
  temp_dir dir;
  write_app(dir);
  auto lint = run_troupe({"lint", dir / "app.yaml"});
  INFO(lint.output);
  REQUIRE(exit_code(lint.status) == 0);
  CHECK_THAT(lint.output, Catch::Contains("ok (app plant, 4 stages, 2 edges)"));

  auto run = run_troupe({"run", dir / "app.yaml", "--data-dir", dir / "data"});
  INFO(run.output);
  REQUIRE(exit_code(run.status) == 0);
  check_same_objects(dir / "readings.jsonl", dir / "out/readings.jsonl", 40);
  check_same_objects(dir / "alerts.jsonl", dir / "out/alerts.jsonl", 7);
}

TEST_CASE("the stranger's app says which struct is meant and which edge has none", "[e2e]") {
  temp_dir dir;
  write_app(dir);
  auto ambiguous = run_troupe({"lint", dir / "app.yaml", "--set", "edges.alerts.type=Meta"});
  INFO(ambiguous.output);
  CHECK(exit_code(ambiguous.status) == 2);
  CHECK_THAT(ambiguous.output,
             Catch::Contains("--set edges.alerts.type=Meta: 'Meta' is declared in more than one "
                             "schema file; write one of sensors.capnp:Meta or alerts.capnp:Meta "
                             "to say which"));
  auto qualified =
      run_troupe({"lint", dir / "app.yaml", "--set", "edges.alerts.type=alerts.capnp:Meta"});
  CHECK(exit_code(qualified.status) == 0);

  auto none = run_troupe({"lint", dir / "app.yaml", "--set", "edges.alerts={}"});
  INFO(none.output);
  CHECK(exit_code(none.status) == 2);
  CHECK_THAT(none.output,
             Catch::Contains("stage 'read_alerts' (type 'jsonl_source') needs a payload struct "
                             "on edge 'alerts', which carries none"));
  CHECK_THAT(none.output,
             Catch::Contains("stage 'keep_alerts' (type 'jsonl_sink') needs a payload struct on "
                             "edge 'alerts', which carries none"));
}
