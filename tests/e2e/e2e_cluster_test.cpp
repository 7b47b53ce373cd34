// End to end: an app over three nodes (separate `troupe run --node` processes under `troupe
// launch`), records crossing two node links: jsonl_source on a -> filter (2 workers) on b ->
// jsonl_sink on c. Nodes are SIGKILLed at random moments and the launcher starts them again; a
// node is SIGSTOPped until the others notice. The oracle is the input file itself, read back by
// this test's own JSON reader: every line once in the output, in input order per key.
#include "e2e_support.hpp"
#include "node_fixture.hpp"
#include "wordcount_oracle.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>
#include <sstream>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

struct cluster {
  temp_dir dir;
  int ports[3] = {free_port(), free_port(), free_port()};

  std::string app(const std::string& timeout = "2s", const std::string& tls = "") const {
    std::ostringstream y;
    y << "app: trio\n"
      << "data_dir: " << dir / "data" << "\n"
      << "schema: {files: [trio.capnp]}\n"
      << "nodes:\n";
    const char* names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; ++i)
      y << "  " << names[i] << ": {address: 127.0.0.1:" << ports[i] << "}\n";
    y << "links: {timeout: " << timeout << ", linger: 5s" << tls << "}\n"
      << "edges:\n"
      << "  raw: {type: Event, partitions: 4}\n"
      << "  kept: {type: Event, partitions: 4}\n"
      << "stages:\n"
      << "  - {name: read, node: a, type: jsonl_source, path: in.jsonl, key: key, output: raw}\n"
      << "  - {name: keep, node: b, type: filter, where: 'seq >= 0', workers: 2, input: raw,\n"
      << "     output: kept}\n"
      << "  - {name: write, node: c, type: jsonl_sink, path: out/out.jsonl, input: kept}\n";
    return y.str();
  }

  cluster() {
    write_file(dir / "trio.capnp", "@0xd1c3a5b7e9f10203;\n"
                                   "struct Event {\n  key @0 :Text;\n  seq @1 :UInt64;\n"
                                   "  body @2 :Text;\n}\n");
    write_file(dir / "app.yaml", app());
  }
};

// `n` lines over 50 keys, some of them not ASCII, half of the bodies with \u escapes.
void write_input(const std::string& path, uint64_t n, uint64_t seed) {
  std::mt19937_64 rnd{seed};
  std::ofstream out{path};
  for (uint64_t i = 0; i < n; ++i) {
    auto k = rnd() % 50;
    out << "{\"key\":\"" << (k % 3 == 0 ? "клиент-" : k % 3 == 1 ? "Zoë-" : "k-") << k
        << "\",\"seq\":" << i << ",\"body\":\""
        << (i % 2 ? "caf\\u00e9 \\ud83d\\ude00" : "plain text") << "\"}\n";
  }
}

// The pids of the launcher's children that run node `name`.
std::vector<pid_t> node_pids(pid_t launcher, const std::string& name) {
  std::vector<pid_t> pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    auto pid = std::atoi(entry.path().filename().c_str());
    if (pid <= 0)
      continue;
    std::ifstream stat{entry.path() / "stat"};
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream rest{text.substr(close + 2)};
    char state;
    pid_t ppid;
    rest >> state >> ppid;
    if (ppid != launcher)
      continue;
    std::ifstream cmd{entry.path() / "cmdline", std::ios::binary};
    std::string line((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
    if (line.find(std::string("--node") + '\0' + name + '\0') != std::string::npos)
      pids.push_back(pid);
  }
  return pids;
}

// Every input line once, and in input order per key.
void check_output(const std::string& out, uint64_t n) {
  std::vector<bool> seen(n, false);
  std::map<std::string, uint64_t> last; // per key: the last seq, + 1
  uint64_t lines = 0;
  std::ifstream in{out};
  for (std::string line; std::getline(in, line);) {
    ++lines;
    auto obj = parse_flat_json(line);
    REQUIRE(obj);
    auto seq = std::stoull(obj->at("seq").text);
    INFO("line " << lines << ": " << line);
    REQUIRE(seq < n);
    REQUIRE_FALSE(seen[seq]);
    seen[seq] = true;
    auto key = obj->at("key").text;
    REQUIRE(last[key] <= seq);
    last[key] = seq + 1;
    REQUIRE(obj->at("body").text == (seq % 2 ? "caf\u00e9 \U0001F600" : "plain text"));
  }
  REQUIRE(lines == n);
  REQUIRE(last.size() == 50);
}

} // namespace

TEST_CASE("three nodes: records cross two links exactly once, in order per key, under SIGKILLs "
          "and a SIGSTOP", "[e2e][slow]") {
  cluster c;
  const uint64_t n = small_scale() ? 100000 : 1000000;
  auto seed = pick_seed();
  INFO("seed " << seed << " (TROUPE_E2E_SEED repeats it), data in " << c.dir.path());
  write_input(c.dir / "in.jsonl", n, seed);
  auto log = c.dir / "launch.log";
  auto out = c.dir / "out/out.jsonl";
  troupe_process launch{{std::string(TROUPE_BIN_DIR) + "/troupe", "launch", c.dir / "app.yaml"},
                        log};
  // Seven rounds, each once the output has grown past a random point: six SIGKILLs (of the
  // node named, or of another one where that one has finished its part: node a, once it has
  // sent everything it read) and one SIGSTOP of node c, held until node b (which sends to c)
  // notices, within the links' timeout (2 s), then SIGCONT.
  std::mt19937_64 rnd{seed};
  const char* order[] = {"a", "b", "c", "stop", "b", "a", "c"};
  uint64_t expect_bytes = size_of(c.dir / "in.jsonl"); // the output is about as large
  int kills = 0;
  bool stopped = false, noticed = false;
  for (int round = 0; round < 7; ++round) {
    auto at = expect_bytes * (round + 1) / 9 + rnd() % (expect_bytes / 18);
    REQUIRE(wait_until([&] { return size_of(out) >= at || !launch.running(); }, 180s));
    if (!launch.running())
      break;
    std::string target = order[round] == std::string{"stop"} ? "c" : order[round];
    std::vector<pid_t> pids;
    for (const char* name : {target.c_str(), "b", "c"})
      if (wait_until([&] { return !(pids = node_pids(launch.pid(), name)).empty(); }, 5s))
        break;
    if (pids.empty())
      continue;
    if (order[round] == std::string{"stop"}) {
      auto before = lines_with(log, "node c at 127.0.0.1");
      ::kill(pids.front(), SIGSTOP);
      stopped = true;
      noticed = wait_until([&] { return lines_with(log, "node c at 127.0.0.1") > before; }, 20s,
                           10ms);
      ::kill(pids.front(), SIGCONT);
      continue;
    }
    ::kill(pids.front(), SIGKILL);
    ++kills;
  }
  INFO(tail_of(log, 60));
  CHECK(kills == 6);
  CHECK(stopped);
  CHECK(noticed);
  REQUIRE(launch.wait_for_exit(300s));
  REQUIRE(exited_ok(launch.status()));
  check_output(out, n);
  CHECK(lines_with(log, "starting it again") >= static_cast<size_t>(kills));
}

TEST_CASE("nodes whose apps differ refuse each other and say what differs", "[e2e]") {
  cluster c;
  write_input(c.dir / "in.jsonl", 1000, 1);
  // b runs a file in which edge raw has 8 partitions: a's link to b is refused, a exits 1.
  write_file(c.dir / "other.yaml", [&] {
    auto text = c.app();
    auto at = text.find("raw: {type: Event, partitions: 4}");
    return text.replace(at, 33, "raw: {type: Event, partitions: 8}");
  }());
  auto troupe = std::string(TROUPE_BIN_DIR) + "/troupe";
  troupe_process b{{troupe, "run", c.dir / "other.yaml", "--node", "b"}, c.dir / "b.log"};
  troupe_process a{{troupe, "run", c.dir / "app.yaml", "--node", "a"}, c.dir / "a.log"};
  REQUIRE(a.wait_for_exit(60s));
  INFO(tail_of(c.dir / "a.log"));
  CHECK(exit_code(a.status()) == 1);
  CHECK(lines_with(c.dir / "a.log", "node b refuses edge 'raw': node a's app differs from node "
                                    "b's in: edge raw") > 0);
  b.signal(SIGTERM);
  REQUIRE(b.wait_for_exit(60s));
}

TEST_CASE("troupe run of an app with nodes needs --node, and names the nodes", "[e2e]") {
  cluster c;
  auto r = run_troupe({"run", c.dir / "app.yaml"});
  CHECK(exit_code(r.status) == 64);
  CHECK(r.output.find("runs on nodes a, b, c: run one with --node NAME, or all of them here "
                      "with troupe launch") != std::string::npos);
  r = run_troupe({"run", c.dir / "app.yaml", "--node", "d"});
  CHECK(exit_code(r.status) == 64);
  CHECK(r.output.find("has no such node") != std::string::npos);
  auto ctl = std::string(TROUPE_BIN_DIR) + "/troupectl";
  r = run_command({ctl, "--app", c.dir / "app.yaml", "status"});
  CHECK(exit_code(r.status) == 64);
  CHECK(r.output.find("runs on nodes a, b, c: say which with --node NAME") != std::string::npos);
  r = run_command({ctl, "--app", c.dir / "app.yaml", "--node", "b", "status"});
  CHECK(r.output.find(c.dir / "data/b") != std::string::npos); // not running: names b's data dir
}

TEST_CASE("links over TLS: nodes with certificates of the CA carry the records, one without is "
          "refused at the handshake", "[e2e]") {
  cluster c;
  write_input(c.dir / "in.jsonl", 20000, 7);
  // A CA, a certificate per node signed by it, and a rogue one it did not sign.
  auto tls = c.dir / "tls";
  std::string make = "mkdir -p " + tls + " && cd " + tls +
                     " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
                     "-days 2 -subj /CN=troupe-test-ca";
  for (const char* n : {"a", "b", "c"})
    make += std::string(" && openssl req -newkey rsa:2048 -nodes -keyout ") + n + ".key -out " + n +
            ".csr -subj /CN=node-" + n + " && openssl x509 -req -in " + n + ".csr -CA ca.pem "
            "-CAkey ca.key -CAcreateserial -out " + n + ".pem -days 2";
  make += " && openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.pem -days 2 "
          "-subj /CN=rogue";
  REQUIRE(shell(make + " > /dev/null 2>&1") == 0);
  auto text = c.app("2s", ", tls: {ca: tls/ca.pem}");
  for (const char* n : {"a", "b", "c"}) {
    auto at = text.find(std::string("  ") + n + ": {address: ");
    auto end = text.find('}', at);
    text.insert(end, std::string(", certificate: tls/") + n + ".pem, key: tls/" + n + ".key");
  }
  write_file(c.dir / "app.yaml", text);
  INFO(text);
  auto lint = run_troupe({"lint", c.dir / "app.yaml"});
  REQUIRE(exit_code(lint.status) == 0);

  auto log = c.dir / "launch.log";
  {
    troupe_process launch{{std::string(TROUPE_BIN_DIR) + "/troupe", "launch", c.dir / "app.yaml"},
                          log};
    REQUIRE(launch.wait_for_exit(120s));
    INFO(tail_of(log));
    REQUIRE(exited_ok(launch.status()));
  }
  check_output(c.dir / "out/out.jsonl", 20000);

  // Node b with a certificate the CA did not sign: node a's link to it fails at the handshake,
  // with a message that says what to check; b receives nothing.
  auto troupe = std::string(TROUPE_BIN_DIR) + "/troupe";
  REQUIRE(exit_code(run_troupe({"reset", c.dir / "app.yaml", "--yes"}).status) == 0);
  troupe_process b{{troupe, "run", c.dir / "app.yaml", "--node", "b", "--set",
                    "nodes.b.certificate=tls/rogue.pem", "--set", "nodes.b.key=tls/rogue.key"},
                   c.dir / "b.log"};
  troupe_process a{{troupe, "run", c.dir / "app.yaml", "--node", "a"}, c.dir / "a.log"};
  CHECK(wait_until([&] { return lines_with(c.dir / "a.log", "closed during the TLS handshake") > 0; },
                   30s, 10ms));
  CHECK(lines_with(c.dir / "a.log", "links.tls: does it use TLS too") > 0);
  a.signal(SIGTERM);
  b.signal(SIGTERM);
  REQUIRE(a.wait_for_exit(60s));
  REQUIRE(b.wait_for_exit(60s));
  CHECK(lines_with(c.dir / "b.log", "connected to node") == 0);
}

TEST_CASE("apps/cluster: the word count over three nodes, its reduce spread over two, equals "
          "coreutils' count under SIGKILLs", "[e2e][slow]") {
  temp_dir dir;
  auto seed = pick_seed();
  INFO("seed " << seed << ", data in " << dir.path());
  write_text(dir / "in.txt", small_scale() ? 300000 : 2000000, seed);
  ::setenv("INPUT", (dir / "in.txt").c_str(), 1);
  ::setenv("OUT_DIR", (dir / "out").c_str(), 1);
  std::vector<std::string> args{std::string(TROUPE_BIN_DIR) + "/troupe", "launch",
                                std::string(TROUPE_SOURCE_DIR) + "/apps/cluster/app.yaml",
                                "--data-dir", dir / "data"};
  for (const char* n : {"a", "b", "c"}) // ports of its own, whatever else runs beside
    args.insert(args.end(), {"--set", std::string("nodes.") + n + ".address=127.0.0.1:" +
                                        std::to_string(free_port())});
  auto log = dir / "launch.log";
  troupe_process launch{args, log};
  // Kill b and c (the reducers) while they reduce and while they write their totals, and a
  // while it maps: each once its data dir, or the output, has grown past a random point.
  std::mt19937_64 rnd{seed};
  int kills = 0;
  const char* order[] = {"b", "a", "c", "b", "c"};
  for (int round = 0; round < 5; ++round) {
    const char* n = order[round];
    auto grows = round < 3 ? dir / (std::string("data/") + n + "/data.mdb") : dir / "out/counts.jsonl";
    auto target = size_of(grows) + 4096 + rnd() % (64u << 10);
    wait_until([&] { return size_of(grows) >= target || !launch.running(); }, 60s, 1ms);
    std::vector<pid_t> pids;
    if (!launch.running() ||
        !wait_until([&] { return !(pids = node_pids(launch.pid(), n)).empty(); }, 5s))
      continue;
    ::kill(pids.front(), SIGKILL);
    ++kills;
  }
  REQUIRE(launch.wait_for_exit(300s));
  INFO(tail_of(log, 60));
  REQUIRE(exited_ok(launch.status()));
  std::cerr << "cluster wordcount: " << kills << " SIGKILLs\n";
  CHECK(kills >= 3);
  auto want = coreutils_counts(dir);
  CHECK(want.size() > 500);
  CHECK(troupe_counts(dir) == want);
  ::unsetenv("INPUT");
  ::unsetenv("OUT_DIR");
}

TEST_CASE("a node whose data was reset alone is refused by the nodes that hold what it sent "
          "before", "[e2e]") {
  cluster c;
  write_input(c.dir / "in.jsonl", 2000, 3);
  auto launch = [&] {
    return run_command({std::string(TROUPE_BIN_DIR) + "/troupe", "launch", c.dir / "app.yaml"});
  };
  auto first = launch();
  INFO(first.output);
  REQUIRE(exit_code(first.status) == 0);
  check_output(c.dir / "out/out.jsonl", 2000);
  REQUIRE(exit_code(run_troupe({"reset", c.dir / "app.yaml", "--node", "a", "--yes"}).status) == 0);
  // Node a reads its input afresh and sends it again; b finished that edge with the records of
  // a's earlier store: silently dropping the new ones as duplicates would lose them.
  auto again = launch();
  INFO(again.output);
  CHECK(exit_code(again.status) == 1);
  CHECK(again.output.find("finished edge 'raw' with what an earlier incarnation of node a sent "
                          "(was a's data reset?); to start afresh, reset the data of every node") !=
        std::string::npos);
}
