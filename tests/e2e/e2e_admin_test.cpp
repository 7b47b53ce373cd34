// End to end: troupectl against a real `troupe run` process through its admin endpoint, on a
// schema of the test's own: status and ps as JSON (read by nlohmann's parser, not the runtime's
// code), counters that move, pause and resume seen as lag that grows and drains, a kill seen as
// a restart, mutations refused without the token, /metrics scraped twice, the graph, and the
// offline mode on the data of a SIGKILLed node.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <sstream>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const char* tick_schema = "@0xa1b2c3d4e5f60718;\nstruct Tick { n @0 :UInt64; note @1 :Text; }\n";

std::string app_yaml(const std::string& extra = "", const std::string& data_dir = "") {
  return "app: ticks\n"
         "admin: {token: s3cret" + extra + "}\n" +
         (data_dir.empty() ? "" : "data_dir: " + data_dir + "\n") +
         "schema: {file: tick.capnp, payload: Tick}\n"
         "stages:\n"
         "  - {name: gen, type: generator, count: 0, rate: 3000, payload_size: 8, output: raw}\n"
         "  - {name: copy, type: copier, workers: 2, input: raw, outputs: {a: copied}}\n"
         "  - {name: sink, type: jsonl_sink, input: copied, path: out.jsonl}\n";
}

// troupectl against the running node of `app` (found through its data dir's admin.json).
command_result troupectl(const std::string& app, std::vector<std::string> args,
                         const std::string& token = "") {
  std::vector<std::string> argv{std::string(TROUPE_BIN_DIR) + "/troupectl", "--app", app};
  if (!token.empty())
    argv.insert(argv.end(), {"--token", token});
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

// The value of one sample line of the Prometheus text, e.g. name{labels} 12.
std::optional<double> sample(const std::string& text, const std::string& series) {
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

} // namespace

TEST_CASE("troupectl sees inside a running node and operates it", "[e2e][admin]") {
  temp_dir dir;
  write_file(dir / "tick.capnp", tick_schema);
  write_file(dir / "app.yaml", app_yaml("", dir / "data"));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(wait_until([&] { return size_of(dir / "data/admin.json") > 0 || !node.running(); }, 30s));
  REQUIRE(node.running());
  // troupectl --app finds the node by the address it wrote to its data dir; the test uses it too.
  auto by_app = run_command({std::string(TROUPE_BIN_DIR) + "/troupectl", "--app", dir / "app.yaml",
                             "status"});
  INFO(by_app.output);
  CHECK(exit_code(by_app.status) == 0);
  CHECK_THAT(by_app.output, Catch::Contains("app ticks") && Catch::Contains("durability process"));
  auto addr = json::parse(read_file(dir / "data/admin.json")).at("address").get<std::string>();
  CHECK_THAT(addr, Catch::StartsWith("127.0.0.1:"));
  auto direct = [&](std::vector<std::string> a, const std::string& token = "") {
    std::vector<std::string> argv{std::string(TROUPE_BIN_DIR) + "/troupectl", "--address", addr};
    if (!token.empty())
      argv.insert(argv.end(), {"--token", token});
    argv.insert(argv.end(), a.begin(), a.end());
    return run_command(argv);
  };
  auto get = [&](const std::string& what) {
    auto r = direct({"--json", what});
    INFO(r.output);
    REQUIRE(exit_code(r.status) == 0);
    return json::parse(r.output);
  };
  auto stage = [&](const std::string& name) {
    auto ps = get("ps"); // kept: a loop over a part of a temporary would dangle
    for (const auto& s : ps.at("stages"))
      if (s.at("name") == name)
        return s;
    FAIL("ps shows no stage " << name);
    return json{};
  };

  auto status = get("status");
  CHECK(status.at("app") == "ticks");
  CHECK(status.at("durability") == "process");
  CHECK(status.at("data_dir") == dir / "data");
  CHECK(status.at("map_used_bytes").get<uint64_t>() <= status.at("map_size_bytes").get<uint64_t>());

  // The tree: the node, a supervisor per stage, its workers; counters move as records flow.
  auto ps = get("ps");
  REQUIRE(ps.at("tree").at("children").size() == 3);
  CHECK(ps.at("tree").at("children")[1].at("name") == "stage copy");
  CHECK(ps.at("tree").at("children")[1].at("children").size() == 2);
  auto copied = [&] { return stage("copy").at("records_out").get<uint64_t>(); };
  auto first = copied();
  REQUIRE(wait_until([&] { return copied() > first + 1000; }, 30s));

  // A change without the token is refused, and changes nothing.
  auto refused = direct({"pause", "copy"});
  CHECK(exit_code(refused.status) == 4);
  CHECK_THAT(refused.output, Catch::Contains("needs the admin token"));
  CHECK(stage("copy").at("paused") == false);
  CHECK(exit_code(direct({"pause", "nosuch"}, "s3cret").status) == 2);

  // Paused, copy takes no step: its lag grows while the generator goes on; resumed, it drains.
  auto paused = direct({"pause", "copy"}, "s3cret");
  REQUIRE(exit_code(paused.status) == 0);
  CHECK(stage("copy").at("state") == "paused");
  REQUIRE(wait_until([&] { return stage("copy").at("lag").get<uint64_t>() > 3000; }, 30s));
  auto held = stage("copy");
  CHECK(held.at("oldest_unconsumed_ms").is_number());
  REQUIRE(exit_code(direct({"resume", "copy"}, "s3cret").status) == 0);
  REQUIRE(wait_until([&] { return stage("copy").at("lag").get<uint64_t>() < 1000; }, 30s));

  // A killed worker is restarted by its supervisor, and ps says so.
  auto killed = direct({"kill", "copy/1"}, "s3cret");
  INFO(killed.output);
  REQUIRE(exit_code(killed.status) == 0);
  auto worker = [&](const std::string& name) {
    auto ps = get("ps");
    for (const auto& sup : ps.at("tree").at("children"))
      for (const auto& w : sup.at("children"))
        if (w.at("name") == name)
          return w;
    FAIL("no worker " << name);
    return json{};
  };
  REQUIRE(wait_until([&] {
    auto w = worker("copy/1");
    return w.at("restarts") == 1 && w.at("state") == "running";
  }, 30s));
  CHECK_THAT(worker("copy/1").at("last_error").get<std::string>(), Catch::Contains("killed by troupectl"));
  CHECK(exit_code(direct({"kill", "copy/7"}, "s3cret").status) == 2);

  // /metrics: the counters move between two scrapes.
  auto scrape = [&] {
    auto r = direct({"metrics"});
    REQUIRE(exit_code(r.status) == 0);
    return r.output;
  };
  auto m1 = scrape();
  auto series = "troupe_records_in_total{stage=\"sink\",worker=\"0\"}";
  REQUIRE(sample(m1, series));
  CHECK_THAT(m1, Catch::Contains("# TYPE troupe_step_seconds histogram") &&
                   Catch::Contains("troupe_lag_records{stage=\"copy\",edge=\"raw\"}"));
  REQUIRE(wait_until([&] { return *sample(scrape(), series) > *sample(m1, series); }, 30s));
  // Prometheus's own checker accepts the text (tools/install-deps.sh installs it).
  auto promtool = run_command({"/usr/bin/promtool", "check", "metrics"}, m1);
  INFO(promtool.output);
  CHECK(exit_code(promtool.status) == 0);

  auto graph = direct({"graph"});
  CHECK_THAT(graph.output, Catch::Contains("\"gen\" -> \"copy\"") &&
                             Catch::Contains("\"copy\" -> \"sink\""));

  // Killed for good, the node leaves its data readable offline; online, no one answers.
  REQUIRE(killed_by(node.kill_and_reap(), SIGKILL));
  auto offline = run_command({std::string(TROUPE_BIN_DIR) + "/troupectl", "--data", dir / "data",
                              "--json", "status"});
  INFO(offline.output);
  REQUIRE(exit_code(offline.status) == 0);
  auto edges = json::parse(offline.output).at("edges");
  CHECK(edges.at("raw").at("appended").get<uint64_t>() > 3000);
  CHECK(exit_code(direct({"ps"}).status) == 3);
  // Its records too: peek reads the stopped node's log, payloads through the app's struct.
  auto peeked = run_command({std::string(TROUPE_BIN_DIR) + "/troupectl", "--app", dir / "app.yaml",
                             "--data", dir / "data", "--json", "peek", "raw", "--partition", "0",
                             "-n", "2"});
  INFO(peeked.output);
  REQUIRE(exit_code(peeked.status) == 0);
  bool complete = false;
  auto records = split_lines(peeked.output, complete);
  REQUIRE(records.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    auto r = json::parse(records[i]);
    CHECK(r.at("partition") == 0);
    CHECK(r.at("payload").at("n").is_number());
  }
}

TEST_CASE("a wrong admin: names its file, line and field", "[e2e][admin]") {
  temp_dir dir;
  write_file(dir / "tick.capnp", tick_schema);
  auto lint = [&](const std::string& extra) {
    write_file(dir / "app.yaml", app_yaml(extra));
    return run_troupe({"lint", dir / "app.yaml"});
  };
  auto bad_address = lint(", address: localhost");
  CHECK(exit_code(bad_address.status) != 0);
  CHECK_THAT(bad_address.output, Catch::Contains("app.yaml:2") && Catch::Contains("admin.address") &&
                                   Catch::Contains("HOST:PORT"));
  auto typo = lint(", adress: 127.0.0.1:0");
  CHECK(exit_code(typo.status) != 0);
  CHECK_THAT(typo.output, Catch::Contains("app.yaml:2") && Catch::Contains("adress"));
  auto read = lint(", read: everyone");
  CHECK(exit_code(read.status) != 0);
  CHECK_THAT(read.output, Catch::Contains("admin.read") && Catch::Contains("open"));
  // A port another process holds: the node says so and exits 1.
  write_file(dir / "app.yaml", app_yaml());
  troupe_process first{dir / "app.yaml", dir / "data1", dir / "node1.log"};
  REQUIRE(wait_until([&] { return size_of(dir / "data1/admin.json") > 0 || !first.running(); }, 30s));
  auto taken = json::parse(read_file(dir / "data1/admin.json")).at("address").get<std::string>();
  write_file(dir / "app.yaml", app_yaml(", address: '" + taken + "'"));
  auto second = run_troupe({"run", dir / "app.yaml", "--data-dir", dir / "data2"});
  CHECK(exit_code(second.status) == 1);
  CHECK_THAT(second.output, Catch::Contains("cannot listen on " + taken) &&
                              Catch::Contains("admin.address"));
}

TEST_CASE("troupectl peeks at an edge, purges a dead letter and puts the others back",
          "[e2e][admin]") {
  temp_dir dir;
  write_file(dir / "job.capnp", "@0xb1c2d3e4f5a60718;\nstruct Job { id @0 :UInt64; name @1 :Text; }\n");
  // Odd jobs fail until the file `ok` exists; a job that succeeds is echoed as the output.
  write_file(dir / "worker.sh", "read -r line\n"
                                "case \"$1\" in *[13579]) [ -f \"$2/ok\" ] || { echo \"job $1 is not ready\" >&2; exit 3; };; esac\n"
                                "printf '%s\\n' \"$line\"\n");
  std::string jobs;
  for (int i = 0; i < 20; ++i)
    jobs += "{\"id\": " + std::to_string(i) + ", \"name\": \"Zoë " + std::to_string(i) + "\"}\n";
  write_file(dir / "jobs.jsonl", jobs);
  write_file(dir / "app.yaml",
             "app: jobs\n"
             "data_dir: " + dir / "data" + "\n"
             "admin: {token: s3cret}\n"
             "schema: {file: job.capnp, payload: Job}\n"
             "stages:\n"
             "  - {name: read, type: jsonl_source, path: jobs.jsonl, follow: true, output: jobs}\n"
             "  - name: work\n"
             "    type: work_queue\n"
             "    input: jobs\n"
             "    retry: {max_attempts: 1}\n"
             "    command: [sh, " + dir / "worker.sh" + ", '{id}', " + dir.path().string() + "]\n"
             "    outputs: {out: done}\n"
             "  - {name: write, type: jsonl_sink, input: done, path: done.jsonl}\n");
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  auto ctl = [&](std::vector<std::string> a, const std::string& token = "") {
    return troupectl(dir / "app.yaml", std::move(a), token);
  };
  auto lines = [&] {
    bool complete = false;
    return split_lines(read_file(dir / "done.jsonl"), complete).size();
  };
  auto dead = [&] {
    auto r = ctl({"--json", "ps"});
    if (exit_code(r.status) != 0)
      return uint64_t{999};
    auto ps = json::parse(r.output); // kept: a loop over a part of a temporary would dangle
    for (const auto& s : ps.at("stages"))
      if (s.at("name") == "work")
        return s.at("dead_letters").get<uint64_t>();
    return uint64_t{999};
  };
  bool settled = wait_until([&] { return (lines() == 10 && dead() == 10) || !node.running(); }, 60s);
  INFO(tail_of(dir / "node.log"));
  INFO("lines " << lines() << ", dead letters " << dead());
  REQUIRE(settled);
  REQUIRE(node.running());

  // peek: the first records of the input, decoded through the app's struct.
  auto peeked = ctl({"--json", "peek", "jobs", "-n", "3"});
  REQUIRE(exit_code(peeked.status) == 0);
  bool complete = false;
  auto records = split_lines(peeked.output, complete);
  REQUIRE(records.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    auto r = json::parse(records[i]);
    CHECK(r.at("seq") == i);
    CHECK(r.at("payload").at("id") == i);
    CHECK(r.at("payload").at("name") == "Zoë " + std::to_string(i));
  }
  CHECK(exit_code(ctl({"peek", "nosuch"}).status) == 2);

  // The dead letters' numbers and the jobs they hold (their position in `jobs` is the job id).
  auto listed = ctl({"--json", "dlq", "list", "work"});
  REQUIRE(exit_code(listed.status) == 0);
  std::map<uint64_t, uint64_t> job_of;
  for (auto line : split_lines(listed.output, complete)) {
    auto d = json::parse(line);
    CHECK_THAT(d.at("error").get<std::string>(), Catch::Contains("is not ready"));
    job_of[d.at("id").get<uint64_t>()] = d.at("position").get<uint64_t>();
  }
  REQUIRE(job_of.size() == 10);

  // Without the token nothing changes; a number that is not there changes nothing either.
  CHECK(exit_code(ctl({"dlq", "purge", "work", "1"}).status) == 4);
  CHECK(exit_code(ctl({"dlq", "purge", "work", "1", "999"}, "s3cret").status) == 2);
  CHECK(dead() == 10);
  auto purged = ctl({"dlq", "purge", "work", "1"}, "s3cret");
  INFO(purged.output);
  REQUIRE(exit_code(purged.status) == 0);
  CHECK(dead() == 9);
  CHECK(exit_code(ctl({"dlq", "purge", "work", "1"}, "s3cret").status) == 2); // gone already

  // The jobs can run now: retried, the other nine come out, once each.
  write_file(dir / "ok", "");
  auto retried = ctl({"dlq", "retry", "work", "--all"}, "s3cret");
  INFO(retried.output);
  REQUIRE(exit_code(retried.status) == 0);
  CHECK_THAT(retried.output, Catch::Contains("put back 9 dead letters"));
  REQUIRE(wait_until([&] { return lines() == 19 && dead() == 0; }, 60s));
  std::set<uint64_t> done;
  auto output = read_file(dir / "done.jsonl");
  for (auto line : split_lines(output, complete))
    CHECK(done.insert(json::parse(line).at("id").get<uint64_t>()).second);
  std::set<uint64_t> expected;
  for (uint64_t i = 0; i < 20; ++i)
    if (i != job_of.at(1))
      expected.insert(i);
  CHECK(done == expected);
}

TEST_CASE("troupectl replay makes a stage and what is downstream see its records again",
          "[e2e][admin]") {
  temp_dir dir;
  write_file(dir / "rec.capnp", "@0xc1d2e3f4a5b60718;\nstruct Rec { id @0 :UInt64; name @1 :Text; }\n");
  const int count = 1000;
  std::string input;
  for (int i = 0; i < count; ++i)
    input += "{\"id\": " + std::to_string(i) + ", \"name\": \"ünï " + std::to_string(i) + "\"}\n";
  write_file(dir / "in.jsonl", input);
  write_file(dir / "app.yaml",
             "app: replay\n"
             "data_dir: " + dir / "data" + "\n"
             "admin: {token: s3cret}\n"
             "schema: {file: rec.capnp, payload: Rec}\n"
             "edges: {recs: {partitions: 2}}\n"
             "stages:\n"
             "  - {name: read, type: jsonl_source, path: in.jsonl, follow: true, key: id, output: recs}\n"
             "  - {name: copy, type: copier, workers: 2, input: recs, outputs: {a: copied}}\n"
             "  - {name: sink, type: jsonl_sink, input: copied, path: out.jsonl}\n");
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  auto ctl = [&](std::vector<std::string> a, const std::string& token = "") {
    return troupectl(dir / "app.yaml", std::move(a), token);
  };
  auto lines = [&] {
    bool complete = false;
    auto text = read_file(dir / "out.jsonl");
    return split_lines(text, complete).size();
  };
  REQUIRE(wait_until([&] { return lines() == size_t(count) || !node.running(); }, 60s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(node.running());
  CHECK(exit_code(ctl({"replay", "copy", "--from", "0"}).status) == 4); // no token
  CHECK(exit_code(ctl({"replay", "nosuch", "--from", "0"}, "s3cret").status) == 2);
  auto source = ctl({"replay", "read", "--from", "0"}, "s3cret");
  CHECK(exit_code(source.status) == 2);
  CHECK_THAT(source.output, Catch::Contains("is a source"));

  auto replayed = ctl({"--json", "replay", "copy", "--from", "0"}, "s3cret");
  INFO(replayed.output);
  REQUIRE(exit_code(replayed.status) == 0);
  auto r = json::parse(replayed.output);
  CHECK(r.at("records") == count);
  CHECK(r.at("rewound").size() == 2);
  // Every record comes out once more: each id twice in all, in order within its key.
  REQUIRE(wait_until([&] { return lines() == size_t(2 * count); }, 60s));
  std::map<uint64_t, int> seen;
  bool complete = false;
  auto text = read_file(dir / "out.jsonl");
  for (auto line : split_lines(text, complete)) {
    auto rec = json::parse(line);
    CHECK(rec.at("name") == "ünï " + std::to_string(rec.at("id").get<uint64_t>()));
    ++seen[rec.at("id").get<uint64_t>()];
  }
  REQUIRE(seen.size() == size_t(count));
  for (const auto& [id, n] : seen)
    CHECK(n == 2);
  // The stage runs on as before: it is not left paused.
  auto ps = json::parse(ctl({"--json", "ps"}).output);
  for (const auto& s : ps.at("stages"))
    if (s.at("name") == "copy")
      CHECK(s.at("paused") == false);
}

TEST_CASE("the log as JSON lines, its level from the app or the command line", "[e2e][admin][log]") {
  temp_dir dir;
  write_file(dir / "tick.capnp", tick_schema);
  write_file(dir / "app.yaml",
             "app: logs\n"
             "log: {format: json, level: info}\n"
             "admin: {enabled: false}\n"
             "schema: {file: tick.capnp, payload: Tick}\n"
             "stages:\n"
             "  - {name: gen, type: generator, count: 100, payload_size: 8, output: raw}\n"
             "  - {name: odd, type: filter, workers: 2, where: 'n > 89', unmatched: dead_letter, "
             "input: raw, output: kept}\n"
             "  - {name: sink, type: jsonl_sink, input: kept, path: out.jsonl}\n");
  auto parse_all = [](const std::string& text) {
    std::vector<json> lines;
    bool complete = false;
    for (auto line : split_lines(text, complete)) {
      INFO(line);
      auto j = json::parse(line, nullptr, false);
      REQUIRE_FALSE(j.is_discarded());
      lines.push_back(j);
    }
    return lines;
  };
  auto first = run_troupe({"run", dir / "app.yaml", "--data-dir", dir / "data1"});
  REQUIRE(exit_code(first.status) == 0);
  auto lines = parse_all(first.output);
  bool info = false, stage_warn = false, worker_line = false;
  for (const auto& l : lines) {
    info = info || l.at("level") == "info";
    if (l.at("level") == "warn" && l.value("stage", "") == "odd") {
      stage_warn = true;
      CHECK_THAT(l.at("msg").get<std::string>(), Catch::Contains("goes to the dead-letter log"));
    }
    // A worker's own lines ("stage odd/1: finished ...") name it.
    worker_line = worker_line || (l.value("stage", "") == "odd" && l.contains("worker") &&
                                  l.at("worker").is_number());
  }
  CHECK(info);
  CHECK(stage_warn);
  CHECK(worker_line);
  // --log-level wins over the app's: only warnings and errors.
  auto quiet = run_troupe({"run", dir / "app.yaml", "--data-dir", dir / "data2", "--log-level", "warn"});
  REQUIRE(exit_code(quiet.status) == 0);
  auto warned = parse_all(quiet.output);
  CHECK_FALSE(warned.empty());
  for (const auto& l : warned)
    CHECK(l.at("level") != "info");
}
