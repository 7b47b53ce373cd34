// Tests of the app loader (runtime/src/app_config.cpp and the files beside it) and of
// registry.cpp: loading and checking app files. The
// fixtures are in tests/data/config/; each issue is asserted with its exact line, column and
// field, so a fixture's line numbers are part of the test.
#include "config_support.hpp"

#include <catch2/catch.hpp>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

TEST_CASE("the registry finds what was added and refuses a duplicate name", "[runtime][config]") {
  registry reg;
  add_test_types(reg);
  REQUIRE(reg.find("test.op") != nullptr);
  CHECK(reg.find("test.op")->optional_outputs == std::vector<std::string>{"rejects"});
  CHECK(reg.find("test.nope") == nullptr);
  CHECK(reg.names().front() == "test.op"); // sorted
  CHECK(reg.names().size() == 7);
  CHECK_THROWS_AS(reg.add(type("test.op", stage_kind::op)), std::invalid_argument);
}

TEST_CASE("sizes parse as bytes with optional binary units", "[runtime][config]") {
  CHECK(parse_size("4096") == 4096u);
  CHECK(parse_size("0") == 0u);
  CHECK(parse_size("1K") == 1024u);
  CHECK(parse_size("1KiB") == 1024u);
  CHECK(parse_size("512MiB") == 512u << 20);
  CHECK(parse_size("2M") == 2u << 20);
  CHECK(parse_size("1GiB") == uint64_t{1} << 30);
  CHECK(parse_size("3G") == uint64_t{3} << 30);
  CHECK(parse_size("1TiB") == uint64_t{1} << 40);
  CHECK(parse_size("2T") == uint64_t{2} << 40);
  CHECK(parse_size("64B") == 64u);
  CHECK(parse_size(" 2 MiB ") == 2u << 20);
  CHECK(parse_size("18446744073709551615") == UINT64_MAX);
  CHECK_FALSE(parse_size("18446744073709551616")); // overflows
  CHECK_FALSE(parse_size("16777216TiB"));          // 2^64 bytes
  CHECK_FALSE(parse_size(""));
  CHECK_FALSE(parse_size("GiB"));
  CHECK_FALSE(parse_size("1GB")); // decimal or binary? refused rather than guessed
  CHECK_FALSE(parse_size("1gib"));
  CHECK_FALSE(parse_size("1.5GiB"));
  CHECK_FALSE(parse_size("-1"));
  CHECK_FALSE(parse_size("1 GiB extra"));
}

TEST_CASE("durations parse as whole units, compound allowed", "[runtime][config]") {
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("2s") == 2000ms);
  CHECK(parse_duration("5m") == 300000ms);
  CHECK(parse_duration("1h") == 3600000ms);
  CHECK(parse_duration("1d") == 86400000ms);
  CHECK(parse_duration("1h30m") == 5400000ms);
  CHECK(parse_duration("1s500ms") == 1500ms);
  CHECK(parse_duration("0") == 0ms);
  CHECK(parse_duration("0ms") == 0ms);
  CHECK(parse_duration(" 10s ") == 10000ms);
  CHECK_FALSE(parse_duration("60")); // a bare number has no unit: seconds or millis?
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("ms"));
  CHECK_FALSE(parse_duration("1.5s"));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration("2 s"));
  CHECK_FALSE(parse_duration("1x"));
  CHECK_FALSE(parse_duration("1S"));
  CHECK_FALSE(parse_duration("99999999999999999999d"));
}

TEST_CASE("an issue prints as file:line:col: field: message", "[runtime][config]") {
  CHECK(config_issue{"app.yaml", 12, 5, "stages[2].batch.max_items", "must be > 0"}.to_string() ==
        "app.yaml:12:5: stages[2].batch.max_items: must be > 0");
  CHECK(config_issue{"app.yaml", 3, 0, "", "bad"}.to_string() == "app.yaml:3: bad");
  CHECK(config_issue{"app.yaml", 0, 0, "plugins[0]", "gone"}.to_string() ==
        "app.yaml: plugins[0]: gone");
}

TEST_CASE("a full app loads with every override applied", "[runtime][config]") {
  loaded l("valid.yaml");
  INFO(dump(l.issues()));
  REQUIRE(l.issues().empty());
  REQUIRE(l.result.app);
  const auto& app = l.app();
  CHECK(app.name == "full-app");
  CHECK(app.file == dir + "valid.yaml");
  CHECK(fs::path(app.base_dir) == fs::path(dir).lexically_normal().parent_path());
  CHECK(app.data_dir == "/tmp/troupe-config-test/full");
  CHECK(app.mode == durability::sync);
  CHECK(app.map_size == uint64_t{512} << 20);
  CHECK(app.flush_interval == 250ms);
  CHECK(app.schema_files == std::vector<std::string>{(fs::path(app.base_dir) / "orders.capnp").string()});
  CHECK(app.payload_type == "Order");
  REQUIRE(app.payload_schema);
  CHECK(app.payload_schema->getFieldByName("item").getProto().getName() == "item");

  const auto& node = app.node_supervision;
  CHECK(node.strategy == restart_strategy::rest_for_one);
  CHECK(node.max_restarts == 5);
  CHECK(node.within == 30000ms);
  CHECK(node.backoff_min == 200ms);
  CHECK(node.backoff_max == 5000ms);
  CHECK(node.jitter == Approx(0.1));

  REQUIRE(app.stages.size() == 5);
  const auto& read = app.stages[0];
  CHECK(read.name == "read");
  CHECK(read.type == "test.source");
  CHECK(read.type_info == l.reg.find("test.source"));
  CHECK(read.line == 25);
  CHECK(read.inputs.empty());
  CHECK(read.outputs == std::vector<std::pair<std::string, std::string>>{{"out", "orders"}});
  CHECK(read.workers == 1);
  CHECK(read.batch.max_items == 256); // from defaults
  CHECK(read.batch.max_delay == 5ms);
  CHECK(read.retry.max_attempts == 5);
  CHECK(read.retry.backoff == 10ms);
  CHECK(read.supervision.strategy == restart_strategy::rest_for_one); // from the top level
  CHECK(read.supervision.max_restarts == 7);                          // from defaults
  CHECK(read.supervision.jitter == Approx(0.1));

  const auto& price = app.stages[1];
  CHECK(price.inputs == std::vector<std::string>{"orders"});
  CHECK(price.outputs == std::vector<std::pair<std::string, std::string>>{{"out", "priced"},
                                                                          {"rejects", "rejected"}});
  CHECK(price.workers == 3);
  CHECK(price.batch.max_items == 64);   // its own
  CHECK(price.batch.max_delay == 5ms);  // defaults
  CHECK(price.retry.max_attempts == 5); // defaults
  CHECK(price.retry.backoff == 1000ms); // its own
  CHECK(price.supervision.strategy == restart_strategy::one_for_all);
  CHECK(price.supervision.max_restarts == 7);    // defaults
  CHECK(price.supervision.within == 30000ms);    // top level
  CHECK(price.supervision.backoff_min == 200ms); // top level
  CHECK(price.supervision.jitter == 0.0);        // its own

  REQUIRE(app.edges.size() == 3);
  CHECK(app.edges[0].name == "orders");
  CHECK(app.edges[0].max_records == 5000);
  CHECK(app.edges[0].keep.count == 100);
  CHECK(app.edges[0].keep.age_ms == 3600000);
  CHECK(app.edges[0].groups ==
        std::vector<std::string>{"price", "audit"});
  CHECK(app.edges[0].default_partitions == 3); // its most parallel reader has 3 workers
  CHECK(app.edges[1].name == "priced");
  CHECK(app.edges[1].max_records == 1000000);
  CHECK(app.edges[1].keep.count == 100000);
  CHECK(app.edges[1].keep.age_ms == 0);
  CHECK(app.edges[1].groups == std::vector<std::string>{"write"});
  CHECK(app.edges[2].name == "rejected");
  CHECK(app.edges[2].groups == std::vector<std::string>{"dead"});

  auto layout = layout_of(app);
  REQUIRE(layout.edges.size() == 3);
  CHECK(layout.edges[0].groups == app.edges[0].groups);
  REQUIRE(layout.stages.size() == 5);
  CHECK(layout.stages[1].name == "price");
  CHECK(layout.stages[1].workers == 3);
  CHECK(layout.stages[4].name == "dead");
}

TEST_CASE("a stage's params read its own keys only", "[runtime][config]") {
  loaded l("valid.yaml");
  REQUIRE(l.result.app);
  const auto& read = *l.app().stages[0].stage_params;
  CHECK(read.get_path("path") == (fs::path(l.app().base_dir) / "input.jsonl").string());
  CHECK(read.get_string("path") == "input.jsonl");
  // The runtime's own keys are not params, and a type reads only the params it declares.
  CHECK_THROWS_WITH(read.has("name"), Catch::Contains("stage type 'test.source' reads the param "
                                                      "'name' but does not declare it"));
  CHECK_THROWS_AS(read.get_string("output", ""), config_error);
  REQUIRE(read.payload_schema());
  CHECK(read.payload_schema()->getProto().getId() == l.app().payload_schema->getProto().getId());

  const auto& price = *l.app().stages[1].stage_params;
  CHECK(price.has("factor"));
  CHECK_FALSE(price.has("absent"));
  CHECK(price.get_double("factor", 0) == 1.5);
  CHECK(price.get_bool("enabled", false));
  CHECK(price.get_u64("limit", 0) == 42);
  CHECK(price.get_u64("absent", 7) == 7);
  CHECK(price.get_string("absent", "dflt") == "dflt");
  CHECK(price.get_string("limit") == "42");

  // Errors carry the key's location, already formatted.
  auto message = [&](auto&& call) {
    try {
      call();
    } catch (const config_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto file = dir + "valid.yaml";
  CHECK(message([&] { price.get_u64("factor", 0); }) ==
        file + ":37:13: stages[1].factor: expected a non-negative integer, found '1.5'");
  CHECK(message([&] { price.get_bool("limit", false); }) ==
        file + ":39:12: stages[1].limit: expected true or false, found '42'");
  CHECK(message([&] { price.get_string("tags"); }) ==
        file + ":40:11: stages[1].tags: expected a string, found a list");
  CHECK(message([&] { price.get_string("missing"); }) ==
        file + ":29:5: stages[1].missing: missing key 'missing' (expected a string)");
  CHECK(message([&] { price.fail("factor", "too big"); }) ==
        file + ":37:13: stages[1].factor: too big");
  CHECK(message([&] { price.fail("nothere", "must be set with factor"); }) ==
        file + ":29:5: stages[1].nothere: must be set with factor");

  const auto& write = *l.app().stages[2].stage_params;
  CHECK(write.get_path("path") == "/abs/out.jsonl");
}

TEST_CASE("defaults apply when the file sets nothing", "[runtime][config]") {
  loaded l("minimal.yaml");
  INFO(dump(l.issues()));
  REQUIRE(l.result.app);
  const auto& app = l.app();
  CHECK(app.data_dir == (fs::current_path() / "troupe-data" / "mini").string());
  CHECK(app.mode == durability::process);
  CHECK(app.map_size == uint64_t{1} << 30);
  CHECK(app.flush_interval == 1000ms);
  CHECK(app.plugins.empty());
  CHECK(app.schema_files.empty());
  CHECK_FALSE(app.payload_schema);
  CHECK(app.node_supervision.strategy == restart_strategy::one_for_one);
  CHECK(app.node_supervision.max_restarts == 5);
  CHECK(app.node_supervision.within == 60000ms);
  REQUIRE(app.stages.size() == 2);
  const auto& gen = app.stages[0];
  CHECK(gen.batch.max_items == 1024);
  CHECK(gen.batch.max_delay == 0ms);
  CHECK(gen.retry.max_attempts == 3);
  CHECK(gen.retry.backoff == 50ms);
  CHECK(gen.supervision.backoff_min == 100ms);
  CHECK(gen.supervision.backoff_max == 5000ms);
  CHECK(gen.supervision.jitter == Approx(0.2));
  CHECK_FALSE(gen.stage_params->payload_schema());
  REQUIRE(app.edges.size() == 1);
  CHECK(app.edges[0].name == "numbers");
  CHECK(app.edges[0].max_records == 1000000);
  CHECK(app.edges[0].groups == std::vector<std::string>{"sink"});
}

TEST_CASE("the data dir can be overridden and is made absolute", "[runtime][config]") {
  loaded l("minimal.yaml", "some/where/");
  REQUIRE(l.result.app);
  CHECK(l.app().data_dir == (fs::current_path() / "some" / "where").string());
}

TEST_CASE("a missing app file is one issue", "[runtime][config]") {
  loaded l("no_such_file.yaml");
  REQUIRE(l.issues().size() == 1);
  CHECK(l.issues()[0].line == 0);
  CHECK_THAT(l.issues()[0].message, Catch::Contains("does not exist"));
  CHECK_FALSE(l.result.app);
}

TEST_CASE("a YAML syntax error reports the parser's position", "[runtime][config]") {
  loaded l("syntax_error.yaml");
  INFO(dump(l.issues()));
  REQUIRE(l.issues().size() == 1);
  CHECK(l.issues()[0].line == 4);
  CHECK(l.issues()[0].column == 22);
  CHECK_THAT(l.issues()[0].message, Catch::StartsWith("YAML syntax error: "));
}

TEST_CASE("a file that is not a map is refused", "[runtime][config]") {
  loaded l("not_a_map.yaml");
  REQUIRE(l.issues().size() == 1);
  check_issue(l, "", 1, 1, "expected a map of app settings (app, stages, ...), found a list");
}

TEST_CASE("app and stages are required, stages non-empty", "[runtime][config]") {
  loaded missing("missing_keys.yaml");
  CHECK(missing.issues().size() == 2);
  check_issue(missing, "app", 2, 1, "missing required key 'app'");
  check_issue(missing, "stages", 2, 1, "missing required key 'stages'");

  loaded empty("empty_stages.yaml");
  REQUIRE(empty.issues().size() == 1);
  check_issue(empty, "stages", 2, 9, "expected a non-empty list of stages, found an empty list");
}

TEST_CASE("unknown keys are caught at every level the runtime owns", "[runtime][config]") {
  loaded l("unknown_keys.yaml");
  check_issue(l, "stagse", 2, 1, "unknown key 'stagse' (did you mean 'stages'?)");
  check_issue(l, "store.mapsize", 4, 3, "did you mean 'map_size'?");
  check_issue(l, "supervision.stratgy", 6, 3, "did you mean 'strategy'?");
  check_issue(l, "supervision.backoff.maxx", 7, 22, "expected one of min, max, jitter");
  check_issue(l, "defaults.batch.max_item", 9, 11, "did you mean 'max_items'?");
  check_issue(l, "defaults.retry.attempts", 10, 11, "unknown key 'attempts'");
  check_issue(l, "defaults.workers", 11, 3, "expected one of batch, retry, supervision");
  check_issue(l, "edges.orders.max_record", 14, 5, "did you mean 'max_records'?");
  check_issue(l, "edges.orders.retention.cnt", 15, 17, "expected one of count, age");
  check_issue(l, "stages[0].batch.delay", 20, 27, "unknown key 'delay'");
  check_issue(l, "stages[1].input", 25, 5, "key 'input' is given twice");
  // A stage's keys are the runtime's or its type's params: test.sink declares none.
  check_issue(l, "stages[1].store", 24, 5,
              "unknown key 'store' (did you mean 'start'?); type 'test.sink' takes no params of its "
              "own, and the runtime's keys name, type, inputs");
  CHECK(l.issues().size() == 12);
  CHECK_FALSE(l.result.app);
}

TEST_CASE("bad numbers, sizes, durations and enums say what was expected", "[runtime][config]") {
  loaded l("bad_values.yaml");
  check_issue(l, "app", 1, 6, "expected an app name made of letters, digits");
  check_issue(l, "durability", 2, 13, "expected one of process | sync, found 'fast'");
  check_issue(l, "store.map_size", 4, 13,
              "expected a size of at least 4MiB such as 512MiB or 1GiB, found '1GB'");
  check_issue(l, "store.flush_interval", 5, 19, "expected a duration > 0 such as 250ms");
  check_issue(l, "supervision.strategy", 7, 13,
              "expected one of one_for_one | one_for_all | rest_for_one, found 'one_for_none' "
              "(did you mean 'one_for_one'?)");
  check_issue(l, "supervision.max_restarts", 8, 17,
              "expected an integer from 0 to 4294967295, found '-1'");
  check_issue(l, "supervision.within", 9, 11,
              "expected a duration > 0 such as 250ms, 2s, 5m, 1h or 1h30m, found '60'");
  check_issue(l, "supervision.backoff.jitter", 10, 40,
              "expected a number from 0 to 1, found '1.5'");
  check_issue(l, "supervision.backoff", 10, 12,
              "expected min <= max, found min 10000ms and max 1000ms");
  check_issue(l, "defaults.batch.max_items", 12, 22,
              "expected an integer from 1 to 4294967295, found '0'");
  check_issue(l, "defaults.retry.max_attempts", 13, 25,
              "expected an integer from 1 to 4294967295, found '4294967296'");
  check_issue(l, "edges.orders.max_records", 15, 25, "expected an integer >= 1, found '0'");
  check_issue(l, "edges.orders.retention.count", 15, 47,
              "expected a non-negative integer, found 'many'");
  check_issue(l, "edges.orders.retention.age", 15, 58, "expected a duration such as 250ms");
  check_issue(l, "stages[0].workers", 20, 14, "expected an integer from 1 to 4096, found '0'");
  check_issue(l, "stages[1].workers", 24, 14, "found '1.5'");
  check_issue(l, "stages[1].batch.max_delay", 25, 24, "found 'soon'");
  CHECK(l.issues().size() == 17);
}

TEST_CASE("stages are checked against their types", "[runtime][config]") {
  loaded l("stage_checks.yaml");
  check_issue(l, "stages[0].inputs", 5, 13, "a source (type 'test.source') reads no edges");
  check_issue(l, "stages[0].workers", 7, 14,
              "expected 1 (a source runs exactly one worker), found '2'");
  check_issue(l, "stages[1].name", 8, 11, "duplicate stage name 'src' (first used at line 3)");
  check_issue(l, "stages[1].outputs.reject", 11, 31,
              "type 'test.op' has no output port 'reject' (did you mean 'rejects'?); its ports: "
              "out, rejects");
  check_issue(l, "stages[2].inputs", 12, 5,
              "an operator (type 'test.op') needs at least one input");
  check_issue(l, "stages[2].outputs.out", 12, 5,
              "required output port 'out' of type 'test.op' is not connected");
  check_issue(l, "stages[3].outputs", 17, 14, "a sink (type 'test.sink') writes no edges");
  check_issue(l, "stages[4].type", 19, 11,
              "unknown stage type 'test.mystery'; known types: test.op, test.pathy, "
              "test.schema_sink, test.sink, test.source, test.strict, test.throws");
  // An unknown type's ports are not checked: there is nothing to check them against.
  for (const auto& i : l.issues())
    CHECK_THAT(i.message, !Catch::Contains("no output port 'nonsense'"));
  check_issue(l, "stages[5].input", 24, 12, "give either 'input' or 'inputs', not both");
  CHECK_FALSE(any_issue_about(l, "stages[1].outputs.rejects")); // optional: fine unconnected
}

TEST_CASE("the graph of edges is checked across stages", "[runtime][config]") {
  loaded l("graph_checks.yaml");
  check_issue(l, "edges.typo_edge", 4, 3, "unknown edge 'typo_edge': no stage reads or writes it");
  check_issue(l, "stages[1].output", 11, 13,
              "edge 'orders' is already written by stage 'a' (stages[0].output, line 8)");
  check_issue(l, "stages[2].inputs[1]", 14, 22,
              "stage reads edge 'orders' twice (also at stages[2].inputs[0])");
  check_issue(l, "stages[2].output", 15, 13,
              "dangling edge 'unused': written here but read by no stage");
  check_issue(l, "stages[3].inputs[1]", 18, 22,
              "dangling edge 'missing': read here but written by no stage");
  CHECK(l.issues().size() == 5);
}

TEST_CASE("stage constructors check their params at load time", "[runtime][config]") {
  loaded l("stage_params.yaml");
  check_issue(l, "stages[1].limit", 10, 12, "expected a non-negative integer, found 'lots'");
  check_issue(l, "stages[2].mode", 15, 11, "must not be 'bad'");
  check_issue(l, "stages[3]", 16, 5,
              "stage 'plain' (type 'test.throws'): this stage never likes its params");
  check_issue(l, "stages[4].path", 20, 5, "missing key 'path' (expected a string)");
  check_issue(l, "stages[5]", 23, 5, "needs the payload schema");
  CHECK(l.issues().size() == 5);
}

TEST_CASE("the payload schema is loaded, nested names and imports included", "[runtime][config]") {
  loaded nested("schema_nested.yaml");
  INFO(dump(nested.issues()));
  REQUIRE(nested.result.app);
  REQUIRE(nested.app().payload_schema);
  CHECK(nested.app().payload_schema->getShortDisplayName() == "Line");
  CHECK(nested.app().payload_type == "Order.Line");

  loaded imports("schema_import.yaml");
  INFO(dump(imports.issues()));
  REQUIRE(imports.result.app);
  REQUIRE(imports.app().payload_schema);
  CHECK(imports.app().payload_schema->getShortDisplayName() == "Tagged");
}

TEST_CASE("schema problems are reported where the schema is named", "[runtime][config]") {
  loaded missing("schema_missing.yaml");
  check_issue(missing, "schema.file", 3, 9, "nope.capnp does not exist");
  // The schema_sink stage is not built: it would only repeat the schema's problem.
  CHECK(missing.issues().size() == 1);

  loaded broken("schema_broken.yaml");
  check_issue(broken, "schema.file", 3, 9,
              "cannot parse schema " + dir + "broken.capnp: broken.capnp:5: Parse error.");
  CHECK(broken.issues().size() == 1);

  loaded no_struct("schema_no_struct.yaml");
  check_issue(
      no_struct, "schema.payload", 4, 12,
      "no declaration 'Ordr' in the schema file (did you mean 'Order'?); found: Order, Color");

  loaded not_struct("schema_not_struct.yaml");
  check_issue(not_struct, "schema.payload", 4, 12, "expected a struct, found 'Color', an enum");
  check_issue(not_struct, "schema.import_paths", 5, 3, "did you mean 'import_path'?");

  loaded incomplete("schema_incomplete.yaml");
  check_issue(incomplete, "schema.files", 3, 3,
              "missing required key 'files' (a list of .capnp files; 'file' for one)");
  check_issue(incomplete, "schema.import_path[0]", 4, 17, "does not exist");
}

TEST_CASE("an app file named without a directory resolves against the working directory",
          "[runtime][config]") {
  auto cwd = fs::current_path();
  fs::current_path(dir);
  registry reg;
  add_test_types(reg);
  auto result = load_app("schema_nested.yaml", reg);
  fs::current_path(cwd);
  INFO(dump(result.issues));
  REQUIRE(result.app);
  CHECK(result.app->file == "schema_nested.yaml");
  CHECK(fs::path(result.app->base_dir) == fs::path(dir).lexically_normal().parent_path());
  CHECK(result.app->data_dir == (fs::path(dir) / "troupe-data" / "nested").lexically_normal());
}

TEST_CASE("plugins that cannot be found or loaded are issues", "[runtime][config]") {
  loaded l("plugins_missing.yaml");
  check_issue(l, "plugins[0]", 2, 11,
              "plugin 'no_such_plugin' not found: no libtroupe_no_such_plugin.so in ");
  check_issue(l, "plugins[1]", 2, 27, "missing/libx.so does not exist");
  // The stage whose type the plugin would have brought is still reported, with the hint.
  check_issue(l, "stages[1].type", 5, 23, "unknown stage type 'quickstart.price'");
}

TEST_CASE("a plugin is searched by name and its load error reported", "[runtime][config]") {
  temp_dir app_dir, env_dir;
  app_dir.write("libtroupe_here.so", "not an ELF file\n");
  env_dir.write("libtroupe_there.so", "not an ELF file either\n");
  auto file = app_dir.write("app.yaml", "app: plugged\n"
                                        "plugins: [here, there]\n"
                                        "stages:\n"
                                        "  - {name: gen, type: test.source, output: x}\n"
                                        "  - {name: out, type: test.sink, input: x}\n");
  const char* old = std::getenv("TROUPE_PLUGIN_PATH");
  std::string saved = old ? old : "";
  ::setenv("TROUPE_PLUGIN_PATH", ("/nonexistent:" + env_dir.path.string()).c_str(), 1);
  loaded l(file);
  if (old)
    ::setenv("TROUPE_PLUGIN_PATH", saved.c_str(), 1);
  else
    ::unsetenv("TROUPE_PLUGIN_PATH");

  INFO(dump(l.issues()));
  REQUIRE(l.issues().size() == 2);
  CHECK(l.issues()[0].field == "plugins[0]");
  CHECK_THAT(
      l.issues()[0].message,
      Catch::StartsWith("cannot load plugin " + (app_dir.path / "libtroupe_here.so").string()));
  CHECK(l.issues()[1].field == "plugins[1]");
  CHECK_THAT(
      l.issues()[1].message,
      Catch::StartsWith("cannot load plugin " + (env_dir.path / "libtroupe_there.so").string()));
}

TEST_CASE("load_plugin explains why a library is no plugin", "[runtime][config]") {
  registry reg;
  auto missing = load_plugin("/nonexistent/libtroupe_x.so", reg);
  REQUIRE(missing);
  CHECK_THAT(*missing, Catch::StartsWith("cannot load plugin /nonexistent/libtroupe_x.so: "));

  auto not_a_plugin = load_plugin("libm.so.6", reg);
  REQUIRE(not_a_plugin);
  CHECK_THAT(*not_a_plugin, Catch::Contains("has no troupe_plugin_register"));
  CHECK(reg.names().empty());
}

TEST_CASE("a stage key that is neither the runtime's nor a declared param is an error",
          "[runtime][config]") {
  loaded l("stage_keys.yaml");
  check_issue(l, "stages[0].wokers", 6, 5,
              "unknown key 'wokers' (did you mean 'workers'?); type 'test.source' takes path, "
              "and the runtime's keys name, type, inputs, input, outputs, output, workers, batch, "
              "retry, supervision");
  check_issue(l, "stages[1].bacth", 11, 5, "unknown key 'bacth' (did you mean 'batch'?)");
  check_issue(l, "stages[1].factr", 12, 5,
              "unknown key 'factr' (did you mean 'factor'?); type 'test.op' takes factor, enabled");
  check_issue(l, "stages[2].anything", 16, 5,
              "unknown key 'anything'; type 'test.sink' takes no params of its own");
  // An unknown type's keys are not checked: there is nothing to check them against.
  check_issue(l, "stages[3].type", 18, 11, "unknown stage type 'test.mystery'");
  CHECK(l.issues().size() == 5);
}

TEST_CASE("a stage that reads a param its type does not declare fails at load",
          "[runtime][config]") {
  temp_dir d;
  auto file = d.write("app.yaml", "app: sneaky\n"
                                  "stages:\n"
                                  "  - {name: gen, type: test.source, output: x}\n"
                                  "  - {name: s, type: test.sneaky, input: x}\n");
  loaded l(file, load_options{}, [](registry& reg) {
    reg.add(type("test.sneaky", stage_kind::sink, [](const params& p) {
      p.get_u64("secret", 1);
      return std::unique_ptr<stage_base>();
    }));
  });
  INFO(dump(l.issues()));
  REQUIRE(l.issues().size() == 1);
  CHECK(l.issues()[0].field == "stages[1].secret");
  CHECK(l.issues()[0].line == 4);
  CHECK_THAT(l.issues()[0].message,
             Catch::Contains("stage type 'test.sneaky' reads the param 'secret' but does not "
                             "declare it; add it to .params({...})"));
}

TEST_CASE("a cycle in the graph is an error naming its stages in order", "[runtime][config]") {
  loaded l("cycles.yaml");
  check_issue(l, "stages[0].input", 5, 12,
              "stage 'echo' reads edge 'loop', which it writes itself: a cycle");
  // A loop with no source, reported once, through its first stage in file order.
  check_issue(l, "stages[1].input", 9, 12,
              "the stages form a cycle: a -> b -> c -> a (through edges a_out, b_out, c_out)");
  // A loop fed by a source is a cycle as well.
  check_issue(l, "stages[5].inputs[1]", 24, 20,
              "the stages form a cycle: merge -> split -> merge (through edges merged, back)");
  CHECK(l.issues().size() == 3);
  CHECK_FALSE(l.result.app);
}

TEST_CASE("a tab used for indentation is reported as a tab, with its line", "[runtime][config]") {
  loaded l("tab_indent.yaml");
  REQUIRE(l.issues().size() == 1);
  check_issue(l, "", 4, 1, "a tab is used for indentation; YAML indents with spaces only");
}

TEST_CASE("an issue says whether it is a warning", "[runtime][config]") {
  config_issue w{"app.yaml", 3, 11, "stages[0].path", "gone", issue_severity::warning};
  CHECK(w.to_string() == "app.yaml:3:11: warning: stages[0].path: gone");
  config_issue o{"--set stages.a.x=1", 0, 0, "stages[0].x", "unknown key 'x'",
                 issue_severity::error, true};
  CHECK(o.to_string() == "--set stages.a.x=1: unknown key 'x'");
}
