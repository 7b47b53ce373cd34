// The troupe command line as a user meets it: real `troupe` processes for --version, unknown
// commands, lint with warnings and overrides, and `troupe reset` on and off a terminal and
// beside a running node.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

// Runs a command in a pseudo-terminal (python3's pty), answering `answer` to its [y/N] prompt.
command_result run_on_terminal(std::vector<std::string> args, const std::string& answer) {
  static const char* script = R"(
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out, sent = b'', False
while True:
    try:
        data = os.read(fd, 1024)
    except OSError:
        break
    if not data:
        break
    out += data
    if not sent and b'[y/N]' in out:
        os.write(fd, sys.argv[1].encode() + b'\n')
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
sys.exit(os.waitstatus_to_exitcode(status))
)";
  args.insert(args.begin(), std::string(TROUPE_BIN_DIR) + "/troupe");
  args.insert(args.begin(), answer);
  args.insert(args.begin(), script);
  args.insert(args.begin(), "-c");
  args.insert(args.begin(), "/usr/bin/python3");
  return run_command(args);
}

// gen -> jsonl_sink: `count` records (0: until stopped) at `rate` per second (0: at once).
std::string sink_app(const std::string& out, int count, int rate = 0) {
  return "app: cli\n"
         "schema: {file: " TROUPE_SOURCE_DIR "/tests/e2e/plugin/e2e.capnp, payload: Item}\n"
         "stages:\n"
         "  - name: gen\n"
         "    type: generator\n"
         "    count: " +
         std::to_string(count) +
         "\n"
         "    rate: " +
         std::to_string(rate) +
         "\n"
         "    output: items\n"
         "  - name: write\n"
         "    type: jsonl_sink\n"
         "    input: items\n"
         "    path: " +
         out + "\n";
}

} // namespace

TEST_CASE("troupe --version prints the project's version", "[e2e][cli]") {
  auto r = run_troupe({"--version"});
  CHECK(exit_code(r.status) == 0);
  CHECK(r.output == "troupe " TROUPE_VERSION "\n");
}

TEST_CASE("an unknown command lists the commands", "[e2e][cli]") {
  auto r = run_troupe({"lnit", "app.yaml"});
  CHECK(exit_code(r.status) == 64);
  CHECK(r.output == "troupe: unknown command 'lnit' (did you mean 'lint'?); the commands are: "
                    "run, launch, lint, test, check, reset (troupe --help says more)\n");
}

TEST_CASE("lint prints warnings and passes, and an override's typo fails it, named", "[e2e][cli]") {
  temp_dir dir;
  write_file(dir / "app.yaml",
             "app: cli-lint\n"
             "schema: {file: " TROUPE_SOURCE_DIR "/apps/quickstart/orders.capnp, payload: Order}\n"
             "stages:\n"
             "  - {name: read, type: jsonl_source, path: nowhere.jsonl, output: orders}\n"
             "  - {name: write, type: jsonl_sink, input: orders, path: out.jsonl}\n");
  auto ok = run_troupe({"lint", dir / "app.yaml"});
  INFO(ok.output);
  CHECK(exit_code(ok.status) == 0);
  CHECK_THAT(ok.output, Catch::Contains("app.yaml:4:44: warning: stages[0].path: stage 'read' "
                                        "reads "));
  CHECK_THAT(ok.output, Catch::Contains("ok (app cli-lint, 2 stages, 1 edges, 1 warning)"));

  auto typo = run_troupe({"lint", dir / "app.yaml", "--set", "stages.write.wokers=4"});
  INFO(typo.output);
  CHECK(exit_code(typo.status) == 2);
  CHECK_THAT(typo.output, Catch::Contains("--set stages.write.wokers=4: unknown key 'wokers' "
                                          "(did you mean 'workers'?)"));
}

TEST_CASE("troupe reset deletes the store and the sinks' outputs, after confirmation",
          "[e2e][cli]") {
  temp_dir dir;
  auto app = dir / "app.yaml", data = dir / "data", out = dir / "out/items.jsonl";
  write_file(app, sink_app("out/items.jsonl", 20));
  write_file(dir / "keep.txt", "not troupe's\n");
  auto run = run_troupe({"run", app, "--data-dir", data});
  INFO(run.output);
  REQUIRE(exit_code(run.status) == 0);
  REQUIRE(size_of(out) > 0);
  REQUIRE(fs::exists(data + "/data.mdb"));

  // Not on a terminal and without --yes: nothing is deleted.
  auto refused = run_troupe({"reset", app, "--data-dir", data});
  CHECK(exit_code(refused.status) == 64);
  CHECK_THAT(refused.output, Catch::Contains("not on a terminal, so not asking: add --yes"));
  CHECK_THAT(refused.output, Catch::Contains(fs::weakly_canonical(out).string()));
  CHECK(fs::exists(out));
  CHECK(fs::exists(data + "/data.mdb"));

  // On a terminal, "n" keeps everything and "y" deletes.
  auto kept = run_on_terminal({"reset", app, "--data-dir", data}, "n");
  INFO(kept.output);
  CHECK(exit_code(kept.status) == 1);
  CHECK_THAT(kept.output, Catch::Contains("Nothing was deleted."));
  CHECK(fs::exists(out));

  auto gone = run_on_terminal({"reset", app, "--data-dir", data}, "y");
  INFO(gone.output);
  CHECK(exit_code(gone.status) == 0);
  CHECK_THAT(gone.output, Catch::Contains("Deleted 5 of 5 files and the empty data dir."));
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(fs::exists(data));
  CHECK(fs::exists(dir / "keep.txt"));

  // The next run starts from nothing: the whole output again, once.
  auto again = run_troupe({"run", app, "--data-dir", data});
  REQUIRE(exit_code(again.status) == 0);
  bool complete = false;
  auto text = read_file(out);
  CHECK(split_lines(text, complete).size() == 20);
}

TEST_CASE("troupe reset refuses while a node has the data dir open", "[e2e][cli]") {
  temp_dir dir;
  auto app = dir / "app.yaml", data = dir / "data", log = dir / "node.log";
  write_file(app, sink_app("items.jsonl", 0, 50)); // runs until it is stopped
  troupe_process node{app, data, log};
  REQUIRE(wait_until([&] { return size_of(dir / "items.jsonl") > 0; }, 30s));
  auto r = run_troupe({"reset", app, "--data-dir", data, "--yes"});
  INFO(r.output << tail_of(log));
  CHECK(node.running());
  CHECK(exit_code(r.status) == 1);
  CHECK_THAT(r.output, Catch::Contains("a node has the data dir " + data +
                                       " open (it holds troupe.lock); stop it first. Nothing "
                                       "was deleted."));
  CHECK(fs::exists(data + "/data.mdb"));
  CHECK(size_of(dir / "items.jsonl") > 0);
  node.signal(SIGTERM);
  REQUIRE(node.wait_for_exit(1min));
  CHECK(describe_status(node.status()) == "exit 0");
}
