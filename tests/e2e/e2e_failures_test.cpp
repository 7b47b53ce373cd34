// End to end: failures that must end, and end clearly, with real `troupe run` processes. A
// missing input, a stage that can never start, a finished app whose input changed, a stage's
// dead letter naming the line its record came from.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

const std::string quickstart = std::string(TROUPE_SOURCE_DIR) + "/apps/quickstart";

// read (jsonl_source, with `source_extra` under it) -> price -> write.
std::string orders_app(const std::string& input, const std::string& source_extra = "") {
  std::ostringstream y;
  y << "app: orders\n"
    << "schema: {files: [" << quickstart << "/orders.capnp], payload: Order}\n"
    << "plugins: [quickstart]\n"
    << "edges: {priced: {type: PricedOrder}}\n"
    << "defaults: {retry: {max_attempts: 2, backoff: 1ms}}\n"
    << "stages:\n"
    << "  - name: read\n"
    << "    type: jsonl_source\n"
    << "    path: " << input << "\n"
    << source_extra
    << "    output: orders\n"
    << "  - {name: price, type: quickstart.price, input: orders, output: priced}\n"
    << "  - {name: write, type: jsonl_sink, input: priced, path: out.jsonl}\n";
  return y.str();
}

std::string order_line(int id, const std::string& customer, int quantity) {
  return "{\"id\": " + std::to_string(id) + ", \"customer\": \"" + customer +
         "\", \"item\": \"pen\", \"quantity\": " + std::to_string(quantity) +
         ", \"unitPrice\": 1.5}";
}

struct finished_run {
  int status;
  std::string log;
};

finished_run run_to_end(const std::string& app, const std::string& data, const std::string& log,
                        std::chrono::seconds deadline = 2min) {
  troupe_process node{app, data, log};
  bool ended = node.wait_for_exit(deadline);
  INFO(tail_of(log));
  REQUIRE(ended);
  return {node.status(), read_file(log)};
}

} // namespace

TEST_CASE("a jsonl_source whose file does not exist fails at once: exit 1 naming the path",
          "[e2e][failures]") {
  temp_dir dir;
  write_file(dir / "app.yaml", orders_app("missing.jsonl"));
  // Within the first restart round's backoff: no restarts are spent on it.
  auto r = run_to_end(dir / "app.yaml", dir / "data", dir / "log", 30s);
  INFO(r.log);
  CHECK(describe_status(r.status) == "exit 1");
  CHECK(r.log.find("missing.jsonl: no such file") != std::string::npos);
  CHECK(r.log.find("no restart can heal this") != std::string::npos);
  CHECK(r.log.find("restarting read/0") == std::string::npos);
}

TEST_CASE("a sink's file from an earlier run survives a run that fails before writing, and an "
          "input that brings nothing empties it", "[e2e][failures]") {
  temp_dir dir;
  write_file(dir / "good.jsonl", order_line(1, "ada", 2) + "\n" + order_line(2, "bob", 3) + "\n");
  write_file(dir / "empty.jsonl", "");
  write_file(dir / "good.yaml", orders_app("good.jsonl"));
  write_file(dir / "missing.yaml", orders_app("missing.jsonl"));
  write_file(dir / "empty.yaml", orders_app("empty.jsonl"));
  CHECK(exited_ok(run_to_end(dir / "good.yaml", dir / "data-good", dir / "log").status));
  auto report = read_file(dir / "out.jsonl");
  REQUIRE(std::count(report.begin(), report.end(), '\n') == 2);
  // Another store, an input that is missing: it fails before it writes, the file stays.
  CHECK(describe_status(run_to_end(dir / "missing.yaml", dir / "data-missing", dir / "log").status) ==
        "exit 1");
  CHECK(read_file(dir / "out.jsonl") == report);
  // Another store, an input that ends empty: the file holds this run's records, none.
  CHECK(exited_ok(run_to_end(dir / "empty.yaml", dir / "data-empty", dir / "log").status));
  CHECK(read_file(dir / "out.jsonl").empty());
}

TEST_CASE("with follow: true a jsonl_source waits for its file and reads it once it appears",
          "[e2e][failures]") {
  temp_dir dir;
  write_file(dir / "app.yaml", orders_app("later.jsonl", "    follow: true\n    poll_ms: 20\n"));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "log"};
  // The node is up and its source waits (it logged that the app started and is still running).
  REQUIRE(wait_until([&] { return read_file(dir / "log").find("data in") != std::string::npos; },
                     60s));
  REQUIRE(node.running());
  write_file(dir / "later.jsonl", order_line(1, "ada", 2) + "\n" + order_line(2, "bob", 3) + "\n");
  bool written = wait_until([&] {
    bool complete = true;
    auto text = read_file(dir / "out.jsonl");
    return split_lines(text, complete).size() == 2;
  }, 60s);
  INFO(tail_of(dir / "log"));
  CHECK(written);
  node.signal(SIGTERM);
  REQUIRE(node.wait_for_exit(60s));
  CHECK(describe_status(node.status()) == "exit 0");
}

TEST_CASE("a finished app run again after its input grew says so and how to start afresh",
          "[e2e][failures]") {
  temp_dir dir;
  write_file(dir / "in.jsonl", order_line(1, "ada", 2) + "\n");
  write_file(dir / "app.yaml", orders_app("in.jsonl"));
  auto first = run_to_end(dir / "app.yaml", dir / "data", dir / "log1");
  REQUIRE(describe_status(first.status) == "exit 0");
  append_line(dir / "in.jsonl", order_line(2, "bob", 3));
  auto again = run_to_end(dir / "app.yaml", dir / "data", dir / "log2");
  INFO(again.log);
  CHECK(describe_status(again.status) == "exit 0");
  CHECK(again.log.find("has grown from") != std::string::npos);
  CHECK(again.log.find("troupe reset") != std::string::npos);
}

TEST_CASE("a stage's dead letter names the line of the input its record came from",
          "[e2e][failures]") {
  temp_dir dir;
  std::string lines;
  for (int i = 1; i <= 20; ++i)
    lines += order_line(i, "c" + std::to_string(i % 3), i == 13 ? 0 : 2) + "\n"; // 13: quantity 0
  write_file(dir / "in.jsonl", lines);
  write_file(dir / "app.yaml", orders_app("in.jsonl"));
  auto r = run_to_end(dir / "app.yaml", dir / "data", dir / "log");
  INFO(r.log);
  CHECK(describe_status(r.status) == "exit 0");
  // The price stage throws on order 13, on line 13 of in.jsonl.
  CHECK(r.log.find("from line 13 of read's input goes to the dead-letter log") != std::string::npos);
}

TEST_CASE("with default supervision a stage that can never start is given up and the run exits "
          "1 naming it",
          "[e2e][failures][slow]") {
  temp_dir dir;
  std::ostringstream y;
  y << "app: broken\n"
    << "schema: {file: " << TROUPE_SOURCE_DIR << "/tests/e2e/plugin/e2e.capnp, payload: Item}\n"
    << "plugins: [e2e]\n"
    << "stages:\n"
    << "  - {name: gen, type: generator, count: 100, output: items}\n"
    << "  - {name: sink, type: e2e.broken, input: items}\n";
  write_file(dir / "app.yaml", y.str());
  // CONFIG.md documents about 22 s with the defaults; the deadline only keeps a hang from
  // stalling the suite.
  auto start = std::chrono::steady_clock::now();
  auto r = run_to_end(dir / "app.yaml", dir / "data", dir / "log", 3min);
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "e2e failures: a stage that never starts was given up after " << took << " s\n";
  INFO(r.log);
  CHECK(describe_status(r.status) == "exit 1");
  CHECK(r.log.find("stage sink is given up") != std::string::npos);
  CHECK(r.log.find("the disk it needs is gone") != std::string::npos);
}
