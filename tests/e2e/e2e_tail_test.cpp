// End to end: the tail stage follows a growing file of JSON lines through rotation by rename,
// truncation in place and a SIGKILL across a rotation. The test is the writer: it appends lines
// numbered 0, 1, 2, ... and knows which numbers the output must hold, in order, once each.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

struct tail_app {
  temp_dir dir;
  std::string log = dir / "logs/app.log";
  tail_app() {
    std::filesystem::create_directories(dir / "logs");
    write_file(dir / "ev.capnp", "@0xe4b8a1c2d3f40516;\n"
                                 "struct Event { n @0 :UInt64; text @1 :Text; }\n");
    write_file(dir / "app.yaml",
               "app: tailtest\n"
               "schema: {file: ev.capnp, payload: Event}\n"
               "stages:\n"
               "  - {name: follow, type: tail, path: logs/app.log, poll_ms: 20, required: [n],\n"
               "     output: events}\n"
               "  - {name: out, type: jsonl_sink, input: events, path: out.jsonl}\n");
  }
  std::unique_ptr<troupe_process> node() {
    return std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  }
  // Appends lines numbered [from, to) to `file`, as a logger does.
  static void write(const std::string& file, uint64_t from, uint64_t to) {
    std::ofstream out(file, std::ios::app | std::ios::binary);
    for (auto n = from; n < to; ++n)
      out << "{\"n\": " << n << ", \"text\": \"ligne \\u00e9 " << n << "\"}\n";
  }
  // The numbers in the output, in order (a partial last line is left out while it is written).
  std::vector<uint64_t> output() {
    std::ifstream in(dir / "out.jsonl");
    std::vector<uint64_t> ns;
    for (std::string line; std::getline(in, line);) {
      auto obj = parse_flat_json(line);
      if (!obj)
        break;
      ns.push_back(std::stoull(obj->at("n").text));
    }
    return ns;
  }
  bool has(size_t n) {
    return wait_until([&] { return output().size() >= n; }, 60s, 5ms);
  }
};

std::vector<uint64_t> numbers(std::initializer_list<std::pair<uint64_t, uint64_t>> ranges) {
  std::vector<uint64_t> ns;
  for (auto [from, to] : ranges)
    for (auto n = from; n < to; ++n)
      ns.push_back(n);
  return ns;
}

} // namespace

TEST_CASE("tail follows a file through rotation by rename and by copytruncate, every line once "
          "and in order", "[e2e][tail]") {
  tail_app app;
  auto node = app.node(); // before the file exists: it waits for it
  tail_app::write(app.log, 0, 500);
  REQUIRE(app.has(500));
  // logrotate: rename, the logger writes on to the old file a while, then to a new one.
  std::filesystem::rename(app.log, app.log + ".1");
  tail_app::write(app.log + ".1", 500, 600);
  tail_app::write(app.log, 600, 900);
  REQUIRE(app.has(900));
  // copytruncate: the file is cut back to nothing in place, then written on.
  std::filesystem::copy_file(app.log, app.log + ".2");
  std::filesystem::resize_file(app.log, 0);
  tail_app::write(app.log, 900, 950);
  INFO(tail_of(app.dir / "node.log"));
  REQUIRE(app.has(950));
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  CHECK(exited_ok(node->status()));
  CHECK(app.output() == numbers({{0, 950}}));
  CHECK(lines_with(app.dir / "node.log", "reading the new " + app.log) == 1);
  CHECK(lines_with(app.dir / "node.log", "it was truncated (copytruncate?)") == 1);
}

TEST_CASE("tail SIGKILLed, its file rotated while it is down, resumes in the rotated file and "
          "then reads the new one", "[e2e][tail][crash]") {
  tail_app app;
  tail_app::write(app.log, 0, 3000);
  auto node = app.node();
  REQUIRE(app.has(1)); // killed while it reads, or once it has read them all
  node->kill_and_reap();
  tail_app::write(app.log, 3000, 3500); // the logger goes on, the file is rotated, and more
  std::filesystem::rename(app.log, app.log + ".1");
  tail_app::write(app.log, 3500, 4000);
  node = app.node();
  INFO(tail_of(app.dir / "node.log"));
  REQUIRE(app.has(4000));
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  CHECK(app.output() == numbers({{0, 4000}}));
  CHECK(lines_with(app.dir / "node.log", "was rotated: resuming in " + app.log + ".1") == 1);
}

TEST_CASE("tail whose file was rotated and removed while it was down says what it lost and reads "
          "the new file", "[e2e][tail][crash]") {
  tail_app app;
  tail_app::write(app.log, 0, 100);
  auto node = app.node();
  REQUIRE(app.has(100));
  node->kill_and_reap();
  tail_app::write(app.log, 100, 150); // never read: removed with its file
  // The new file is written aside and renamed over the old one, which is removed: both exist at
  // once, so the new one cannot get the old one's inode number (a file system reuses them).
  tail_app::write(app.log + ".new", 150, 200);
  std::filesystem::rename(app.log + ".new", app.log);
  node = app.node();
  INFO(tail_of(app.dir / "node.log"));
  REQUIRE(app.has(150));
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  CHECK(app.output() == numbers({{0, 100}, {150, 200}}));
  CHECK(lines_with(app.dir / "node.log", "is gone, neither there nor beside it") == 1);
}

TEST_CASE("tail catches up on rotations it fell behind, running and after a SIGKILL, ends a "
          "rotated file's unended last line, and sees a copytruncate that grew past it",
          "[e2e][tail][crash]") {
  tail_app app;
  auto node = app.node();
  tail_app::write(app.log, 0, 10);
  REQUIRE(app.has(10));
  // Rotated twice before it looks again: app.log.2, then app.log.1, then app.log.
  std::filesystem::rename(app.log, app.log + ".1");
  tail_app::write(app.log, 10, 20);
  std::filesystem::rename(app.log + ".1", app.log + ".2");
  std::filesystem::rename(app.log, app.log + ".1");
  tail_app::write(app.log, 20, 30);
  REQUIRE(app.has(30));
  // Killed, then more lines, and two rotations while it is down.
  node->kill_and_reap();
  tail_app::write(app.log, 30, 35);
  std::filesystem::rename(app.log + ".1", app.log + ".3");
  std::filesystem::rename(app.log, app.log + ".1");
  tail_app::write(app.log, 35, 40);
  std::filesystem::rename(app.log + ".1", app.log + ".4");
  std::filesystem::rename(app.log, app.log + ".1");
  tail_app::write(app.log, 40, 45);
  {
    std::ofstream out(app.log, std::ios::app); // the last line, its '\n' never written
    out << "{\"n\": 45, \"text\": \"sans fin\"}";
  }
  node = app.node();
  INFO(tail_of(app.dir / "node.log"));
  REQUIRE(app.has(45));
  std::filesystem::rename(app.log, app.log + ".5");
  tail_app::write(app.log, 46, 50);
  REQUIRE(app.has(50));
  // copytruncate, and more written at once than the file held before: never shorter when seen.
  std::filesystem::resize_file(app.log, 0);
  tail_app::write(app.log, 100, 200);
  REQUIRE(app.has(150));
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  CHECK(app.output() == numbers({{0, 50}, {100, 200}}));
  CHECK(lines_with(app.dir / "node.log", "no longer starts with the bytes it started with") == 1);
}
