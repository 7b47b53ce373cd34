// End to end: the window stage in real `troupe run` processes, on a schema of the test's own,
// checked against tests/e2e/window_oracle.py (which computes the windows in Python and shares no
// code with it): 60 s tumbling averages and 60 s windows sliding by 20 s, keyed by sensor over
// an edge of 4 partitions, with out-of-order readings inside the lateness and late ones beyond
// it; the same under SIGKILLs; an idle input that still closes its window, by the wall clock,
// with the timer surviving a SIGKILL; count windows; and load-time errors.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

const char* schema =
  "@0xd5e6f708192a3b4c;\n"
  "struct Reading { sensor @0 :Text; at @1 :Int64; value @2 :Float64; }\n"
  "struct Window { key @0 :Text; start @1 :Int64; end @2 :Int64; value @3 :Float64;"
  " count @4 :UInt64; }\n";

std::string oracle() { return std::string(TROUPE_SOURCE_DIR) + "/tests/e2e/window_oracle.py"; }

// read -> readings (4 partitions, by sensor) -> tumble (avg, late to a file) and slide (count).
std::string app_yaml(const std::string& source_extra, const std::string& window_extra) {
  std::ostringstream y;
  y << "app: windows\n"
    << "schema: {file: reading.capnp, payload: Reading}\n"
    << "edges:\n"
    << "  readings: {partitions: 4}\n"
    << "  tumbled: {type: Window}\n"
    << "  slid: {type: Window}\n"
    << "stages:\n"
    << "  - {name: read, type: jsonl_source, path: in.jsonl, key: sensor, output: readings"
    << source_extra << "}\n"
    << "  - {name: tumble, type: window, workers: 2, input: readings, time_field: at, size: 1m,"
    << " lateness: 5s, op: avg, field: value, late: side, outputs: {out: tumbled, late: late}"
    << window_extra << "}\n"
    << "  - {name: slide, type: window, input: readings, time_field: at, size: 1m, slide: 20s,"
    << " lateness: 5s, op: count, output: slid" << window_extra << "}\n"
    << "  - {name: w_tumble, type: jsonl_sink, input: tumbled, path: out/tumble.jsonl}\n"
    << "  - {name: w_slide, type: jsonl_sink, input: slid, path: out/slide.jsonl}\n"
    << "  - {name: w_late, type: jsonl_sink, input: late, path: out/late.jsonl}\n";
  return y.str();
}

void check_against_oracle(const temp_dir& dir) {
  auto log = dir / "oracle.log";
  int rc = shell("python3 " + oracle() + " check " + dir / "in.jsonl" + " " + dir / "out/tumble.jsonl" +
               " " + dir / "out/slide.jsonl" + " " + dir / "out/late.jsonl" + " 2> " + log);
  INFO(read_file(log));
  CHECK(rc == 0);
}

} // namespace

TEST_CASE("window computes tumbling and sliding windows by event time as its oracle says",
          "[e2e][streams]") {
  temp_dir dir;
  REQUIRE(shell("python3 " + oracle() + " generate " + dir / "in.jsonl " +
              std::to_string(pick_seed()) + " 20000") == 0);
  write_file(dir / "reading.capnp", schema);
  write_file(dir / "app.yaml", app_yaml("", ", idle_timeout: 1h"));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(120s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  check_against_oracle(dir);
}

TEST_CASE("window under SIGKILLs: no window lost, none emitted twice", "[e2e][streams][crash]") {
  temp_dir dir;
  auto seed = pick_seed();
  REQUIRE(shell("python3 " + oracle() + " generate " + dir / "in.jsonl " + std::to_string(seed) +
              (small_scale() ? " 20000" : " 60000")) == 0);
  write_file(dir / "reading.capnp", schema);
  write_file(dir / "app.yaml", app_yaml(", batch: {max_items: 64}", ", idle_timeout: 1h"));
  std::mt19937_64 rng{seed};
  int status = -1; // killed once this many bytes of sliding windows are written
  int kills = run_with_kills(dir / "app.yaml", dir / "data", dir / "node.log", 3,
                             dir / "out/slide.jsonl",
                             [&](int round) { return 2000 * (round + 1) + rng() % 2000; }, status);
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(status));
  CHECK(kills >= 2);
  check_against_oracle(dir);
}

TEST_CASE("an idle input still closes its window, by the wall clock, across a SIGKILL",
          "[e2e][streams][crash]") {
  temp_dir dir;
  write_file(dir / "reading.capnp", schema);
  write_file(dir / "in.jsonl", "");
  write_file(dir / "app.yaml",
             "app: idle\n"
             "schema: {file: reading.capnp, payload: Reading}\n"
             "edges: {tumbled: {type: Window}}\n"
             "stages:\n"
             "  - {name: read, type: jsonl_source, path: in.jsonl, key: sensor, follow: true,"
             " poll_ms: 20, output: readings}\n"
             "  - {name: tumble, type: window, input: readings, time_field: at, size: 2s,"
             " op: sum, field: value, idle_timeout: 3s, output: tumbled}\n"
             "  - {name: write, type: jsonl_sink, input: tumbled, path: out.jsonl}\n");
  auto reading = [](int64_t at, int value) {
    return "{\"sensor\": \"a\", \"at\": " + std::to_string(at) +
           ", \"value\": " + std::to_string(value) + "}";
  };
  // Replayed history: windows of 2 s, [0, 2000) holds readings at 100, 500 and 1500 ms of 1970.
  // Quiet for idle_timeout (3 s), the watermark follows the wall clock: the window closes.
  auto node = std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  for (auto [at, v] : {std::pair{100, 1}, {500, 2}, {1500, 4}})
    append_line(dir / "in.jsonl", reading(at, v));
  bool closed = wait_until([&] { return lines_with(dir / "out.jsonl", "\"start\":0") == 1; }, 30s);
  INFO(tail_of(dir / "node.log"));
  REQUIRE(closed);
  CHECK(lines_with(dir / "out.jsonl", "\"end\":2000,\"value\":7") == 1);

  // Live readings (now): their window waits for the wall clock and 3 quiet seconds. The node
  // dies before; restarted, the idle timer is re-armed from LMDB (the quiet time counting from
  // the restart) and the window closes once, with both readings.
  auto now = troupe::context::now_ms();
  auto start = now - now % 2000;
  append_line(dir / "in.jsonl", reading(start + 100, 10));
  append_line(dir / "in.jsonl", reading(start + 200, 20));
  REQUIRE(wait_consumed(dir / "data", "tumble", 5));
  auto window = "\"start\":" + std::to_string(start) + ",\"end\":" + std::to_string(start + 2000);
  REQUIRE(lines_with(dir / "out.jsonl", window) == 0); // only LMDB knows of it
  REQUIRE(killed_by(node->kill_and_reap(), SIGKILL));
  node = std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  REQUIRE(wait_until([&] { return lines_with(dir / "out.jsonl", window) == 1; }, 30s));
  CHECK(lines_with(dir / "out.jsonl", window + ",\"value\":30,\"count\":2") == 1);
  CHECK(lines_with(dir / "out.jsonl", "\"key\":\"a\"") == 2);
}

TEST_CASE("count windows emit when full, and what is left when the input ends", "[e2e][streams]") {
  temp_dir dir;
  write_file(dir / "reading.capnp", schema);
  std::string in;
  for (int i = 0; i < 25; ++i)
    in += "{\"sensor\": \"" + std::string(i % 2 ? "b" : "a") + "\", \"at\": " + std::to_string(i) +
          ", \"value\": " + std::to_string(i) + "}\n";
  write_file(dir / "in.jsonl", in);
  write_file(dir / "app.yaml",
             "app: counts\n"
             "schema: {file: reading.capnp, payload: Reading}\n"
             "edges: {w: {type: Window}}\n"
             "stages:\n"
             "  - {name: read, type: jsonl_source, path: in.jsonl, key: sensor, output: r}\n"
             "  - {name: tens, type: window, input: r, count: 5, op: max, field: value, output: w}\n"
             "  - {name: write, type: jsonl_sink, input: w, path: out.jsonl}\n");
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(60s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  // a: 13 readings (0, 2, ..., 24): windows of 5, 5 and the last 3 (records 10 to 12, so its
  // end is 13); b: 12: 5, 5 and 2.
  auto out = read_file(dir / "out.jsonl");
  INFO(out);
  CHECK(lines_with(dir / "out.jsonl", "\"key\":\"a\",\"start\":0,\"end\":5,\"value\":8,\"count\":5") == 1);
  CHECK(lines_with(dir / "out.jsonl", "\"key\":\"a\",\"start\":10,\"end\":13,\"value\":24,\"count\":3") == 1);
  CHECK(lines_with(dir / "out.jsonl", "\"key\":\"b\",\"start\":5,\"end\":10,\"value\":19,\"count\":5") == 1);
  CHECK(lines_with(dir / "out.jsonl", "\"key\":\"b\",\"start\":10,\"end\":12,\"value\":23,\"count\":2") == 1);
  CHECK(lines_with(dir / "out.jsonl", "\"key\"") == 6);
}

TEST_CASE("window refuses a bad configuration at load, naming the field", "[e2e][streams]") {
  temp_dir dir;
  write_file(dir / "reading.capnp", schema);
  write_file(dir / "in.jsonl", "");
  auto base = app_yaml("", "");
  auto lint = [&](std::string from, std::string to) {
    auto y = base;
    if (!from.empty())
      y.replace(y.find(from), from.size(), to);
    write_file(dir / "app.yaml", y);
    return run_troupe({"lint", dir / "app.yaml"});
  };
  auto ok = lint("", "");
  INFO(ok.output);
  REQUIRE(exit_code(ok.status) == 0);
  auto r = lint("slide: 20s", "slide: 25s");
  CHECK(exit_code(r.status) != 0);
  CHECK_THAT(r.output, Catch::Contains("the slide must divide the window's size"));
  r = lint("size: 1m, slide", "count: 10, size: 1m, slide");
  CHECK_THAT(r.output, Catch::Contains("not both"));
  r = lint("time_field: at, size: 1m, lateness", "time_field: sensor, size: 1m, lateness");
  CHECK_THAT(r.output, Catch::Contains("'sensor' must be an integer field"));
  r = lint("late: side, ", "");
  CHECK_THAT(r.output, Catch::Contains("the 'late' port is connected, but late is not 'side'"));
  r = lint("lateness: 5s, op: avg", "lateness: 0s, op: avg");
  CHECK(exit_code(r.status) == 0);
  r = lint("op: avg", "op: median");
  CHECK_THAT(r.output, Catch::Contains("expected count, sum, min, max or avg, found 'median'"));
}
