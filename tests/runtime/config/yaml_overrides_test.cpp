// Tests of runtime/src/config/yaml_overrides.cpp: --set path.to.key=value on an app file, and
// issues that name the override instead of a line of the file.
#include "config_support.hpp"

#include <catch2/catch.hpp>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

load_options with(std::vector<std::string> overrides) {
  load_options o;
  o.overrides = std::move(overrides);
  return o;
}

// The issue an override caused, by the override's text.
const config_issue* override_issue(const loaded& l, const std::string& text) {
  for (const auto& i : l.issues())
    if (i.from_override && i.file == "--set " + text)
      return &i;
  return nullptr;
}

void check_override_issue(const loaded& l, const std::string& text, const std::string& message) {
  INFO("issues:\n" << dump(l.issues()));
  auto* issue = override_issue(l, text);
  REQUIRE(issue != nullptr);
  CHECK(issue->line == 0);
  CHECK_THAT(issue->to_string(), Catch::StartsWith("--set " + text + ": " + message));
}

} // namespace

TEST_CASE("overrides set values by stage name, by index and in maps that do not exist yet",
          "[runtime][config]") {
  loaded l("valid.yaml", with({"stages.price.workers=4", "stages[3].batch.max_items=7",
                               "edges.priced.retention.count=10", "store.map_size=2GiB",
                               "stages.price.factor=2.5", "durability=process"}));
  INFO(dump(l.issues()));
  REQUIRE(l.result.app);
  const auto& app = l.app();
  CHECK(app.stages[1].workers == 4);
  CHECK(app.stages[3].batch.max_items == 7);
  CHECK(app.stages[3].batch.max_delay == 5ms); // the rest still comes from defaults
  CHECK(app.edges[1].name == "priced");
  CHECK(app.edges[1].keep.count == 10);
  CHECK(app.map_size == uint64_t{2} << 30);
  CHECK(app.mode == durability::process);
  CHECK(app.stages[1].stage_params->get_double("factor", 0) == 2.5);
}

TEST_CASE("an override takes a YAML value: lists and maps too", "[runtime][config]") {
  loaded l("minimal.yaml", with({"stages[1]={name: drain, type: test.sink, inputs: [numbers]}",
                                 "stages.gen.batch={max_items: 3, max_delay: 1s}"}));
  INFO(dump(l.issues()));
  REQUIRE(l.result.app);
  CHECK(l.app().stages[1].name == "drain");
  CHECK(l.app().stages[1].inputs == std::vector<std::string>{"numbers"});
  CHECK(l.app().stages[0].batch.max_items == 3);
  CHECK(l.app().stages[0].batch.max_delay == 1000ms);
}

TEST_CASE("a stage whose name has dots is addressed by its whole name", "[runtime][config]") {
  temp_dir d;
  auto file = d.write("app.yaml", "app: dotted\n"
                                  "stages:\n"
                                  "  - {name: gen.v2, type: test.source, output: x}\n"
                                  "  - {name: gen, type: test.op, input: x, output: y}\n"
                                  "  - {name: out, type: test.sink, input: y}\n");
  loaded l(file, with({"stages.gen.v2.batch.max_items=5", "stages.gen.workers=2"}));
  INFO(dump(l.issues()));
  REQUIRE(l.result.app);
  CHECK(l.app().stages[0].batch.max_items == 5);
  CHECK(l.app().stages[1].workers == 2);
}

TEST_CASE("an override that names an unknown key fails like a typo in the file, naming it",
          "[runtime][config]") {
  loaded l("valid.yaml",
           with({"stages.price.wokers=4", "edges.orders.retention.cont=1",
                 "stages[1].bacth.max_items=3", "stages.price.workers=0", "schema.payload=Ordr"}));
  check_override_issue(l, "stages.price.wokers=4",
                       "unknown key 'wokers' (did you mean 'workers'?)");
  check_override_issue(l, "edges.orders.retention.cont=1",
                       "unknown key 'cont' (did you mean 'count'?)");
  // The key the override created on the way is the one that is wrong.
  check_override_issue(l, "stages[1].bacth.max_items=3",
                       "unknown key 'bacth' (did you mean 'batch'?)");
  check_override_issue(l, "stages.price.workers=0",
                       "expected an integer from 1 to 4096, found '0'");
  check_override_issue(l, "schema.payload=Ordr", "no declaration 'Ordr' in the schema file");
  CHECK(l.issues().size() == 5); // and none of them is blamed on a line of the file
}

TEST_CASE("an override that leads nowhere says why", "[runtime][config]") {
  loaded l("valid.yaml", with({"stages.prise.workers=2", "stages[9].workers=2", "app.x=1",
                               "stages[x].workers=1", "no_equals_sign", "stages.price.batch=[1"}));
  check_override_issue(l, "stages.prise.workers=2",
                       "no item of 'stages' is named 'prise' (did you mean 'price'?); names: "
                       "read, price, write, audit, dead (or address one as stages[i])");
  check_override_issue(l, "stages[9].workers=2", "'stages' has 5 items ([0] to [4])");
  check_override_issue(l, "app.x=1", "'app' is 'full-app', not a map: nothing to set in it");
  check_override_issue(l, "stages[x].workers=1", "expected [index] with a number, found '[x]'");
  check_override_issue(l, "no_equals_sign", "expected path.to.key=value");
  check_override_issue(l, "stages.price.batch=[1", "the value is not valid YAML");
  CHECK_THAT(override_issue(l, "stages.price.batch=[1")->to_string(),
             Catch::EndsWith("to give it as text, quote it: --set 'stages.price.batch=\"[1\"'"));
  CHECK(l.issues().size() == 6);
}

TEST_CASE("an override's value may read the environment, and its failure names the override",
          "[runtime][config]") {
  ::unsetenv("TROUPE_TEST_UNSET");
  loaded l("minimal.yaml", with({"stages.gen.batch.max_items=${TROUPE_TEST_UNSET}"}));
  check_override_issue(l, "stages.gen.batch.max_items=${TROUPE_TEST_UNSET}",
                       "environment variable TROUPE_TEST_UNSET is not set");
  CHECK(l.issues().size() == 1);
}
