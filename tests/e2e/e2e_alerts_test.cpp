// End to end: alert rules in a real `troupe run` process, each kind triggered for real: lag and
// the age of the oldest record (a stage paused through troupectl), a stalled stage (a work queue
// whose command hangs), dead letters growing (a filter that dead-letters), a restart storm
// (workers killed through troupectl) and a stage given up (a source whose file is missing). Each
// alert's command appends a line to a file the test reads; the log says when it fires and when
// it resolves.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <sstream>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

TEST_CASE("alert rules fire for each kind of trouble, run their command, and resolve",
          "[e2e][alerts]") {
  temp_dir dir;
  write_file(dir / "rec.capnp", "@0xe1d2c3b4a5968778;\nstruct Rec { id @0 :UInt64; name @1 :Text; }\n");
  write_file(dir / "some.jsonl", "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": \"b\"}\n"
                                 "{\"id\": 3, \"name\": \"c\"}\n");
  auto log = dir / "alerts.log";
  auto run = "[sh, -c, 'echo \"$0 $1 $2 $TROUPE_ALERT_STAGE\" >> " + log + "', '{alert}', '{stage}', '{value}']";
  write_file(dir / "app.yaml",
             "app: alerting\n"
             "data_dir: " + dir / "data" + "\n"
             "admin: {token: s3cret}\n"
             "schema: {file: rec.capnp, payload: Rec}\n"
             "alerts:\n"
             "  - {name: backlog, kind: lag, above: 500, stages: [copy], run: " + run + "}\n"
             "  - {name: old, kind: lag_age, above: 1s, stages: [copy], run: " + run + "}\n"
             "  - {name: stuck, kind: stalled, after: 1s, stages: [hang], run: " + run + "}\n"
             "  - {name: poison, kind: dead_letters, stages: [check], run: " + run + "}\n"
             "  - {name: flapping, kind: restarts, above: 1, within: 1m, stages: [copy], run: " + run + "}\n"
             "  - {name: down, kind: given_up, run: " + run + "}\n"
             "stages:\n"
             "  - {name: gen, type: generator, count: 0, rate: 2000, payload_size: 4, output: raw}\n"
             "  - {name: copy, type: copier, workers: 2, input: raw, outputs: {a: copied}}\n"
             "  - {name: sink, type: jsonl_sink, input: copied, path: out.jsonl}\n"
             "  - {name: jobs, type: jsonl_source, path: some.jsonl, follow: true, output: items}\n"
             "  - {name: hang, type: work_queue, input: items, timeout: 1h, command: [sleep, '3600'], "
             "batch: {max_items: 1}}\n"
             "  - {name: lines, type: jsonl_source, path: some.jsonl, follow: true, output: lined}\n"
             "  - {name: check, type: filter, where: 'id > 2', unmatched: dead_letter, input: lined, "
             "output: checked}\n"
             "  - {name: keep, type: jsonl_sink, input: checked, path: kept.jsonl}\n"
             "  - {name: missing, type: jsonl_source, path: no-such-file.jsonl, output: lost}\n"
             "  - {name: lost_sink, type: jsonl_sink, input: lost, path: lost.jsonl}\n");
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  auto ctl = [&](std::vector<std::string> a) {
    std::vector<std::string> argv{std::string(TROUPE_BIN_DIR) + "/troupectl", "--app", dir / "app.yaml",
                                  "--token", "s3cret"};
    argv.insert(argv.end(), a.begin(), a.end());
    return run_command(argv);
  };
  // The lines the alerts' commands wrote: "<alert> <stage> <value> <stage from the environment>".
  auto fired = [&] {
    std::set<std::string> seen;
    std::istringstream in{read_file(log)};
    for (std::string alert, stage, value, env_stage; in >> alert >> stage >> value >> env_stage;) {
      CHECK(stage == env_stage);
      seen.insert(alert + " " + stage);
    }
    return seen;
  };
  auto has = [&](const std::string& what) { return fired().count(what) > 0; };
  REQUIRE(wait_until([&] { return size_of(dir / "data/admin.json") > 0 || !node.running(); }, 30s));
  INFO(tail_of(dir / "node.log"));

  // Without anything done: the given-up source, the stalled queue, the dead-lettering filter.
  REQUIRE(wait_until([&] { return has("down missing") && has("stuck hang") && has("poison check"); },
                     120s, 20ms));
  CHECK_FALSE(has("backlog copy"));

  // Paused, copy's lag grows past 500 and its oldest record past a second; resumed, both resolve.
  REQUIRE(exit_code(ctl({"pause", "copy"}).status) == 0);
  REQUIRE(wait_until([&] { return has("backlog copy") && has("old copy"); }, 60s));
  REQUIRE(exit_code(ctl({"resume", "copy"}).status) == 0);
  REQUIRE(wait_until([&] {
    auto text = read_file(dir / "node.log");
    return text.find("alert backlog: resolved for stage copy") != std::string::npos &&
           text.find("alert old: resolved for stage copy") != std::string::npos;
  }, 60s));
  CHECK_FALSE(has("stuck copy")); // a paused stage is not stalled, and the rule names hang only

  // Two restarts within the minute: a storm, by this rule.
  REQUIRE(exit_code(ctl({"kill", "copy/0"}).status) == 0);
  REQUIRE(wait_until([&] {
    return exit_code(ctl({"kill", "copy/1"}).status) == 0;
  }, 30s));
  REQUIRE(wait_until([&] { return has("flapping copy"); }, 60s));

  // Each fired once: a condition that goes on holding does not fire again.
  std::multiset<std::string> lines;
  std::istringstream in{read_file(log)};
  for (std::string alert, stage, value, env_stage; in >> alert >> stage >> value >> env_stage;)
    lines.insert(alert + " " + stage);
  for (const auto& l : lines)
    CHECK(lines.count(l) == 1);
  auto text = read_file(dir / "node.log");
  CHECK_THAT(text, Catch::Contains("alert backlog: fires: stage copy: lag") &&
                     Catch::Contains("alert down: fires: stage missing: the node gave it up"));
}

TEST_CASE("a wrong alert rule names its line and field", "[e2e][alerts]") {
  temp_dir dir;
  write_file(dir / "rec.capnp", "@0xe1d2c3b4a5968779;\nstruct Rec { id @0 :UInt64; }\n");
  auto lint = [&](const std::string& rule) {
    write_file(dir / "app.yaml", "app: a\nschema: {file: rec.capnp, payload: Rec}\n"
                                 "stages:\n"
                                 "  - {name: gen, type: generator, count: 10, output: raw}\n"
                                 "  - {name: sink, type: jsonl_sink, input: raw, path: o.jsonl}\n"
                                 "alerts:\n  - " + rule + "\n");
    return run_troupe({"lint", dir / "app.yaml"});
  };
  auto kind = lint("{name: x, kind: lagg, above: 3}");
  CHECK(exit_code(kind.status) != 0);
  CHECK_THAT(kind.output, Catch::Contains("app.yaml:7") && Catch::Contains("alerts[0].kind") &&
                            Catch::Contains("lag"));
  auto stage = lint("{name: x, kind: lag, above: 3, stages: [snk]}");
  CHECK(exit_code(stage.status) != 0);
  CHECK_THAT(stage.output, Catch::Contains("alerts[0].stages[0]") && Catch::Contains("sink"));
  auto above = lint("{name: x, kind: lag}");
  CHECK(exit_code(above.status) != 0);
  CHECK_THAT(above.output, Catch::Contains("needs 'above'"));
  auto stray = lint("{name: x, kind: given_up, after: 1s}");
  CHECK(exit_code(stray.status) != 0);
  CHECK_THAT(stray.output, Catch::Contains("alerts[0].after"));
}
