// End to end: the batch stage in real `troupe run` processes, on a schema of the test's own.
// What the test checks it computes itself from its own input: the items of all batches, in
// order, are the input exactly once; no batch is over its count or its bytes; a batch that is
// not full goes out after `wait`, by its timer, also across a SIGKILL.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <random>
#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const char* schema =
  "@0xe6f708192a3b4c5d;\n"
  "struct Item { id @0 :UInt32; group @1 :Text; text @2 :Text; }\n"
  "struct Items { items @0 :List(Item); count @1 :UInt32; group @2 :Text; }\n";

std::string app_yaml(const std::string& source_extra, const std::string& batch_extra) {
  return "app: batches\n"
         "schema: {file: item.capnp, payload: Item}\n"
         "edges: {batches: {type: Items}}\n"
         "stages:\n"
         "  - {name: read, type: jsonl_source, path: in.jsonl, key: group, output: items" +
         source_extra + "}\n"
         "  - {name: pack, type: batch, input: items, output: batches" + batch_extra + "}\n"
         "  - {name: write, type: jsonl_sink, input: batches, path: out.jsonl}\n";
}

std::string item(uint32_t id, const std::string& group) {
  return json{{"id", id}, {"group", group}, {"text", "élan \U0001F600 #" + std::to_string(id)}}.dump();
}

// The batches written: each as its items' ids, with its count and group fields.
struct written {
  std::vector<uint32_t> ids;
  uint32_t count;
  std::string group;
};
std::vector<written> batches_in(const std::string& path) {
  std::vector<written> out;
  std::istringstream in{read_file(path)};
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line);
    written w{{}, j.at("count").get<uint32_t>(), j.at("group").get<std::string>()};
    for (const auto& i : j.at("items")) {
      REQUIRE(i.at("text").get<std::string>() ==
              "élan \U0001F600 #" + std::to_string(i.at("id").get<uint32_t>()));
      w.ids.push_back(i.at("id").get<uint32_t>());
    }
    out.push_back(std::move(w));
  }
  return out;
}

} // namespace

TEST_CASE("batch packs records by count, in order, and sends the rest when the input ends",
          "[e2e][streams]") {
  temp_dir dir;
  std::string in;
  for (uint32_t i = 0; i < 1000; ++i)
    in += item(i, "g") + "\n";
  write_file(dir / "in.jsonl", in);
  write_file(dir / "item.capnp", schema);
  write_file(dir / "app.yaml", app_yaml("", ", count: 7, wait: 1h"));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(60s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  auto got = batches_in(dir / "out.jsonl");
  REQUIRE(got.size() == 143); // 142 of 7, then 6
  std::vector<uint32_t> all;
  for (size_t b = 0; b < got.size(); ++b) {
    CHECK(got[b].count == got[b].ids.size());
    CHECK(got[b].ids.size() == (b + 1 < got.size() ? 7u : 6u));
    CHECK(got[b].group.empty()); // no key_field
    all.insert(all.end(), got[b].ids.begin(), got[b].ids.end());
  }
  std::vector<uint32_t> want(1000);
  for (uint32_t i = 0; i < 1000; ++i)
    want[i] = i;
  CHECK(all == want);
}

TEST_CASE("batch per key, by bytes, under SIGKILLs: every record once, in order per key",
          "[e2e][streams][crash]") {
  temp_dir dir;
  auto seed = pick_seed();
  std::mt19937_64 rng{seed};
  uint32_t n = small_scale() ? 20000 : 60000;
  std::string in;
  std::map<std::string, std::vector<uint32_t>> want;
  for (uint32_t i = 0; i < n; ++i) {
    auto g = "grüppe-" + std::to_string(rng() % 5);
    in += item(i, g) + "\n";
    want[g].push_back(i);
  }
  write_file(dir / "in.jsonl", in);
  write_file(dir / "item.capnp", schema);
  write_file(dir / "app.yaml",
             app_yaml(", batch: {max_items: 64}",
                      ", count: 50, bytes: 2000, per_key: true, key_field: group, wait: 1h, "
                      "batch: {max_items: 64}"));
  auto total = size_of(dir / "in.jsonl");
  int status = -1;
  int kills = run_with_kills(dir / "app.yaml", dir / "data", dir / "node.log", 3, dir / "out.jsonl",
                             [&](int round) { return total * (round + 1) / 5 + rng() % (total / 10); },
                             status);
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(status));
  CHECK(kills >= 2);
  std::map<std::string, std::vector<uint32_t>> got;
  size_t over = 0;
  for (const auto& b : batches_in(dir / "out.jsonl")) {
    CHECK(b.count == b.ids.size());
    over += b.ids.size() > 50;
    auto& g = got[b.group];
    g.insert(g.end(), b.ids.begin(), b.ids.end());
  }
  CHECK(over == 0);
  CHECK(got == want);
}

TEST_CASE("a batch that is not full goes out after wait, and its wait survives a SIGKILL",
          "[e2e][streams][crash]") {
  temp_dir dir;
  write_file(dir / "in.jsonl", "");
  write_file(dir / "item.capnp", schema);
  write_file(dir / "app.yaml", app_yaml(", follow: true, poll_ms: 20",
                                        ", count: 100, wait: 2s, per_key: true, key_field: group"));
  auto node = std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  for (uint32_t i = 0; i < 3; ++i)
    append_line(dir / "in.jsonl", item(i, "a"));
  REQUIRE(wait_until([&] { return batches_in(dir / "out.jsonl").size() == 1; }, 30s));
  auto first = batches_in(dir / "out.jsonl");
  CHECK(first[0].ids == std::vector<uint32_t>{0, 1, 2});
  CHECK(first[0].group == "a");

  append_line(dir / "in.jsonl", item(3, "b"));
  REQUIRE(wait_consumed(dir / "data", "pack", 4));
  REQUIRE(batches_in(dir / "out.jsonl").size() == 1); // b's batch waits: only LMDB knows of it
  REQUIRE(killed_by(node->kill_and_reap(), SIGKILL));
  node = std::make_unique<troupe_process>(dir / "app.yaml", dir / "data", dir / "node.log");
  REQUIRE(wait_until([&] { return batches_in(dir / "out.jsonl").size() == 2; }, 30s));
  auto both = batches_in(dir / "out.jsonl");
  CHECK(both[1].ids == std::vector<uint32_t>{3});
  CHECK(both[1].group == "b");
}
