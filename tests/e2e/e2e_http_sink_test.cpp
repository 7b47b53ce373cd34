// End to end: http_sink in real `troupe run` processes, posting to tests/e2e/http_receiver.py (a
// Python server that shares no code with Troupe and logs every request it answered 200). The
// input is JSON lines with Unicode; the oracle is the input itself: every record arrives, with
// its text exactly, under a key of its own; a record the server refuses goes to the dead-letter
// log with the status; a server that is busy at first loses nothing; after a SIGKILL a record may
// arrive twice, but only under the same key; a refused token ends the run with a message.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const char* schema = "@0xc3a1f0e2d4b5a697;\nstruct Note { index @0 :UInt32; text @1 :Text; }\n";

const char* words[] = {"José", "Zoë 🎉", "日本語", "tab\there", "quote\"back\\slash", "plain"};

// `n` notes; those whose index is in `poison` say so in their text.
std::string input_of(uint32_t n, const std::set<uint32_t>& poison = {}) {
  std::string in;
  for (uint32_t i = 0; i < n; ++i) {
    std::string text = std::string(words[i % 6]) + " " + std::to_string(i);
    if (poison.count(i))
      text += " poison";
    in += json{{"index", i}, {"text", text}}.dump(-1, ' ', i % 2 == 0) + "\n"; // \u escapes or raw
  }
  return in;
}

std::string expected_text(uint32_t i) {
  return std::string(words[i % 6]) + " " + std::to_string(i);
}

// The receiver, started in `dir`, and its port once it listens.
struct receiver {
  troupe_process process;
  int port = 0;
  receiver(const temp_dir& dir, std::vector<std::string> flags)
      : process(args(dir, std::move(flags)), dir / "receiver.log") {
    REQUIRE(wait_until([&] { return size_of(dir / "port") > 0 || !process.running(); }, 30s));
    REQUIRE(process.running());
    port = std::stoi(read_file(dir / "port"));
  }
  static std::vector<std::string> args(const temp_dir& dir, std::vector<std::string> flags) {
    std::vector<std::string> a{"/usr/bin/python3",
                               std::string(TROUPE_SOURCE_DIR) + "/tests/e2e/http_receiver.py",
                               dir.path().string()};
    a.insert(a.end(), flags.begin(), flags.end());
    return a;
  }
};

std::string app_yaml(int port, const std::string& sink_params) {
  return "app: posted\n"
         "schema: {file: note.capnp, payload: Note}\n"
         "stages:\n"
         "  - {name: read, type: jsonl_source, path: in.jsonl, output: notes}\n"
         "  - name: post\n"
         "    type: http_sink\n"
         "    input: notes\n"
         "    url: http://127.0.0.1:" +
         std::to_string(port) +
         "/ingest\n"
         "    retry: {max_attempts: 2, backoff: 5ms}\n" +
         sink_params;
}

// One request the receiver answered 200.
struct request {
  std::string key, type;
  std::vector<json> records;
};

std::vector<request> received(const temp_dir& dir) {
  std::vector<request> out;
  auto text = read_file(dir / "received.jsonl");
  text.resize(text.rfind('\n') + 1); // a line being written is not a request yet
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line);
    out.push_back({j.at("key"), j.at("type"), j.at("records").get<std::vector<json>>()});
  }
  return out;
}

} // namespace

TEST_CASE("http_sink posts every record under a key of its own, waits out a busy server and "
          "dead-letters what the server refuses",
          "[e2e][http]") {
  temp_dir dir;
  const uint32_t n = 300;
  const std::set<uint32_t> poison{7, 150, 299};
  write_file(dir / "note.capnp", schema);
  write_file(dir / "in.jsonl", input_of(n, poison));
  receiver server{dir, {"--unavailable", "5"}};
  write_file(dir / "app.yaml", app_yaml(server.port, ""));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(120s));
  auto log = read_file(dir / "node.log");
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  std::map<uint32_t, std::string> key_of;
  std::set<std::string> keys;
  for (const auto& r : received(dir)) {
    CHECK(r.type == "application/json");
    REQUIRE(r.records.size() == 1);
    auto index = r.records[0].at("index").get<uint32_t>();
    CHECK(r.records[0].at("text").get<std::string>() == expected_text(index));
    CHECK(key_of.emplace(index, r.key).second); // once
    CHECK(keys.insert(r.key).second);           // a key of its own
  }
  CHECK(key_of.size() == n - poison.size());
  for (auto p : poison)
    CHECK(key_of.count(p) == 0);
  // A key is the record's id: the source's name and its sequence number there.
  CHECK(key_of.at(0).rfind("read:", 0) == 0);
  size_t refused = 0;
  std::istringstream lines{log};
  for (std::string line; std::getline(lines, line);)
    refused += line.find("goes to the dead-letter log") != std::string::npos &&
               line.find("answered 500: poison refused") != std::string::npos;
  CHECK(refused == poison.size());
  CHECK(log.find("answered 503") != std::string::npos); // the busy start was seen and waited out
}

TEST_CASE("http_sink in batches posts JSON lines, each record in its envelope, once",
          "[e2e][http]") {
  temp_dir dir;
  const uint32_t n = 250;
  write_file(dir / "note.capnp", schema);
  write_file(dir / "in.jsonl", input_of(n));
  receiver server{dir, {}};
  write_file(dir / "app.yaml", app_yaml(server.port, "    per_request: 16\n    envelope: true\n"));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(120s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  std::set<uint32_t> seen;
  std::set<uint64_t> seqs;
  for (const auto& r : received(dir)) {
    CHECK(r.type == "application/x-ndjson");
    CHECK(r.records.size() >= 1);
    CHECK(r.records.size() <= 16);
    auto first = r.records.front();
    CHECK(r.key == "read:" + std::to_string(first.at("seq").get<uint64_t>()) + "+" +
                       std::to_string(r.records.size()));
    for (const auto& e : r.records) {
      CHECK(e.at("origin") == "read");
      CHECK(seqs.insert(e.at("seq").get<uint64_t>()).second);
      auto index = e.at("payload").at("index").get<uint32_t>();
      CHECK(e.at("payload").at("text").get<std::string>() == expected_text(index));
      CHECK(seen.insert(index).second);
    }
  }
  CHECK(seen.size() == n);
}

TEST_CASE("http_sink under a SIGKILL: every record arrives, and a repeat only under its own key",
          "[e2e][http][crash]") {
  temp_dir dir;
  const uint32_t n = 3000;
  write_file(dir / "note.capnp", schema);
  write_file(dir / "in.jsonl", input_of(n));
  receiver server{dir, {}};
  write_file(dir / "app.yaml", app_yaml(server.port, ""));
  {
    troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
    // Lines counted, not parsed: a slow poll (a sanitizer build) would see the run end first.
    auto lines = [&] {
      auto text = read_file(dir / "received.jsonl");
      return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    };
    REQUIRE(wait_until([&] { return lines() >= n / 10 || !node.running(); }, 120s));
    REQUIRE(killed_by(node.kill_and_reap(), SIGKILL));
  }
  auto before = received(dir).size();
  CHECK(before < n);
  append_line(dir / "node.log", "=== after the SIGKILL");
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(120s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  std::map<uint32_t, std::string> key_of;
  size_t repeats = 0;
  for (const auto& r : received(dir)) {
    REQUIRE(r.records.size() == 1);
    auto index = r.records[0].at("index").get<uint32_t>();
    CHECK(r.records[0].at("text").get<std::string>() == expected_text(index));
    auto [it, fresh] = key_of.emplace(index, r.key);
    if (!fresh) {
      ++repeats;
      CHECK(it->second == r.key); // a repeat carries the key the record had
    }
  }
  // Repeats are the requests of the step the kill cut short (it commits once all are answered).
  std::cerr << "http_sink SIGKILL: " << before << " requests before the kill, " << repeats
            << " repeated after it\n";
  CHECK(key_of.size() == n);
  CHECK(repeats <= 64); // a step commits after 64 requests at the most
}

TEST_CASE("http_sink whose token the server refuses ends the run with a message", "[e2e][http]") {
  temp_dir dir;
  write_file(dir / "note.capnp", schema);
  write_file(dir / "in.jsonl", input_of(10));
  receiver server{dir, {"--token", "right"}};
  write_file(dir / "app.yaml", app_yaml(server.port, "    token: wrong\n"));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(120s));
  auto log = read_file(dir / "node.log");
  INFO(log);
  CHECK(exit_code(node.status()) == 1);
  CHECK(log.find("answered 401") != std::string::npos);
  CHECK(log.find("refuses the sink's token") != std::string::npos);
  CHECK(size_of(dir / "received.jsonl") == 0);
}

TEST_CASE("troupe lint names http_sink's field and line for a bad url or per_request",
          "[e2e][http]") {
  temp_dir dir;
  write_file(dir / "note.capnp", schema);
  write_file(dir / "in.jsonl", input_of(1));
  auto lint = [&](const std::string& url, const std::string& more) {
    auto yaml = app_yaml(1, more);
    yaml.replace(yaml.find("http://127.0.0.1:1/ingest"), 25, url);
    write_file(dir / "app.yaml", yaml);
    return run_troupe({"lint", dir / "app.yaml"});
  };
  auto https = lint("https://example.com/in", "");
  CHECK(exit_code(https.status) != 0);
  CHECK_THAT(https.output, Catch::Contains("app.yaml:8") && Catch::Contains("url") &&
                               Catch::Contains("https is not supported"));
  auto ftp = lint("ftp://example.com/in", "");
  CHECK(exit_code(ftp.status) != 0);
  CHECK_THAT(ftp.output, Catch::Contains("must be http://HOST[:PORT][/PATH]"));
  auto port = lint("http://example.com:99999/in", "");
  CHECK_THAT(port.output, Catch::Contains("1 to 65535"));
  auto batch = lint("http://127.0.0.1:1/ingest", "    per_request: 0\n");
  CHECK(exit_code(batch.status) != 0);
  CHECK_THAT(batch.output, Catch::Contains("per_request") && Catch::Contains("1 to 10000"));
  CHECK(exit_code(lint("http://127.0.0.1:1/ingest", "    per_request: 8\n").status) == 0);
}
