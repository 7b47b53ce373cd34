// Tests of runtime/src/config/yaml_env.cpp: ${NAME} and ${NAME:-default} in an app file.
#include "config/yaml_overrides.hpp"
#include "config_support.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

using namespace troupe;
using namespace troupe::test;

namespace {

std::string substituted(const std::string& text) {
  std::string error;
  auto out = detail::substitute_env_text(text, error);
  return out ? *out : "error: " + error;
}

} // namespace

TEST_CASE("a variable reference reads the environment, with a default when unset or empty",
          "[runtime][config]") {
  ::setenv("TROUPE_TEST_SET", "value", 1);
  ::setenv("TROUPE_TEST_EMPTY", "", 1);
  ::unsetenv("TROUPE_TEST_UNSET");
  CHECK(substituted("${TROUPE_TEST_SET}") == "value");
  CHECK(substituted("a/${TROUPE_TEST_SET}/b-${TROUPE_TEST_SET}") == "a/value/b-value");
  CHECK(substituted("${TROUPE_TEST_UNSET:-fallback}") == "fallback");
  CHECK(substituted("${TROUPE_TEST_UNSET:-}") == "");
  CHECK(substituted("${TROUPE_TEST_EMPTY:-fallback}") == "fallback");
  CHECK(substituted("${TROUPE_TEST_EMPTY}") == "");
  CHECK(substituted("${TROUPE_TEST_SET:-fallback}") == "value");
  CHECK(substituted("$${TROUPE_TEST_SET}") == "${TROUPE_TEST_SET}");
  CHECK(substituted("cost: $5, $HOME") == "cost: $5, $HOME"); // only ${ is special
  CHECK(substituted("${TROUPE_TEST_UNSET}") ==
        "error: environment variable TROUPE_TEST_UNSET is not set (export it, or write "
        "${TROUPE_TEST_UNSET:-default})");
  CHECK_THAT(substituted("${TROUPE_TEST_SET"), Catch::Contains("is not closed by '}'"));
  CHECK_THAT(substituted("${1BAD}"), Catch::Contains("does not name an environment variable"));
  CHECK_THAT(substituted("${}"), Catch::Contains("does not name an environment variable"));
}

TEST_CASE("an app file's values are substituted, and an unset variable is an issue at its line",
          "[runtime][config]") {
  ::setenv("TROUPE_TEST_APP", "from-env", 1);
  ::unsetenv("TROUPE_TEST_UNSET");
  ::unsetenv("TROUPE_TEST_EDGE");
  loaded l("env_vars.yaml");
  check_issue(l, "stages[1].input", 10, 12, "environment variable TROUPE_TEST_EDGE is not set");
  check_issue(l, "stages[2].input", 13, 12, "is not closed by '}'");
  // The failed values are reported once, not again as bad edge names.
  CHECK(find_issue(l.issues(), "stages[1].input", 10)->message.find("expected") ==
        std::string::npos);
  CHECK(l.issues().size() == 3); // and 'nums' is read by no stage now
  check_issue(l, "stages[0].output", 6, 13, "dangling edge 'nums'");

  ::setenv("TROUPE_TEST_EDGE", "nums", 1);
  // An override replaces the broken value before it is read.
  loaded fixed("env_vars.yaml", load_options{{}, {"stages.sink2.input=nums"}});
  ::unsetenv("TROUPE_TEST_EDGE");
  INFO(dump(fixed.issues()));
  REQUIRE(fixed.result.app);
  CHECK(fixed.app().name == "from-env");
  CHECK(fixed.app().data_dir == "/tmp/troupe-env-default");
  CHECK(fixed.app().stages[0].stage_params->get_string("path") == "${literal}/from-env.jsonl");
  CHECK(fixed.app().stages[1].inputs == std::vector<std::string>{"nums"});
}
