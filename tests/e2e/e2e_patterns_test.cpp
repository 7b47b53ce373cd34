// End to end: the routing stages (copier, filter, splitter, sharder, merger) in real `troupe run`
// processes, on schemas of the tests' own, checked by code that shares nothing with them: the
// sign-up app (apps/signup) against a Python oracle (tests/e2e/signup_oracle.py), with and
// without SIGKILLs; a sharder, merger, splitter and filter app against what the test computes
// from its own input; and the load-time errors of their expressions and ports.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <capnp/serialize.h>
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <sstream>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

std::string source_dir() { return TROUPE_SOURCE_DIR; }

int run(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The source lines of the dead letters of the named stages, read from the stopped node's store:
// a source's own position (its line), or the line the record came from.
std::vector<uint64_t> dead_lines(const std::string& app, const std::string& data,
                                 const std::vector<std::string>& stages) {
  std::vector<uint64_t> out;
  for (const auto& stage : stages)
    for (const auto& d : stored_dead_letters(app, data, stage))
      out.push_back(d.line());
  std::sort(out.begin(), out.end());
  return out;
}

std::string signup_app() { return source_dir() + "/apps/signup/app.yaml"; }

void check_signup(const temp_dir& dir) {
  auto log = dir / "oracle.log";
  int rc = run("python3 " + source_dir() + "/tests/e2e/signup_oracle.py check " + dir / "in.jsonl" +
               " " + dir / "out" + " " + dir / "bad" + " 2> " + log);
  INFO(read_file(log));
  REQUIRE(rc == 0);
  CHECK(dead_lines(signup_app(), dir / "data", {"read", "validate"}) == numbers_in(dir / "bad"));
}

struct app_env {
  app_env(const temp_dir& dir) {
    ::setenv("INPUT", (dir / "in.jsonl").c_str(), 1);
    ::setenv("OUT_DIR", (dir / "out").c_str(), 1);
  }
  ~app_env() {
    ::unsetenv("INPUT");
    ::unsetenv("OUT_DIR");
  }
};

} // namespace

TEST_CASE("the sign-up app routes every valid sign-up as its oracle says", "[e2e][patterns]") {
  temp_dir dir;
  REQUIRE(run("python3 " + source_dir() + "/tests/e2e/signup_oracle.py generate " +
              dir / "in.jsonl" + " 20000 " + std::to_string(pick_seed())) == 0);
  app_env env{dir};
  troupe_process node{signup_app(), dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(120s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  check_signup(dir);
  // troupectl lists the same dead letters, offline, as a table and as JSON lines.
  auto ctl = std::string(TROUPE_BIN_DIR) + "/troupectl";
  auto bad = numbers_in(dir / "bad");
  auto table = run_command({ctl, "--data", dir / "data", "dlq", "list"});
  REQUIRE(exit_code(table.status) == 0);
  CHECK_THAT(table.output, Catch::Contains(std::to_string(bad.size()) + " dead letters"));
  auto json = run_command({ctl, "--data", dir / "data", "--json", "dlq", "list"});
  REQUIRE(exit_code(json.status) == 0);
  bool complete = false;
  std::vector<uint64_t> lines;
  for (auto line : split_lines(json.output, complete)) {
    auto obj = parse_flat_json(line);
    REQUIRE(obj);
    lines.push_back(std::stoull(obj->at("source_line").text) ? std::stoull(obj->at("source_line").text)
                                                             : std::stoull(obj->at("position").text));
    CHECK_FALSE(obj->at("error").text.empty());
  }
  std::sort(lines.begin(), lines.end());
  CHECK(lines == bad);
  // Given the app, a dead letter's record shows its payload as JSON.
  auto with_app = run_command({ctl, "--app", signup_app(), "--data", dir / "data", "--json", "dlq",
                               "list", "validate"});
  REQUIRE(exit_code(with_app.status) == 0);
  CHECK_THAT(with_app.output, Catch::Contains("\"payload\":{\"id\":") &&
                                  Catch::Contains("\"channel\":"));
  // Its status: every edge consumed to the end; the valid sign-ups were copied four ways.
  auto status = run_command({ctl, "--data", dir / "data", "status"});
  REQUIRE(exit_code(status.status) == 0);
  auto valid = 20000 - bad.size();
  CHECK_THAT(status.output, Catch::Contains("edge to_welcome: 1 partition, " + std::to_string(valid) +
                                            " records appended") &&
                                Catch::Contains("read by welcome: " + std::to_string(valid) +
                                                " consumed, 0 to go"));
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (auto at = status.output.find(what); at != std::string::npos; at = status.output.find(what, at + 1))
      ++n;
    return n;
  };
  CHECK(count(" to go") == count(" consumed, 0 to go")); // no group has anything left
  CHECK(count(" to go") >= 9);
  // Run again, it has nothing to do, and says so.
  auto again = run_troupe({"run", signup_app(), "--data-dir", dir / "data"});
  CHECK(exit_code(again.status) == 0);
  CHECK_THAT(again.output, Catch::Contains("had already finished in an earlier run") &&
                               Catch::Contains("troupe reset"));
  CHECK_THAT(again.output, !Catch::Contains("settings changed"));
  // With other settings for a stage that already ran, it says that they apply to nothing done.
  auto changed = run_troupe({"run", signup_app(), "--data-dir", dir / "data", "--set",
                             "stages.opted_in.where=!optedIn"}); // '!' on a command line is text
  CHECK(exit_code(changed.status) == 0);
  CHECK_THAT(changed.output, Catch::Contains("stage opted_in: its settings changed") &&
                                 Catch::Contains("then: type=filter where=optedIn; now: type=filter "
                                                 "where=!optedIn"));
  auto unknown = run_command({ctl, "--data", dir / "data", "dlq", "list", "nosuch"});
  CHECK(exit_code(unknown.status) == 2);
  CHECK_THAT(unknown.output, Catch::Contains("no stage 'nosuch'") && Catch::Contains("validate"));
}

TEST_CASE("the sign-up app is exact after SIGKILLs mid-way", "[e2e][patterns]") {
  temp_dir dir;
  auto seed = pick_seed();
  REQUIRE(run("python3 " + source_dir() + "/tests/e2e/signup_oracle.py generate " +
              dir / "in.jsonl" + " 60000 " + std::to_string(seed)) == 0);
  app_env env{dir};
  std::mt19937_64 rnd{seed};
  int kills = 0;
  for (int round = 0; round < 3; ++round) {
    troupe_process node{signup_app(), dir / "data", dir / "node.log"};
    // Kill once the output grew by a random amount (a run that finished is simply run again).
    auto welcome = dir / "out/welcome.jsonl";
    auto target = size_of(welcome) + 1 + rnd() % 300000;
    wait_until([&] { return size_of(welcome) >= target || !node.running(); }, 60s);
    if (killed_by(node.kill_and_reap(), SIGKILL))
      ++kills;
  }
  troupe_process node{signup_app(), dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(120s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  std::cerr << "signup: " << kills << " SIGKILLs mid-run\n";
  check_signup(dir);
}

namespace {

const char* orders_schema = R"(@0xe4b2c6d8a1f39057;
struct Order {
  id @0 :UInt64;
  customer @1 :Text;
  country @2 :Text;
  amount @3 :Float64;
  rush @4 :Bool;
}
)";

struct order {
  uint64_t id;
  std::string customer, country;
  double amount;
  bool rush;
};

std::vector<order> write_orders(const std::string& path, size_t n, uint64_t seed) {
  std::mt19937_64 rnd{seed};
  const char* customers[] = {"ada", "José", "李", "zoë", "bob", "Ольга", "", "émile"};
  const char* countries[] = {"DE", "FR", "US", "JP", "BR"};
  std::vector<order> out;
  std::ofstream f{path};
  for (size_t i = 0; i < n; ++i) {
    order o{i, customers[rnd() % 8], countries[rnd() % 5], double(rnd() % 20000) / 100,
            rnd() % 3 == 0};
    f << "{\"id\": " << o.id << ", \"customer\": \"" << o.customer << "\", \"country\": \""
      << o.country << "\", \"amount\": " << o.amount << ", \"rush\": " << (o.rush ? "true" : "false")
      << "}\n";
    out.push_back(o);
  }
  return out;
}

// The ids in a sink's file, in file order.
std::vector<uint64_t> ids_in(const std::string& path) {
  std::vector<uint64_t> ids;
  std::ifstream in{path};
  for (std::string line; std::getline(in, line);) {
    auto obj = parse_flat_json(line);
    REQUIRE(obj);
    ids.push_back(std::stoull(obj->at("id").text));
  }
  return ids;
}

std::string routing_yaml() {
  return "app: routing\n"
         "schema: {file: orders.capnp, payload: Order}\n"
         "defaults: {batch: {max_items: 100}}\n"
         "stages:\n"
         "  - {name: read, type: jsonl_source, path: in.jsonl, output: orders}\n"
         "  - {name: shard, type: sharder, key: customer, input: orders,\n"
         "     outputs: {shard_0: s0, shard_1: s1, shard_2: s2}}\n"
         "  - {name: merge, type: merger, inputs: [s0, s1, s2], output: merged}\n"
         "  - name: split\n"
         "    type: splitter\n"
         "    mode: all\n"
         "    routes: {big: 'amount >= 100', eu: 'country in [\"DE\", \"FR\"] && !rush'}\n"
         "    default: rest\n"
         "    input: merged\n"
         "    outputs: {big: big, eu: eu, rest: rest}\n"
         "  - {name: rushed, type: filter, where: rush, input: rest,\n"
         "     outputs: {out: rest_rush, rejected: rest_calm}}\n"
         "  - {name: w0, type: jsonl_sink, input: s0, path: s0.jsonl}\n"
         "  - {name: w1, type: jsonl_sink, input: s1, path: s1.jsonl}\n"
         "  - {name: w2, type: jsonl_sink, input: s2, path: s2.jsonl}\n"
         "  - {name: wm, type: jsonl_sink, input: merged, path: merged.jsonl}\n"
         "  - {name: wb, type: jsonl_sink, input: big, path: big.jsonl}\n"
         "  - {name: we, type: jsonl_sink, input: eu, path: eu.jsonl}\n"
         "  - {name: wr, type: jsonl_sink, input: rest_rush, path: rest_rush.jsonl}\n"
         "  - {name: wc, type: jsonl_sink, input: rest_calm, path: rest_calm.jsonl}\n";
}

} // namespace

TEST_CASE("sharder, merger, splitter and filter route by their documented rules",
          "[e2e][patterns]") {
  temp_dir dir;
  write_file(dir / "orders.capnp", orders_schema);
  write_file(dir / "app.yaml", routing_yaml());
  auto orders = write_orders(dir / "in.jsonl", 5000, pick_seed());
  auto r = run_troupe({"run", dir / "app.yaml", "--data-dir", dir / "data"});
  INFO(r.output);
  REQUIRE(exit_code(r.status) == 0);

  // Sharder: every order in exactly the shard XXH3-64(customer) mod 3 names, in input order.
  std::vector<uint64_t> want[3];
  for (const auto& o : orders)
    want[XXH3_64bits(o.customer.data(), o.customer.size()) % 3].push_back(o.id);
  std::vector<uint64_t> got[3];
  for (int i = 0; i < 3; ++i) {
    got[i] = ids_in(dir / ("s" + std::to_string(i) + ".jsonl"));
    CHECK(got[i] == want[i]);
  }
  // Merger: everything once, each shard's records in their order.
  auto merged = ids_in(dir / "merged.jsonl");
  CHECK(std::set<uint64_t>(merged.begin(), merged.end()).size() == orders.size());
  CHECK(merged.size() == orders.size());
  std::map<uint64_t, int> shard_of;
  for (int i = 0; i < 3; ++i)
    for (auto id : want[i])
      shard_of[id] = i;
  for (int i = 0; i < 3; ++i) {
    std::vector<uint64_t> in_merged;
    for (auto id : merged)
      if (shard_of[id] == i)
        in_merged.push_back(id);
    CHECK(in_merged == want[i]);
  }
  // Splitter (mode all, with a default) and the filter behind its default, in merged order.
  std::map<uint64_t, const order*> by_id;
  for (const auto& o : orders)
    by_id[o.id] = &o;
  std::vector<uint64_t> big, eu, rush, calm;
  for (auto id : merged) {
    const auto& o = *by_id[id];
    bool is_big = o.amount >= 100, is_eu = (o.country == "DE" || o.country == "FR") && !o.rush;
    if (is_big)
      big.push_back(id);
    if (is_eu)
      eu.push_back(id);
    if (!is_big && !is_eu)
      (o.rush ? rush : calm).push_back(id);
  }
  CHECK(ids_in(dir / "big.jsonl") == big);
  CHECK(ids_in(dir / "eu.jsonl") == eu);
  CHECK(ids_in(dir / "rest_rush.jsonl") == rush);
  CHECK(ids_in(dir / "rest_calm.jsonl") == calm);
  CHECK_FALSE(big.empty());
  CHECK_FALSE(eu.empty());
  CHECK_FALSE(rush.empty());
}

TEST_CASE("a merger gives every backlogged input its turn", "[e2e][patterns]") {
  temp_dir dir;
  write_file(dir / "orders.capnp", orders_schema);
  write_orders(dir / "a.jsonl", 3000, 1);
  write_orders(dir / "b.jsonl", 3000, 2);
  auto yaml = [&](bool with_merger) {
    std::string y = "app: fair\n"
                    "schema: {file: orders.capnp, payload: Order}\n"
                    "defaults: {batch: {max_items: 100}}\n"
                    "stages:\n"
                    "  - {name: ra, type: jsonl_source, path: a.jsonl, output: a}\n"
                    "  - {name: rb, type: jsonl_source, path: b.jsonl, output: b}\n";
    if (with_merger)
      return y + "  - {name: merge, type: merger, inputs: [a, b], output: m}\n"
                 "  - {name: w, type: jsonl_sink, input: m, path: m.jsonl, envelope: true}\n";
    // First both inputs fill, with nothing reading them but two sinks elsewhere.
    return y + "  - {name: xa, type: jsonl_sink, input: a, path: xa.jsonl}\n"
               "  - {name: xb, type: jsonl_sink, input: b, path: xb.jsonl}\n";
  };
  // Backlog both edges first (the merger's consumer group is new to them and starts at 0), then
  // let the merger drain them: it must alternate, not empty one input before the other.
  write_file(dir / "fill.yaml", yaml(false));
  REQUIRE(exit_code(run_troupe({"run", dir / "fill.yaml", "--data-dir", dir / "data"}).status) == 0);
  write_file(dir / "app.yaml", yaml(true));
  auto r = run_troupe({"run", dir / "app.yaml", "--data-dir", dir / "data"});
  INFO(r.output);
  REQUIRE(exit_code(r.status) == 0);
  std::vector<std::string> origins;
  std::ifstream in{dir / "m.jsonl"};
  for (std::string line; std::getline(in, line);)
    origins.push_back(line.find("\"origin\":\"ra\"") != std::string::npos ? "a" : "b");
  REQUIRE(origins.size() == 6000);
  // In every window of 400 records (two steps of each input, at most) both inputs appear.
  for (size_t i = 0; i + 400 <= 6000; i += 200) {
    auto a = std::count(origins.begin() + i, origins.begin() + i + 400, "a");
    INFO("records " << i << " to " << i + 400 << ": " << a << " from a");
    CHECK(a > 0);
    CHECK(a < 400);
  }
}

TEST_CASE("expressions and ports are checked when the app loads", "[e2e][patterns]") {
  temp_dir dir;
  write_file(dir / "orders.capnp", orders_schema);
  write_file(dir / "in.jsonl", "");
  auto lint = [&](const std::string& stage) {
    write_file(dir / "app.yaml", "app: bad\n"
                                 "schema: {file: orders.capnp, payload: Order}\n"
                                 "stages:\n"
                                 "  - {name: read, type: jsonl_source, path: in.jsonl, output: orders}\n" +
                                     stage +
                                     "  - {name: w, type: jsonl_sink, input: out, path: o.jsonl}\n");
    auto r = run_troupe({"lint", dir / "app.yaml"});
    CHECK(exit_code(r.status) != 0);
    return r.output;
  };
  auto typo = lint("  - {name: f, type: filter, where: 'amount > 5 && cutsomer == \"x\"', input: orders, output: out}\n");
  CHECK_THAT(typo, Catch::Contains("app.yaml:5:") && Catch::Contains("stages[1].where") &&
                   Catch::Contains("no field 'cutsomer'") && Catch::Contains("column 15"));
  auto types = lint("  - {name: f, type: filter, where: 'amount == \"5\"', input: orders, output: out}\n");
  CHECK_THAT(types, Catch::Contains("compares a number with text"));
  auto routes = lint("  - name: s\n"
                     "    type: splitter\n"
                     "    routes: {big: 'amount > 5', small: 'amount <= 5'}\n"
                     "    input: orders\n"
                     "    outputs: {big: out}\n");
  CHECK_THAT(routes, Catch::Contains("app.yaml:7:") && Catch::Contains("routes.small") &&
                     Catch::Contains("not connected"));
  auto shards = lint("  - {name: s, type: sharder, key: customer, input: orders, outputs: {a: out}}\n");
  CHECK_THAT(shards, Catch::Contains("shard_0"));
  auto key = lint("  - {name: s, type: sharder, key: amount, input: orders, outputs: {shard_0: out}}\n");
  CHECK_THAT(key, Catch::Contains("Text or integer"));
  auto none = lint("  - {name: c, type: copier, input: orders}\n");
  CHECK_THAT(none, Catch::Contains("at least one output"));
  // `where: !rush` is a YAML tag: the condition would be nothing. Said so, with the fix.
  auto tag = lint("  - name: f\n"
                  "    type: filter\n"
                  "    where: !rush\n"
                  "    input: orders\n"
                  "    output: out\n");
  CHECK_THAT(tag, Catch::Contains("app.yaml:7:") && Catch::Contains("as a tag") &&
                      Catch::Contains("where: '!rush'"));
  // A misspelt input is reported once, as a dangling edge, not again as a missing struct.
  auto dangling = lint("  - {name: f, type: filter, where: rush, input: ordrs, output: out}\n");
  CHECK_THAT(dangling, Catch::Contains("dangling edge 'ordrs'"));
  CHECK_THAT(dangling, !Catch::Contains("must carry a struct"));
}

TEST_CASE("troupe test runs the apps' cases, and shows what differs", "[e2e][patterns]") {
  for (const char* app : {"signup", "wordcount"}) {
    auto base = source_dir() + "/apps/" + app;
    auto r = run_troupe({"test", base + "/app.yaml", base + "/cases.yaml"});
    INFO(r.output);
    CHECK(exit_code(r.status) == 0);
    CHECK_THAT(r.output, Catch::Contains("cases passed") && !Catch::Contains("FAIL"));
  }
  temp_dir dir;
  write_file(dir / "wrong.yaml",
             "cases:\n"
             "  - name: a wrong id\n"
             "    stage: opted_in\n"
             "    input: ['{\"id\": 1, \"email\": \"a\", \"name\": \"A\", \"opted_in\": true, \"channel\": \"sms\"}']\n"
             "    expect: {out: ['{\"id\": 2, \"email\": \"a\", \"name\": \"A\", \"opted_in\": true, \"channel\": \"sms\"}']}\n"
             "  - name: a dead letter that does not come\n"
             "    stage: validate\n"
             "    input: ['{\"id\": 1, \"email\": \"a\", \"name\": \"A\", \"opted_in\": true, \"channel\": \"sms\"}']\n"
             "    dead_letters: [nothing]\n");
  auto wrong = run_troupe({"test", signup_app(), dir / "wrong.yaml"});
  CHECK(exit_code(wrong.status) == 1);
  CHECK_THAT(wrong.output, Catch::Contains("FAIL a wrong id") &&
                               Catch::Contains("expected: {\"id\":2") &&
                               Catch::Contains("got:      {\"id\":1") &&
                               Catch::Contains("dead letters: 0, expected 1") &&
                               Catch::Contains("0 of 2 cases passed"));
  write_file(dir / "typo.yaml", "cases:\n  - stage: opted_in\n    inptu: []\n");
  auto typo = run_troupe({"test", signup_app(), dir / "typo.yaml"});
  CHECK(exit_code(typo.status) == 2);
  CHECK_THAT(typo.output, Catch::Contains("typo.yaml:3: unknown key 'inptu'"));
}

TEST_CASE("reduce folds integers exactly and refuses what overflows", "[e2e][mapreduce]") {
  temp_dir dir;
  write_file(dir / "sales.capnp", "@0xf1e2d3c4b5a69788;\n"
                                  "struct Sale { region @0 :Text; qty @1 :Int64; big @2 :UInt64; }\n"
                                  "struct Total { region @0 :Text; value @1 :Int64; }\n"
                                  "struct Mean { region @0 :Text; value @1 :Float64; }\n");
  write_file(dir / "in.jsonl", "");
  write_file(dir / "app.yaml",
             "app: sales\n"
             "schema: {files: [sales.capnp], payload: Sale}\n"
             "edges: {totals: {type: Total}, means: {type: Mean}, bigs: {type: Total}}\n"
             "stages:\n"
             "  - {name: read, type: jsonl_source, path: in.jsonl, key: region,\n"
             "     outputs: {out: sales}}\n"
             "  - {name: copy, type: copier, input: sales, outputs: {a: s1, b: s2, c: s3}}\n"
             "  - {name: sum, type: reduce, op: sum, field: qty, key_field: region, input: s1, output: totals}\n"
             "  - {name: avg, type: reduce, op: avg, field: qty, key_field: region, input: s2, output: means}\n"
             "  - {name: max, type: reduce, op: max, field: big, key_field: region, input: s3, output: bigs}\n"
             "  - {name: w1, type: jsonl_sink, input: totals, path: t.jsonl}\n"
             "  - {name: w2, type: jsonl_sink, input: means, path: m.jsonl}\n"
             "  - {name: w3, type: jsonl_sink, input: bigs, path: b.jsonl}\n");
  // 2^53 + 1 + 1 in doubles is 2^53 (each 1 rounds away): the average would be 3002399751580330.67.
  write_file(dir / "cases.yaml",
             "cases:\n"
             "  - name: a sum that overflows is a dead letter, the rest is exact\n"
             "    stage: sum\n"
             "    key: region\n"
             "    input: |\n"
             "      {\"region\": \"b\", \"qty\": 9223372036854775807}\n"
             "      {\"region\": \"b\", \"qty\": 1}\n"
             "      {\"region\": \"b\", \"qty\": -7}\n"
             "    expect: {out: ['{\"region\": \"b\", \"value\": 9223372036854775800}']}\n"
             "    dead_letters: [overflows]\n"
             "  - name: an average of integers divides an exact sum\n"
             "    stage: avg\n"
             "    key: region\n"
             "    input: |\n"
             "      {\"region\": \"a\", \"qty\": 9007199254740992}\n"
             "      {\"region\": \"a\", \"qty\": 1}\n"
             "      {\"region\": \"a\", \"qty\": 1}\n"
             "    expect: {out: ['{\"region\": \"a\", \"value\": 3002399751580331.5}']}\n"
             "  - name: an unsigned value beyond 64-bit signed is refused\n"
             "    stage: max\n"
             "    key: region\n"
             "    input: ['{\"region\": \"c\", \"big\": 18446744073709551615}', '{\"region\": \"c\", \"big\": 3}']\n"
             "    expect: {out: ['{\"region\": \"c\", \"value\": 3}']}\n"
             "    dead_letters: [does not fit]\n");
  auto r = run_troupe({"test", dir / "app.yaml", dir / "cases.yaml"});
  INFO(r.output);
  CHECK(exit_code(r.status) == 0);
  CHECK_THAT(r.output, Catch::Contains("3 of 3 cases passed"));
}
