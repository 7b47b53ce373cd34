// End to end: an edge read by several stages (publish/subscribe) with the subscription keys:
// `slow: skip` (a slow group is left behind within retention instead of holding the publisher
// back, and says so) against the default `slow: hold`, and `start: latest` (a group new to an
// edge that holds records begins after them). Inputs are numbered JSON lines the test writes.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

void write_numbers(const std::string& path, uint64_t from, uint64_t to) {
  std::ofstream out(path, std::ios::app);
  for (auto i = from; i <= to; ++i)
    out << "{\"id\": " << i << ", \"text\": \"é\"}\n";
}

std::vector<uint64_t> ids_in(const std::string& path) {
  std::ifstream in(path);
  std::vector<uint64_t> ids;
  for (std::string line; std::getline(in, line);) {
    auto obj = parse_flat_json(line);
    if (!obj)
      break; // being written
    ids.push_back(std::stoull(obj->at("id").text));
  }
  return ids;
}

std::vector<uint64_t> range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (auto i = from; i <= to; ++i)
    v.push_back(i);
  return v;
}

std::string app_yaml(const std::string& slow_policy, bool follow, const std::string& extra) {
  return "app: topic\n"
         "schema: {file: ev.capnp, payload: Event}\n"
         "edges:\n"
         "  events: {max_records: 1000, retention: {count: 100}}\n"
         "stages:\n"
         "  - {name: read, type: jsonl_source, path: in.jsonl, output: events, poll_ms: 20" +
         std::string(follow ? ", follow: true" : "") +
         "}\n"
         "  - {name: fast, type: jsonl_sink, input: events, path: fast.jsonl}\n"
         "  - {name: slowpoke, type: rate_limit, max: 2000, input: events, output: slowed,\n"
         "     batch: {max_items: 50}" + slow_policy + "}\n"
         "  - {name: slow_out, type: jsonl_sink, input: slowed, path: slow.jsonl}\n" + extra;
}

struct topic_app {
  temp_dir dir;
  topic_app() {
    write_file(dir / "ev.capnp", "@0xb7c6d5e4f3a21908;\n"
                                 "struct Event { id @0 :UInt64; text @1 :Text; }\n");
  }
};

} // namespace

TEST_CASE("a slow subscriber holds the publisher back by default, and with slow: skip is left "
          "behind within retention and says so", "[e2e][topic]") {
  uint64_t n = small_scale() ? 5000 : 20000;
  for (bool skip : {false, true}) {
    DYNAMIC_SECTION((skip ? "slow: skip" : "slow: hold")) {
      topic_app app;
      write_numbers(app.dir / "in.jsonl", 1, n);
      write_file(app.dir / "app.yaml", app_yaml(skip ? ", slow: skip" : "", false, ""));
      troupe_process node{app.dir / "app.yaml", app.dir / "data", app.dir / "node.log"};
      REQUIRE(node.wait_for_exit(180s));
      INFO(tail_of(app.dir / "node.log"));
      REQUIRE(exited_ok(node.status()));
      CHECK(ids_in(app.dir / "fast.jsonl") == range(1, n));
      auto slow = ids_in(app.dir / "slow.jsonl");
      auto told = lines_with(app.dir / "node.log", "were trimmed before this stage read them");
      if (!skip) {
        CHECK(slow == range(1, n)); // it held the source back: nothing trimmed before it read it
        CHECK(told == 0);
      } else {
        CHECK(slow.size() < n);
        CHECK(told >= 1);
        CHECK(std::is_sorted(slow.begin(), slow.end()));
        CHECK(std::adjacent_find(slow.begin(), slow.end()) == slow.end()); // none twice
        REQUIRE_FALSE(slow.empty());
        CHECK(slow.back() == n); // it reads what retention kept, to the end
      }
    }
  }
}

TEST_CASE("a stage new to an edge with start: latest begins after the records it holds",
          "[e2e][topic]") {
  topic_app app;
  write_numbers(app.dir / "in.jsonl", 1, 100);
  write_file(app.dir / "app.yaml", app_yaml("", true, ""));
  {
    troupe_process node{app.dir / "app.yaml", app.dir / "data", app.dir / "node.log"};
    REQUIRE(wait_until([&] { return ids_in(app.dir / "fast.jsonl").size() == 100; }, 60s));
    node.signal(SIGTERM);
    REQUIRE(node.wait_for_exit(30s));
  }
  // The same app with a new subscriber of `events`, which holds the first 100 records.
  write_file(app.dir / "app.yaml",
             app_yaml("", true, "  - {name: newcomer, type: jsonl_sink, input: events, path: "
                                "new.jsonl, start: latest}\n"));
  troupe_process node{app.dir / "app.yaml", app.dir / "data", app.dir / "node.log"};
  write_numbers(app.dir / "in.jsonl", 101, 150);
  REQUIRE(wait_until([&] { return ids_in(app.dir / "fast.jsonl").size() == 150; }, 60s));
  write_numbers(app.dir / "in.jsonl", 151, 200); // long after the newcomer started
  REQUIRE(wait_until([&] { return ids_in(app.dir / "fast.jsonl").size() == 200; }, 60s));
  auto fresh = ids_in(app.dir / "new.jsonl");
  REQUIRE(wait_until([&] {
    fresh = ids_in(app.dir / "new.jsonl");
    return !fresh.empty() && fresh.back() == 200;
  }, 60s));
  node.signal(SIGTERM);
  REQUIRE(node.wait_for_exit(30s));
  INFO(tail_of(app.dir / "node.log"));
  CHECK(fresh.front() > 100); // none of what the edge held when it started
  CHECK(fresh == range(fresh.front(), 200));
  CHECK(ids_in(app.dir / "slow.jsonl") == range(1, 200));
}
