// End to end: tcp_source. tests/e2e/tcp_client.py (Python, no code shared with the runtime)
// sends numbered JSON lines, some invalid, keeps a window of them unanswered, and sends anew
// what had no answer when its connection was lost. The checks: every line answered, in order,
// invalid ones with an error; every valid line in the sink's file, and a line there twice only
// if the client had to send it twice; with the node SIGKILLed and restarted while it sends.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <set>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

struct tcp_app {
  temp_dir dir;
  int port = free_port();
  explicit tcp_app(bool with_ids = false) {
    write_file(dir / "ev.capnp", "@0xc0a7e5d3b1f29486;\n"
                                 "struct Event { id @0 :UInt64; text @1 :Text; }\n");
    write_file(dir / "app.yaml", "app: tcptest\n"
                                 "durability: sync\n"
                                 "schema: {file: ev.capnp, payload: Event}\n"
                                 "stages:\n"
                                 "  - {name: ingest, type: tcp_source, address: \"127.0.0.1:" +
                                   std::to_string(port) +
                                   "\", required: [id], key: id, output: events" +
                                   std::string(with_ids ? ", id_field: id" : "") + "}\n"
                                 "  - {name: out, type: jsonl_sink, input: events, path: out.jsonl}\n");
  }
  std::unique_ptr<troupe_process> node() {
    return std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  }
  std::unique_ptr<troupe_process> client(uint64_t count, int bad_every) {
    return std::make_unique<troupe_process>(
      std::vector<std::string>{"/usr/bin/env", "python3",
                               std::string(TROUPE_SOURCE_DIR) + "/tests/e2e/tcp_client.py",
                               std::to_string(port), std::to_string(count), dir / "report.json",
                               "--bad-every", std::to_string(bad_every)},
      dir / "client.log");
  }
  std::vector<uint64_t> output() {
    std::ifstream in(dir / "out.jsonl");
    std::vector<uint64_t> ids;
    for (std::string line; std::getline(in, line);) {
      auto obj = parse_flat_json(line);
      if (!obj)
        break; // a line being written
      ids.push_back(std::stoull(obj->at("id").text));
    }
    return ids;
  }
  json report() {
    std::ifstream in(dir / "report.json");
    return json::parse(in);
  }
  // What the client sent that the file must hold: every id but the invalid lines'.
  static std::set<uint64_t> valid(uint64_t count, int bad_every) {
    std::set<uint64_t> ids;
    for (uint64_t i = 1; i <= count; ++i)
      if (i % bad_every != 0)
        ids.insert(i);
    return ids;
  }
};

} // namespace

TEST_CASE("tcp_source answers every line in order, once committed, and refuses invalid ones",
          "[e2e][tcp]") {
  tcp_app app;
  auto node = app.node();
  uint64_t count = small_scale() ? 2000 : 10000;
  auto client = app.client(count, 97);
  REQUIRE(client->wait_for_exit(120s));
  INFO(tail_of(app.dir / "client.log") << tail_of(app.dir / "node.log"));
  REQUIRE(exited_ok(client->status()));
  auto report = app.report();
  std::vector<uint64_t> errors = report["errors"];
  std::vector<uint64_t> want_errors;
  for (uint64_t i = 97; i <= count; i += 97)
    want_errors.push_back(i);
  CHECK(errors == want_errors);
  CHECK(report["resent"].empty());
  // Each record's answer is the sequence number it was committed under, and they grow.
  int64_t last = -1;
  bool increasing = true;
  for (uint64_t i = 1; i <= count; ++i)
    if (i % 97 != 0) {
      int64_t seq = report["seqs"][std::to_string(i)];
      increasing = increasing && seq > last;
      last = seq;
    }
  CHECK(increasing);
  auto valid = tcp_app::valid(count, 97);
  REQUIRE(wait_until([&] { return app.output().size() >= valid.size(); }, 30s));
  auto out = app.output();
  CHECK(out == std::vector<uint64_t>(valid.begin(), valid.end())); // once each, in order
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  CHECK(exited_ok(node->status()));
}

namespace {

// The client sends `count` lines (every 1000th invalid) while the node is SIGKILLed twice;
// returns the ids in the sink's file and the client's report.
std::pair<std::vector<uint64_t>, json> send_through_kills(tcp_app& app, uint64_t count) {
  auto node = app.node();
  auto client = app.client(count, 1000);
  int kills = 0;
  for (int round = 1; round <= 2; ++round) {
    auto at = count * round / 3;
    wait_until([&] { return app.output().size() >= at || !client->running(); }, 120s);
    if (!client->running())
      break;
    kills += killed_by(node->kill_and_reap(), SIGKILL);
    node = app.node();
  }
  REQUIRE(client->wait_for_exit(180s));
  INFO(tail_of(app.dir / "client.log") << tail_of(app.dir / "node.log"));
  REQUIRE(exited_ok(client->status()));
  CHECK(kills >= 1);
  auto valid = tcp_app::valid(count, 1000);
  REQUIRE(wait_until([&] { return app.output().size() >= valid.size(); }, 30s));
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  return {app.output(), app.report()};
}

} // namespace

TEST_CASE("tcp_source with id_field commits each record once though its client sends lines "
          "again after SIGKILLs", "[e2e][tcp][crash]") {
  tcp_app app(true);
  uint64_t count = small_scale() ? 6000 : 30000;
  auto [out, report] = send_through_kills(app, count);
  auto valid = tcp_app::valid(count, 1000);
  CHECK(out == std::vector<uint64_t>(valid.begin(), valid.end())); // once each, in order
  CHECK_FALSE(report["resent"].empty()); // the kills made it send some again
  CHECK(report["errors"].size() == count / 1000);
}

TEST_CASE("tcp_source loses no line answered when its node is SIGKILLed while clients send",
          "[e2e][tcp][crash]") {
  tcp_app app;
  uint64_t count = small_scale() ? 6000 : 30000;
  auto [out, report] = send_through_kills(app, count);
  auto valid = tcp_app::valid(count, 1000);
  std::set<uint64_t> resent(report["resent"].begin(), report["resent"].end());
  std::set<uint64_t> seen;
  std::vector<uint64_t> twice, unasked;
  for (auto id : out) {
    if (!seen.insert(id).second && !resent.count(id))
      twice.push_back(id);
    if (!valid.count(id))
      unasked.push_back(id);
  }
  CHECK(seen == valid);   // every line the client sent, once it was answered
  CHECK(twice.empty());   // a line twice only when the client sent it twice
  CHECK(unasked.empty()); // and no invalid line
  CHECK(report["errors"].size() == count / 1000);
}

TEST_CASE("tcp_source skips a byte-order mark and tells a client past max_connections why it "
          "closes", "[e2e][tcp]") {
  tcp_app app;
  auto yaml = read_file(app.dir / "app.yaml");
  yaml.replace(yaml.find("required:"), 0, "max_connections: 1, ");
  write_file(app.dir / "app.yaml", yaml);
  auto node = app.node();
  auto script = "import socket, time\n"
                "for i in range(300):\n"
                "    try:\n"
                "        a = socket.create_connection(('127.0.0.1', " + std::to_string(app.port) +
                "))\n"
                "        break\n"
                "    except OSError:\n"
                "        time.sleep(0.05)\n"
                "a.sendall(b'\\xef\\xbb\\xbf{\"id\": 5, \"text\": \"bom\"}\\n')\n"
                "print(a.recv(1000).decode().strip())\n"
                "b = socket.create_connection(('127.0.0.1', " + std::to_string(app.port) + "))\n"
                "b.settimeout(10)\n"
                "print(b.recv(1000).decode().strip())\n";
  auto r = run_command({"/usr/bin/env", "python3", "-c", script});
  INFO(r.output << tail_of(app.dir / "node.log"));
  CHECK(r.output.find("{\"line\":1,\"seq\":0}") != std::string::npos);
  CHECK(r.output.find("this source has max_connections (1) clients connected") !=
        std::string::npos);
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
}
