// End to end: http_source in a real `troupe run` process, driven over HTTP by clients that share
// no code with the runtime (httplib's client and nlohmann's parser here, a Python producer for
// the crash test). What an answer promises is checked against the sink's output file:
//   - 200 means every record of the body is in the output, once; 503 means none of it is;
//   - a malformed line is a 400 naming the line, and nothing of its body is committed;
//   - an Idempotency-Key commits a body once, however often it is sent; id_field dedupes records;
//   - a token, wrong methods and paths, an oversized body, backpressure (503 + Retry-After);
//   - SIGKILLs while 8 Python threads post with keys and retry: every body once, nothing lost.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <future>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const char* note_schema =
  "@0xb1c2d3e4f5a60718;\nstruct Note { id @0 :UInt64; text @1 :Text; }\n";

std::string app_yaml(int port, const std::string& source_extra, const std::string& more = "") {
  return "app: intake\n"
         "durability: sync\n"
         "admin: {token: adm}\n"
         "schema: {file: note.capnp, payload: Note}\n" + more +
         "stages:\n"
         "  - {name: ingest, type: http_source, address: 127.0.0.1:" + std::to_string(port) +
         ", output: notes" + source_extra + "}\n"
         "  - {name: sink, type: jsonl_sink, input: notes, path: out.jsonl}\n";
}

// The output's records by id, with how often each is there.
// `while_written`: the sink may be writing its last line, which is then not a record yet.
std::map<uint64_t, std::pair<std::string, int>> output_of(const std::string& path,
                                                         bool while_written = false) {
  std::map<uint64_t, std::pair<std::string, int>> out;
  auto text = read_file(path);
  if (while_written)
    text.resize(text.rfind('\n') + 1); // npos + 1 == 0: no whole line yet
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line);
    auto& e = out[j.at("id").get<uint64_t>()];
    e.first = j.at("text").get<std::string>();
    ++e.second;
  }
  return out;
}

struct node_under_test {
  temp_dir dir;
  int port = free_port();
  std::unique_ptr<troupe_process> node;

  void start(const std::string& yaml) {
    write_file(dir / "note.capnp", note_schema);
    write_file(dir / "app.yaml", yaml);
    node = std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
    httplib::Client probe{"127.0.0.1", port};
    REQUIRE(wait_until([&] { return !node->running() || probe.Get("/"); }, 30s));
    INFO(tail_of(dir / "node.log"));
    REQUIRE(node->running());
  }
  httplib::Client client() const {
    httplib::Client c{"127.0.0.1", port};
    c.set_read_timeout(30, 0);
    return c;
  }
  bool has_ids(std::initializer_list<uint64_t> ids) {
    auto out = output_of(dir / "out.jsonl", true);
    for (auto id : ids)
      if (!out.count(id))
        return false;
    return true;
  }
};

std::string lines(std::initializer_list<std::pair<uint64_t, const char*>> records) {
  std::string body;
  for (auto [id, text] : records)
    body += json{{"id", id}, {"text", text}}.dump() + "\n";
  return body;
}

} // namespace

TEST_CASE("http_source answers once a body is committed and refuses what it cannot take whole",
          "[e2e][http]") {
  node_under_test t;
  t.start(app_yaml(t.port, ", token: t0k, id_field: id, max_body_bytes: 4096"));
  auto c = t.client();
  httplib::Headers auth{{"Authorization", "Bearer t0k"}};

  // A body of JSON lines, \u escapes and raw UTF-8 alike: 200 with the ids it got.
  auto first = c.Post("/", auth, "{\"id\":1,\"text\":\"Jos\\u00e9 \\ud83c\\udf89\"}\n\n"
                                 "{\"id\":2,\"text\":\"Zoë\"}\r\n",
                      "application/x-ndjson");
  REQUIRE(first);
  INFO(first->body);
  REQUIRE(first->status == 200);
  auto a = json::parse(first->body);
  CHECK(a.at("records") == 2);
  CHECK(a.at("origin") == "ingest");
  CHECK(a.at("last_seq").get<uint64_t>() == a.at("first_seq").get<uint64_t>() + 1);
  // Committed means the sink can read it: it shows up without another request.
  REQUIRE(wait_until([&] { return t.has_ids({1, 2}); }, 30s));
  CHECK(output_of(t.dir / "out.jsonl").at(1).first == "José 🎉");

  // One object over several lines, with Content-Type: application/json.
  auto one = c.Post("/", auth, "{\n  \"id\": 3,\n  \"text\": \"pretty\"\n}\n", "application/json");
  REQUIRE(one);
  CHECK(one->status == 200);
  auto b = json::parse(one->body);
  CHECK(b.at("first_seq").get<uint64_t>() == a.at("last_seq").get<uint64_t>() + 1);

  // A bad line: 400 naming it, and the good line before it is not committed.
  auto bad = c.Post("/", auth, lines({{10, "good"}}) + "{\"id\":\"eleven\",\"text\":\"x\"}\n",
                    "application/x-ndjson");
  REQUIRE(bad);
  INFO(bad->body);
  CHECK(bad->status == 400);
  auto why = json::parse(bad->body);
  CHECK(why.at("line") == 2);
  CHECK_THAT(why.at("error").get<std::string>(),
             Catch::Contains("line 2") && Catch::Contains("'id'") && Catch::Contains("integer"));
  auto invalid_utf8 = c.Post("/", auth, std::string{"{\"id\":12,\"text\":\"\xff\"}\n"},
                             "application/x-ndjson");
  REQUIRE(invalid_utf8);
  CHECK(invalid_utf8->status == 400);
  CHECK_THAT(invalid_utf8->body, Catch::Contains("UTF-8"));

  // Idempotency-Key: the same body twice commits once; the second gets the first's answer.
  httplib::Headers keyed = auth;
  keyed.emplace("Idempotency-Key", "order-77");
  auto k1 = c.Post("/", keyed, lines({{20, "once"}, {21, "once"}}), "application/x-ndjson");
  auto k2 = c.Post("/", keyed, lines({{20, "once"}, {21, "once"}}), "application/x-ndjson");
  REQUIRE(k1);
  REQUIRE(k2);
  CHECK(k1->status == 200);
  CHECK(k2->status == 200);
  CHECK(k2->get_header_value("Idempotent-Replayed") == "true");
  CHECK(json::parse(k2->body) == json::parse(k1->body));

  // id_field: a record whose id was seen is counted as a duplicate, not emitted.
  auto dup = c.Post("/", auth, lines({{21, "again"}, {22, "new"}}), "application/x-ndjson");
  REQUIRE(dup);
  REQUIRE(dup->status == 200);
  auto d = json::parse(dup->body);
  CHECK(d.at("records") == 1);
  CHECK(d.at("duplicates") == 1);

  // Refusals: no token, a wrong one, GET, another path, a body over max_body_bytes, no record.
  auto no_token = c.Post("/", lines({{30, "x"}}), "application/x-ndjson");
  REQUIRE(no_token);
  CHECK(no_token->status == 401);
  CHECK_THAT(no_token->body, Catch::Contains("token"));
  auto wrong = c.Post("/", {{"Authorization", "Bearer nope"}}, lines({{31, "x"}}),
                      "application/x-ndjson");
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  auto get = c.Get("/", auth);
  REQUIRE(get);
  CHECK(get->status == 405);
  auto elsewhere = c.Post("/nope", auth, lines({{32, "x"}}), "application/x-ndjson");
  REQUIRE(elsewhere);
  CHECK(elsewhere->status == 404);
  auto huge = c.Post("/", auth, std::string(8192, ' ') + lines({{33, "x"}}), "application/x-ndjson");
  REQUIRE(huge);
  CHECK(huge->status == 413);
  auto empty = c.Post("/", auth, "\n\n", "application/x-ndjson");
  REQUIRE(empty);
  CHECK(empty->status == 400);

  REQUIRE(wait_until([&] { return t.has_ids({1, 2, 3, 20, 21, 22}); }, 30s));
  auto out = output_of(t.dir / "out.jsonl");
  for (uint64_t refused : {10, 11, 12, 30, 31, 32, 33})
    CHECK(out.count(refused) == 0);
  for (auto& [id, e] : out) {
    INFO("id " << id);
    CHECK(e.second == 1);
  }
  CHECK(out.at(21).first == "once");
}

TEST_CASE("http_source under backpressure: 503 with Retry-After and nothing of it committed",
          "[e2e][http]") {
  node_under_test t;
  // A small edge and a small waiting room; the sink is paused, so the edge fills up.
  t.start(app_yaml(t.port,
                   ", max_waiting_records: 40, full_wait: 300ms, commit_timeout: 3s",
                   "edges: {notes: {max_records: 50}}\n"));
  REQUIRE(wait_until([&] { return size_of(t.dir / "data/admin.json") > 0; }, 30s));
  auto admin = json::parse(read_file(t.dir / "data/admin.json")).at("address").get<std::string>();
  auto ctl = [&](const std::string& what) {
    return run_command({std::string(TROUPE_BIN_DIR) + "/troupectl", "--address", admin,
                        "--token", "adm", what, "sink"});
  };
  auto paused = ctl("pause");
  INFO(paused.output);
  REQUIRE(exit_code(paused.status) == 0);

  // 12 bodies of 20 records at once: 50 fit the edge, 40 the waiting room, the rest get 503.
  std::vector<std::future<std::pair<int, std::string>>> answers;
  for (uint64_t b = 0; b < 12; ++b)
    answers.push_back(std::async(std::launch::async, [&, b] {
      std::string body;
      for (uint64_t i = 0; i < 20; ++i)
        body += json{{"id", b * 100 + i}, {"text", "b" + std::to_string(b)}}.dump() + "\n";
      auto c = t.client();
      auto r = c.Post("/", body, "application/x-ndjson");
      if (!r)
        return std::make_pair(-1, std::string{});
      auto retry = r->get_header_value("Retry-After");
      return std::make_pair(r->status, retry + "|" + r->body);
    }));
  // The sink resumes once every body was answered or timed out waiting for a step.
  std::vector<std::pair<int, std::string>> got;
  std::set<uint64_t> committed, refused;
  for (uint64_t b = 0; b < answers.size(); ++b) {
    got.push_back(answers[b].get());
    INFO("body " << b << ": " << got.back().first << " " << got.back().second);
    CHECK((got.back().first == 200 || got.back().first == 503));
    if (got.back().first == 503)
      CHECK_THAT(got.back().second, Catch::StartsWith("1|") && Catch::Contains("nothing of this "
                                                                              "body was committed"));
    (got.back().first == 200 ? committed : refused).insert(b);
  }
  CHECK(refused.size() >= 1);
  CHECK(committed.size() >= 2); // the edge took at least two bodies before it filled
  REQUIRE(exit_code(ctl("resume").status) == 0);
  // Everything answered 200 arrives; nothing answered 503 does, even after the room drained.
  REQUIRE(wait_until([&] {
    auto out = output_of(t.dir / "out.jsonl", true);
    for (auto b : committed)
      if (!out.count(b * 100 + 19))
        return false;
    return true;
  }, 30s));
  auto c = t.client();
  auto late = c.Post("/", lines({{9999, "after"}}), "application/x-ndjson");
  REQUIRE(late);
  REQUIRE(late->status == 200);
  REQUIRE(wait_until([&] { return t.has_ids({9999}); }, 30s));
  auto out = output_of(t.dir / "out.jsonl");
  for (auto b : refused)
    for (uint64_t i = 0; i < 20; ++i)
      CHECK(out.count(b * 100 + i) == 0);
  for (auto b : committed)
    for (uint64_t i = 0; i < 20; ++i)
      CHECK(out.count(b * 100 + i) == 1);
}

TEST_CASE("http_source with SIGKILLs while clients post: every acknowledged body once",
          "[e2e][http][crash]") {
  auto seed = pick_seed();
  std::cout << "http crash test seed " << seed << std::endl;
  std::mt19937_64 rng{seed};
  node_under_test t;
  t.start(app_yaml(t.port, ""));
  int bodies = small_scale() ? 300 : 1500;
  auto url = "http://127.0.0.1:" + std::to_string(t.port) + "/";
  troupe_process client{{"/usr/bin/python3", std::string(TROUPE_SOURCE_DIR) + "/tests/e2e/http_client.py",
                         url, std::to_string(bodies), "8", std::to_string(seed % 100000),
                         t.dir.path().string()},
                        t.dir / "client.log"};
  auto progress = [&] {
    auto text = read_file(t.dir / "progress");
    return text.empty() ? 0 : std::stoi(text);
  };
  for (int kill = 1; kill <= 3; ++kill) {
    int at = bodies * kill / 4 + static_cast<int>(rng() % (bodies / 10));
    REQUIRE(wait_until([&] { return progress() >= at || !client.running(); }, 120s));
    if (!client.running())
      break;
    INFO("kill " << kill << " after " << progress() << " bodies");
    CHECK(killed_by(t.node->kill_and_reap(), SIGKILL));
    t.node = std::make_unique<troupe_process>(t.dir / "app.yaml", t.dir / "data",
                                              t.dir / "node.log");
  }
  REQUIRE(client.wait_for_exit(180s));
  INFO(tail_of(t.dir / "client.log") << "\n" << tail_of(t.dir / "node.log"));
  REQUIRE(exited_ok(client.status()));

  // The oracle: what the client meant to send, every record of it once.
  std::map<uint64_t, std::string> sent;
  {
    std::istringstream in{read_file(t.dir / "sent.jsonl")};
    for (std::string line; std::getline(in, line);) {
      auto j = json::parse(line);
      sent[j.at("id").get<uint64_t>()] = j.at("text").get<std::string>();
    }
  }
  size_t answers = 0;
  {
    std::istringstream in{read_file(t.dir / "acked.jsonl")};
    for (std::string line; std::getline(in, line); ++answers) {
      auto j = json::parse(line);
      CHECK(j.at("answer").at("records") == j.at("records"));
    }
  }
  CHECK(answers == static_cast<size_t>(bodies));
  REQUIRE(wait_until([&] { return output_of(t.dir / "out.jsonl", true).size() >= sent.size(); }, 60s));
  auto out = output_of(t.dir / "out.jsonl");
  CHECK(out.size() == sent.size());
  size_t wrong = 0;
  for (auto& [id, text] : sent) {
    auto it = out.find(id);
    if (it == out.end() || it->second.second != 1 || it->second.first != text)
      ++wrong;
  }
  CHECK(wrong == 0);
}
