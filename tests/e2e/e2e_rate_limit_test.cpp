// End to end: rate_limit in real `troupe run` processes. Rates are checked from below only (a
// run may never be faster than its limit allows; a slow machine only makes it slower), and
// what passes is checked against the input: every record once, in order, nothing dropped, also
// across a SIGKILL.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const char* schema = "@0xf708192a3b4c5d6e;\nstruct Item { index @0 :UInt32; group @1 :Text; }\n";

std::string app_yaml(const std::string& source, const std::string& limit) {
  return "app: limited\n"
         "schema: {file: item.capnp, payload: Item}\n"
         "stages:\n"
         "  - " + source + "\n"
         "  - {name: limit, type: rate_limit, input: items, output: passed, " + limit + "}\n"
         "  - {name: write, type: jsonl_sink, input: passed, path: out.jsonl}\n";
}

// The output's records by group. `while_written`: the sink may be writing (or was killed
// writing) its last line, which is then not a record yet.
std::map<std::string, std::vector<uint32_t>> output_of(const std::string& path,
                                                       bool while_written = false) {
  std::map<std::string, std::vector<uint32_t>> out;
  auto text = read_file(path);
  if (while_written)
    text.resize(text.rfind('\n') + 1); // npos + 1 == 0: no whole line yet
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line);
    out[j.at("group").get<std::string>()].push_back(j.at("index").get<uint32_t>());
  }
  return out;
}

std::vector<uint32_t> iota(uint32_t n) {
  std::vector<uint32_t> v(n);
  for (uint32_t i = 0; i < n; ++i)
    v[i] = i;
  return v;
}

} // namespace

TEST_CASE("rate_limit lets at most max per interval through, and drops nothing", "[e2e][streams]") {
  temp_dir dir;
  write_file(dir / "item.capnp", schema);
  write_file(dir / "app.yaml",
             app_yaml("{name: gen, type: generator, count: 300, payload_size: 0, output: items}", "max: 100, per: 1s"));
  auto started = std::chrono::steady_clock::now();
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(60s));
  auto took = std::chrono::steady_clock::now() - started;
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  // A burst of 100, then one every 10 ms: the 300th passes 2 s after the first.
  CHECK(took >= 1900ms);
  auto out = output_of(dir / "out.jsonl");
  CHECK(out[""] == iota(300));
}

TEST_CASE("rate_limit per key holds each key to its own rate, in order", "[e2e][streams]") {
  temp_dir dir;
  write_file(dir / "item.capnp", schema);
  std::string in;
  for (uint32_t i = 0; i < 120; ++i)
    in += json{{"index", i / 2}, {"group", i % 2 ? "b" : "a"}}.dump() + "\n";
  write_file(dir / "in.jsonl", in);
  write_file(dir / "app.yaml",
             app_yaml("{name: read, type: jsonl_source, path: in.jsonl, key: group, output: items}",
                      "max: 20, per: 1s, per_key: true"));
  auto started = std::chrono::steady_clock::now();
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(60s));
  auto took = std::chrono::steady_clock::now() - started;
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  CHECK(took >= 1900ms); // 60 per key: a burst of 20, then 20/s
  auto out = output_of(dir / "out.jsonl");
  CHECK(out["a"] == iota(60));
  CHECK(out["b"] == iota(60));
}

TEST_CASE("rate_limit under a SIGKILL: every record once, in order", "[e2e][streams][crash]") {
  temp_dir dir;
  write_file(dir / "item.capnp", schema);
  write_file(dir / "app.yaml",
             app_yaml("{name: gen, type: generator, count: 1500, payload_size: 0, output: items}", "max: 500, per: 1s"));
  {
    troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
    REQUIRE(wait_until([&] { return output_of(dir / "out.jsonl", true)[""].size() >= 700; }, 60s));
    REQUIRE(killed_by(node.kill_and_reap(), SIGKILL));
  }
  auto before = output_of(dir / "out.jsonl", true)[""].size();
  CHECK(before < 1500);
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(60s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  CHECK(output_of(dir / "out.jsonl")[""] == iota(1500));
}

TEST_CASE("rate_limit per key forgets a key once its time has passed", "[e2e][streams]") {
  temp_dir dir;
  write_file(dir / "item.capnp", schema);
  std::string in;
  for (uint32_t i = 0; i < 3000; ++i) // 3000 keys, each once
    in += json{{"index", i}, {"group", "key-" + std::to_string(i)}}.dump() + "\n";
  write_file(dir / "in.jsonl", in);
  write_file(dir / "app.yaml",
             app_yaml("{name: read, type: jsonl_source, path: in.jsonl, key: group, output: items}",
                      "max: 1000000, per: 1s, per_key: true, batch: {max_items: 100}"));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(60s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  CHECK(output_of(dir / "out.jsonl").size() == 3000);
  // What the stage keeps, read from its store: each step erased the keys of the ones before.
  troupe::registry reg;
  troupe::register_builtin_stages(reg);
  auto loaded = troupe::load_app(dir / "app.yaml", reg, dir / "data");
  REQUIRE(loaded.app);
  troupe::store_options opts;
  opts.dir = dir / "data";
  auto db = troupe::store::open(opts, troupe::layout_of(*loaded.app));
  REQUIRE(db);
  auto reader = (*db)->reader();
  REQUIRE_FALSE(reader->refresh());
  auto stage = *(*db)->find_stage("limit");
  size_t kept = 0;
  for (uint32_t p = 0; p < 1; ++p)
    REQUIRE_FALSE(reader->scan_state(stage, troupe::state_scope::partition, p, troupe::state_space::user,
                                     [&](std::string_view k, std::string_view) {
                                       kept += !k.empty() && k[0] == 't';
                                     }));
  CHECK(kept <= 200); // without expiry: 3000
}
