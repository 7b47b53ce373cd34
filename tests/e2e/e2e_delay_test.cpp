// End to end: the delay stage in real `troupe run` processes. Delays are checked from below
// only (never sooner than promised; a slow machine only makes it later); what comes out is
// checked against the input: every record once, in order, also across a SIGKILL while records
// wait in LMDB.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const char* schema = "@0x8192a3b4c5d6e7f0;\nstruct Item { index @0 :UInt32; body @1 :Text; }\n";

std::vector<uint32_t> indexes_in(const std::string& path) {
  std::vector<uint32_t> out;
  std::istringstream in{read_file(path)};
  for (std::string line; std::getline(in, line);)
    out.push_back(json::parse(line).at("index").get<uint32_t>());
  return out;
}

} // namespace

TEST_CASE("delay holds every record for its delay, then passes all of them on in order",
          "[e2e][streams]") {
  temp_dir dir;
  write_file(dir / "item.capnp", schema);
  write_file(dir / "app.yaml",
             "app: later\nschema: {file: item.capnp, payload: Item}\nstages:\n"
             "  - {name: gen, type: generator, count: 500, payload_size: 8, output: items}\n"
             "  - {name: wait, type: delay, input: items, output: later, delay: 1500ms}\n"
             "  - {name: write, type: jsonl_sink, input: later, path: out.jsonl}\n");
  auto started = std::chrono::steady_clock::now();
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(60s));
  auto took = std::chrono::steady_clock::now() - started;
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  CHECK(took >= 1500ms); // the input ended long before: the stage waited for its last records
  std::vector<uint32_t> want(500);
  for (uint32_t i = 0; i < 500; ++i)
    want[i] = i;
  CHECK(indexes_in(dir / "out.jsonl") == want);
}

TEST_CASE("records waiting in a delay survive a SIGKILL and go out once", "[e2e][streams][crash]") {
  temp_dir dir;
  write_file(dir / "item.capnp", schema);
  write_file(dir / "in.jsonl", "");
  write_file(dir / "app.yaml",
             "app: later\nschema: {file: item.capnp, payload: Item}\nstages:\n"
             "  - {name: read, type: jsonl_source, path: in.jsonl, follow: true, poll_ms: 20,"
             " output: items}\n"
             "  - {name: wait, type: delay, input: items, output: later, delay: 3s}\n"
             "  - {name: write, type: jsonl_sink, input: later, path: out.jsonl}\n");
  auto node = std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  for (uint32_t i = 0; i < 3; ++i)
    append_line(dir / "in.jsonl", json{{"index", i}, {"body", "née"}}.dump());
  REQUIRE(wait_consumed(dir / "data", "wait", 3));
  REQUIRE(size_of(dir / "out.jsonl") == 0); // they wait: only LMDB holds them
  REQUIRE(killed_by(node->kill_and_reap(), SIGKILL));
  node = std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  REQUIRE(wait_until([&] { return indexes_in(dir / "out.jsonl").size() == 3; }, 30s));
  CHECK(indexes_in(dir / "out.jsonl") == std::vector<uint32_t>{0, 1, 2});
}

TEST_CASE("delay refuses a backoff without an attempt header", "[e2e][streams]") {
  temp_dir dir;
  write_file(dir / "item.capnp", schema);
  write_file(dir / "app.yaml",
             "app: later\nschema: {file: item.capnp, payload: Item}\nstages:\n"
             "  - {name: gen, type: generator, count: 5, output: items}\n"
             "  - {name: wait, type: delay, input: items, output: later, delay: 1s, backoff: 2}\n"
             "  - {name: write, type: jsonl_sink, input: later, path: out.jsonl}\n");
  auto r = run_troupe({"lint", dir / "app.yaml"});
  CHECK(exit_code(r.status) != 0);
  CHECK_THAT(r.output, Catch::Contains("set attempt_header: <name>"));
}
