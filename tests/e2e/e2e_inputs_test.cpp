// What a newcomer did to a working app and what it must answer: a param left without a value, an
// input file replaced or cut while the app was stopped half way, two nodes writing one output
// file, and `troupe check` where no app has run yet. Real `troupe` processes, real files.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

// orders.jsonl -> jsonl_sink, following the file (so a stop leaves the source half way, not done).
std::string follow_app(const std::string& key_line = "    key: customer\n") {
  return "app: inputs\n"
         "schema: {file: " TROUPE_SOURCE_DIR "/apps/quickstart/orders.capnp, payload: Order}\n"
         "supervision: {max_restarts: 0}\n"
         "defaults: {supervision: {max_restarts: 0}}\n"
         "stages:\n"
         "  - name: read\n"
         "    type: jsonl_source\n"
         "    path: orders.jsonl\n"
         "    follow: true\n" +
         key_line +
         "    output: orders\n"
         "  - {name: write, type: jsonl_sink, input: orders, path: out.jsonl}\n";
}

void write_orders(const std::string& path, int from, int to) {
  std::string text;
  for (int i = from; i < to; ++i)
    text += "{\"id\": " + std::to_string(i) + ", \"customer\": \"c" + std::to_string(i % 7) +
            "\", \"item\": \"x\", \"quantity\": 1, \"unitPrice\": 2.5}\n";
  write_file(path, text);
}

size_t lines_in(const std::string& path) {
  bool complete = false;
  auto text = read_file(path);
  return split_lines(text, complete).size();
}

// Runs the app until its output holds `n` lines, then stops it in order.
void run_until(const std::string& dir, size_t n) {
  troupe_process node{dir + "/app.yaml", dir + "/data", dir + "/troupe.log"};
  REQUIRE(wait_until([&] { return fs::exists(dir + "/out.jsonl") && lines_in(dir + "/out.jsonl") >= n; },
                     60s));
  node.signal(SIGTERM);
  REQUIRE(node.wait_for_exit(1min));
  INFO(tail_of(dir + "/troupe.log"));
  REQUIRE(describe_status(node.status()) == "exit 0");
}

} // namespace

TEST_CASE("a stage param written with no value is an error with its line", "[e2e][inputs]") {
  temp_dir dir;
  write_file(dir / "app.yaml", follow_app("    key:\n"));
  auto r = run_troupe({"lint", dir / "app.yaml"});
  INFO(r.output);
  CHECK(exit_code(r.status) == 2);
  CHECK_THAT(r.output, Catch::Contains("app.yaml:10:5: stages[0].key: has no value"));
  CHECK_THAT(r.output, Catch::Contains("stages[0].key: has no value"));
}

TEST_CASE("a source resumed in a replaced or shortened file stops with the file named, and "
          "writes nothing of it",
          "[e2e][inputs]") {
  temp_dir dir;
  write_file(dir / "app.yaml", follow_app());
  write_orders(dir / "orders.jsonl", 0, 200);
  run_until(dir.path().string(), 200);

  SECTION("replaced by another file at the same path") {
    fs::rename(dir / "orders.jsonl", dir / "old.jsonl"); // keeps the old inode alive
    write_orders(dir / "orders.jsonl", 1000, 1400);
  }
  SECTION("cut shorter than what was read") {
    fs::resize_file(dir / "orders.jsonl", 1000);
  }
  auto r = run_troupe({"run", dir / "app.yaml", "--data-dir", dir / "data"});
  INFO(r.output);
  CHECK(exit_code(r.status) == 1);
  CHECK_THAT(r.output, Catch::Contains(fs::weakly_canonical(dir / "orders.jsonl").string()));
  CHECK_THAT(r.output, Catch::Contains("this stage already read"));
  CHECK_THAT(r.output, Catch::Contains("troupe reset"));
  CHECK(lines_in(dir / "out.jsonl") == 200); // nothing of the other file
}

TEST_CASE("a second node writing the same output file is refused, and the first one's output "
          "stays whole",
          "[e2e][inputs]") {
  temp_dir dir;
  write_file(dir / "app.yaml", follow_app());
  write_orders(dir / "orders.jsonl", 0, 300);
  troupe_process first{dir / "app.yaml", dir / "data", dir / "first.log"};
  REQUIRE(wait_until([&] { return fs::exists(dir / "out.jsonl") && lines_in(dir / "out.jsonl") == 300; },
                     60s));
  auto second = run_troupe({"run", dir / "app.yaml", "--data-dir", dir / "other"});
  INFO(second.output);
  CHECK(exit_code(second.status) == 1);
  CHECK_THAT(second.output, Catch::Contains("is being written by another troupe node"));
  CHECK(first.running());
  first.signal(SIGTERM);
  REQUIRE(first.wait_for_exit(1min));
  CHECK(describe_status(first.status()) == "exit 0");
  CHECK(lines_in(dir / "out.jsonl") == 300);
}

TEST_CASE("troupe check where no app has run says so; a missing path is named", "[e2e][inputs]") {
  temp_dir dir;
  fs::create_directories(dir / "empty");
  auto empty = run_troupe({"check", dir / "empty"});
  CHECK(exit_code(empty.status) == 0);
  CHECK_THAT(empty.output, Catch::Contains("no store here yet"));

  write_file(dir / "app.yaml", follow_app());
  auto never_ran = run_troupe({"check", dir / "app.yaml"});
  INFO(never_ran.output);
  CHECK(exit_code(never_ran.status) == 0);
  CHECK_THAT(never_ran.output, Catch::Contains("no store here yet"));

  auto missing = run_troupe({"check", dir / "nowhere"});
  CHECK(exit_code(missing.status) == 2);
  CHECK_THAT(missing.output, Catch::Contains("nowhere: no such file or directory"));
}

TEST_CASE("a sink whose committed lines were lost before they reached the disk is refused by "
          "name, not appended to",
          "[e2e][inputs]") {
  // At `process` (the default) the sink syncs its file now and then; what a power loss leaves
  // where committed but unsynced lines were (zeros, here) is caught when the sink opens.
  temp_dir dir;
  auto d = dir.path().string();
  write_file(dir / "app.yaml", follow_app());
  write_orders(dir / "orders.jsonl", 0, 20);
  run_until(d, 20); // well within the sink's first second: none of its lines synced yet
  auto out = read_file(dir / "out.jsonl");
  REQUIRE(!out.empty());
  auto half = out.size() / 2;
  auto damaged = out.substr(0, half) + std::string(out.size() - half, '\0');
  write_file(dir / "out.jsonl", damaged);

  troupe_process node{dir / "app.yaml", dir / "data", dir / "troupe.log"};
  bool ended = node.wait_for_exit(1min);
  INFO(tail_of(dir / "troupe.log"));
  REQUIRE(ended);
  CHECK(!exited_ok(node.status()));
  CHECK(lines_with(dir / "troupe.log", "were committed but are not what was written") > 0);
  CHECK(read_file(dir / "out.jsonl") == damaged); // nothing appended to it, nothing cut
}
