// End to end: the sequence stage in real `troupe run` processes, on a schema of the test's own,
// checked against tests/e2e/sequence_oracle.py, which replays the stage's rules in Python and
// shares no code with it. Sensors' readings arrive with duplicates, gaps, local reordering and
// records moved far back; each sensor's output must come in order, every gap reported once as a
// missing range, every repeat and late record sent to its side output. Then the same under
// SIGKILLs, and a gap given up by its timeout while the input is idle, with the timer surviving
// a SIGKILL (it lives in LMDB, re-armed on open).
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

const char* reading_schema =
  "@0xc4d5e6f708192a3b;\n"
  "struct Reading { sensor @0 :Text; seq @1 :UInt32; value @2 :Float64; note @3 :Text; }\n"
  "struct Missing { origin @0 :Text; first @1 :UInt64; last @2 :UInt64; count @3 :UInt64; }\n";

std::string oracle() { return std::string(TROUPE_SOURCE_DIR) + "/tests/e2e/sequence_oracle.py"; }

// The app: read (keyed by sensor) -> an edge of 4 partitions -> sequence (2 workers) -> a sink
// per port. `source_extra` and `seq_extra` add keys to those stages.
std::string app_yaml(const std::string& source_extra, const std::string& seq_extra) {
  std::ostringstream y;
  y << "app: seq\n"
    << "schema: {file: reading.capnp, payload: Reading}\n"
    << "edges:\n"
    << "  readings: {partitions: 4}\n"
    << "  missing: {type: Missing}\n"
    << "stages:\n"
    << "  - {name: read, type: jsonl_source, path: in.jsonl, key: sensor, output: readings"
    << source_extra << "}\n"
    << "  - name: order\n"
    << "    type: sequence\n"
    << "    workers: 2\n"
    << "    input: readings\n"
    << "    outputs: {out: ordered, missing: missing, late: late, duplicates: dups}\n"
    << "    seq_field: seq\n"
    << "    first_seq: 0\n"
    << "    late: side\n"
    << "    duplicates: side\n"
    << seq_extra
    << "  - {name: w_out, type: jsonl_sink, input: ordered, path: out/out.jsonl}\n"
    << "  - {name: w_missing, type: jsonl_sink, input: missing, path: out/missing.jsonl}\n"
    << "  - {name: w_late, type: jsonl_sink, input: late, path: out/late.jsonl}\n"
    << "  - {name: w_dups, type: jsonl_sink, input: dups, path: out/duplicates.jsonl}\n";
  return y.str();
}

void check_against_oracle(const temp_dir& dir, int max_pending) {
  auto log = dir / "oracle.log";
  int rc = shell("python3 " + oracle() + " check " + dir / "in.jsonl" + " " + dir / "out" + " " +
               std::to_string(max_pending) + " 2> " + log);
  INFO(read_file(log));
  CHECK(rc == 0);
}

} // namespace

TEST_CASE("sequence releases each origin in order, reports gaps, repeats and late records as its "
          "oracle says", "[e2e][streams]") {
  temp_dir dir;
  REQUIRE(shell("python3 " + oracle() + " generate " + dir / "in.jsonl " +
              std::to_string(pick_seed()) + " 2000") == 0);
  write_file(dir / "reading.capnp", reading_schema);
  write_file(dir / "app.yaml", app_yaml("", "    max_pending: 8\n    gap_timeout: 1h\n"));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(120s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  check_against_oracle(dir, 8);
  // Its counters, logged once the input ended, add up to the input.
  CHECK(lines_with(dir / "node.log", "input ended: in_order") == 2);
}

TEST_CASE("sequence under SIGKILLs: nothing held back is lost, nothing released twice",
          "[e2e][streams][crash]") {
  temp_dir dir;
  auto seed = pick_seed();
  REQUIRE(shell("python3 " + oracle() + " generate " + dir / "in.jsonl " + std::to_string(seed) +
              (small_scale() ? " 2000" : " 6000")) == 0);
  write_file(dir / "reading.capnp", reading_schema);
  write_file(dir / "app.yaml",
             app_yaml(", batch: {max_items: 64}", "    max_pending: 8\n    gap_timeout: 1h\n"));
  std::mt19937_64 rng{seed};
  auto total = size_of(dir / "in.jsonl");
  int status = -1; // killed once the output has grown past a random share of the input's size
  int kills = run_with_kills(dir / "app.yaml", dir / "data", dir / "node.log", 3,
                             dir / "out/out.jsonl",
                             [&](int round) { return total * (round + 1) / 5 + rng() % (total / 10); },
                             status);
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(status));
  CHECK(kills >= 2);
  check_against_oracle(dir, 8);
}

TEST_CASE("sequence gives a gap up after gap_timeout while the input is idle, and its timer "
          "survives a SIGKILL", "[e2e][streams][crash]") {
  temp_dir dir;
  write_file(dir / "reading.capnp", reading_schema);
  write_file(dir / "in.jsonl", "");
  write_file(dir / "app.yaml",
             app_yaml(", follow: true, poll_ms: 20", "    gap_timeout: 2s\n"));
  auto reading = [](const char* sensor, int seq) {
    return std::string("{\"sensor\": \"") + sensor + "\", \"seq\": " + std::to_string(seq) +
           ", \"value\": 1.5, \"note\": \"n\"}";
  };
  auto node = std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  for (int seq : {0, 1, 3})
    append_line(dir / "in.jsonl", reading("a", seq));
  // 3 waits for 2; no more input comes, yet the timeout gives 2 up and releases 3.
  bool skipped = wait_until(
    [&] { return lines_with(dir / "out/missing.jsonl", "\"first\":2") == 1 &&
                 lines_with(dir / "out/out.jsonl", "\"seq\":3") == 1; },
    30s);
  INFO(tail_of(dir / "node.log"));
  REQUIRE(skipped);
  CHECK(lines_with(dir / "out/out.jsonl", "\"sensor\":\"a\"") == 3);
  // 2 arrives after all: late.
  append_line(dir / "in.jsonl", reading("a", 2));
  REQUIRE(wait_until([&] { return lines_with(dir / "out/late.jsonl", "\"seq\":2") == 1; }, 30s));

  // 6 waits for 4 and 5; the node is killed before the timeout, so only LMDB knows of it.
  append_line(dir / "in.jsonl", reading("a", 6));
  REQUIRE(wait_consumed(dir / "data", "order", 5));
  CHECK(lines_with(dir / "out/out.jsonl", "\"seq\":6") == 0);
  REQUIRE(killed_by(node->kill_and_reap(), SIGKILL));
  node = std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  // The gap and 6 leave in one step but reach two sinks, each writing in its own time.
  bool fired = wait_until(
    [&] { return lines_with(dir / "out/out.jsonl", "\"seq\":6") == 1 &&
                 lines_with(dir / "out/missing.jsonl", "\"first\":4") == 1; }, 30s);
  INFO(tail_of(dir / "node.log"));
  REQUIRE(fired);
  CHECK(lines_with(dir / "out/missing.jsonl", "\"first\":4,\"last\":5,\"count\":2") == 1);
  CHECK(lines_with(dir / "out/missing.jsonl", "\"origin\":\"a\"") == 2);
  CHECK(lines_with(dir / "out/out.jsonl", "\"sensor\":\"a\"") == 4);
}

TEST_CASE("without first_seq an origin starts at its first id, and ids below it are late",
          "[e2e][streams]") {
  temp_dir dir;
  write_file(dir / "reading.capnp", reading_schema);
  std::string in;
  for (int seq : {7, 5, 8, 6})
    in += "{\"sensor\": \"x\", \"seq\": " + std::to_string(seq) + ", \"value\": 0, \"note\": \"n\"}\n";
  write_file(dir / "in.jsonl", in);
  auto yaml = app_yaml("", "");
  yaml.replace(yaml.find("    first_seq: 0\n"), 17, "");
  write_file(dir / "app.yaml", yaml);
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(60s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  CHECK(lines_with(dir / "out/out.jsonl", "\"sensor\":\"x\"") == 2);
  CHECK(lines_with(dir / "out/late.jsonl", "\"seq\":5") == 1);
  CHECK(lines_with(dir / "out/late.jsonl", "\"seq\":6") == 1);
  CHECK(size_of(dir / "out/duplicates.jsonl") == 0);
}

TEST_CASE("sequence refuses a bad configuration at load, naming the field", "[e2e][streams]") {
  temp_dir dir;
  write_file(dir / "reading.capnp", reading_schema);
  write_file(dir / "in.jsonl", "");
  auto lint = [&](const std::string& yaml) {
    write_file(dir / "app.yaml", yaml);
    return run_troupe({"lint", dir / "app.yaml"});
  };
  auto base = app_yaml("", "");
  auto replace = [&](std::string from, std::string to) {
    auto y = base;
    y.replace(y.find(from), from.size(), to);
    return y;
  };
  auto ok = lint(base);
  INFO(ok.output);
  REQUIRE(exit_code(ok.status) == 0);
  auto r = lint(replace("seq_field: seq", "seq_field: note"));
  CHECK(exit_code(r.status) != 0);
  CHECK_THAT(r.output, Catch::Contains("'note' must be an integer field"));
  r = lint(replace("seq_field: seq", "seq_field: sequence"));
  CHECK_THAT(r.output, Catch::Contains("seq_field"));
  r = lint(replace("late: side", "late: drop"));
  CHECK_THAT(r.output, Catch::Contains("the 'late' port is connected, but late is not 'side'"));
  r = lint(replace("late: side", "late: sideways"));
  CHECK_THAT(r.output, Catch::Contains("expected drop, pass or side, found 'sideways'"));
  r = lint(replace("  missing: {type: Missing}\n", ""));
  CHECK_THAT(r.output, Catch::Contains("needs a field 'origin' of type Text"));
}
