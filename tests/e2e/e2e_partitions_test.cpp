// End to end, with real `troupe run` processes: keyed partitions under rescaling and SIGKILLs,
// and a record that kills the whole process.
//
// Partitions: generator -> e2e.rekey (keys each record by its bucket, index % 16) -> an edge of
// 8 partitions -> e2e.running (a running sum per bucket in partition state) -> jsonl_sink. The
// stage runs with 1, then 4, then 2 workers across SIGKILLs; the oracle, a plain loop here, says
// what every bucket's sequence of (index, running sum) must be. A key's state split between
// workers, a record lost or repeated, or a bucket's order broken all show up as a wrong sum.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include "config/app_config.hpp"

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <iostream>
#include <map>
#include <random>
#include <sstream>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

std::string keyed_app(uint32_t n, uint32_t workers, const std::string& out) {
  std::ostringstream y;
  y << "app: keyed\n"
    << "schema: {file: " << TROUPE_SOURCE_DIR << "/tests/e2e/plugin/e2e.capnp, payload: Item}\n"
    << "plugins: [e2e]\n"
    << "defaults: {batch: {max_items: 256}}\n"
    << "edges: {keyed: {partitions: 8}}\n"
    << "stages:\n"
    << "  - {name: gen, type: generator, count: " << n << ", payload_size: 0, output: items}\n"
    << "  - {name: rekey, type: e2e.rekey, input: items, output: keyed}\n"
    << "  - {name: running, type: e2e.running, workers: " << workers
    << ", input: keyed, output: totals}\n"
    << "  - {name: write, type: jsonl_sink, input: totals, path: " << out << "}\n";
  return y.str();
}

// Every bucket's (index, running) in the order the stage must see them.
std::map<uint32_t, std::vector<std::pair<uint32_t, uint32_t>>> oracle(uint32_t n) {
  std::map<uint32_t, std::vector<std::pair<uint32_t, uint32_t>>> out;
  uint32_t running[16] = {};
  for (uint32_t i = 0; i < n; ++i) {
    running[i % 16] += i % 1000;
    out[i % 16].emplace_back(i, running[i % 16]);
  }
  return out;
}

void check_keyed_output(const std::string& path, uint32_t n) {
  auto want = oracle(n);
  bool complete = true;
  auto text = read_file(path);
  auto lines = split_lines(text, complete);
  std::map<uint32_t, std::vector<std::pair<uint32_t, uint32_t>>> got;
  size_t bad = 0;
  for (auto line : lines) {
    auto obj = parse_flat_json(line);
    auto field = [&](const char* name) -> std::optional<uint32_t> {
      auto it = obj->find(name);
      return it == obj->end() ? std::optional<uint32_t>(0) : json_u32(it->second);
    };
    if (!obj || !field("index") || !field("bucket") || !field("running") ||
        *field("bucket") != *field("index") % 16) {
      ++bad;
      continue;
    }
    got[*field("bucket")].emplace_back(*field("index"), *field("running"));
  }
  CHECK(complete);
  CHECK(bad == 0);
  CHECK(lines.size() == n);
  for (const auto& [bucket, seq] : want) {
    INFO("bucket " << bucket);
    const auto& have = got[bucket];
    CHECK(have.size() == seq.size());
    size_t first_diff = 0;
    while (first_diff < std::min(have.size(), seq.size()) && have[first_diff] == seq[first_diff])
      ++first_diff;
    INFO("first difference at position " << first_diff);
    CHECK(have == seq); // same records, same order, same sums
  }
}

} // namespace

TEST_CASE("rescaling a keyed stage 1 -> 4 -> 2 workers across SIGKILLs keeps every key's state "
          "and order exact",
          "[e2e][slow]") {
  uint32_t n = small_scale() ? 40'000 : 400'000;
  temp_dir dir;
  auto app = dir / "app.yaml", data = dir / "data", out = dir / "out.jsonl", log = dir / "troupe.log";
  auto seed = pick_seed();
  std::mt19937_64 rng{seed};
  INFO(n << " records, seed " << seed << " (TROUPE_E2E_SEED repeats it)");
  // Each line is about 40 bytes; kill at random points of the first, middle and last thirds.
  auto around = [&](double lo, double hi) {
    return static_cast<uint64_t>(std::uniform_real_distribution<double>{lo, hi}(rng) * n * 38);
  };
  struct run {
    uint32_t workers;
    uint64_t kill_at; // output bytes; 0: to the end
  };
  std::vector<run> runs{{1, around(0.05, 0.3)}, {4, around(0.35, 0.6)}, {2, around(0.65, 0.9)},
                        {2, 0}};
  std::string history;
  for (size_t i = 0; i < runs.size(); ++i) {
    write_file(app, keyed_app(n, runs[i].workers, out));
    append_line(log, "=== run " + std::to_string(i + 1) + " with " +
                       std::to_string(runs[i].workers) + " workers");
    troupe_process node{app, data, log};
    if (runs[i].kill_at == 0) {
      bool ended = node.wait_for_exit(10min);
      INFO(history << tail_of(log));
      REQUIRE(ended);
      REQUIRE(describe_status(node.status()) == "exit 0");
      break;
    }
    bool reached = wait_until(
      [&] { return !node.running() || size_of(out) >= runs[i].kill_at; }, 5min);
    int status = node.kill_and_reap();
    INFO(history << tail_of(log));
    REQUIRE(reached);
    REQUIRE(killed_by(status, SIGKILL)); // the run must not finish before its kill
    history += "run " + std::to_string(i + 1) + " (" + std::to_string(runs[i].workers) +
               " workers) SIGKILLed at " + std::to_string(size_of(out)) + " output bytes\n";
  }
  std::cerr << "e2e partitions: " << n << " records, seed " << seed << "\n" << history;
  check_keyed_output(out, n);
}

TEST_CASE("1, 2 and 4 workers give the same output per key", "[e2e]") {
  uint32_t n = small_scale() ? 5'000 : 50'000;
  for (uint32_t workers : {1u, 2u, 4u}) {
    INFO(workers << " workers");
    temp_dir dir;
    auto app = dir / "app.yaml", out = dir / "out.jsonl", log = dir / "troupe.log";
    write_file(app, keyed_app(n, workers, out));
    troupe_process node{app, dir / "data", log};
    bool ended = node.wait_for_exit(5min);
    INFO(tail_of(log));
    REQUIRE(ended);
    REQUIRE(describe_status(node.status()) == "exit 0");
    check_keyed_output(out, n);
  }
}

TEST_CASE("a record that kills the process is dead-lettered after max_attempts deaths and the "
          "rest comes out exactly once",
          "[e2e]") {
  // No core files from the aborts.
  struct rlimit no_core {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  uint32_t n = 5000, poison = 3210;
  temp_dir dir;
  auto app = dir / "app.yaml", data = dir / "data", out = dir / "out.jsonl", log = dir / "troupe.log";
  std::ostringstream y;
  y << "app: bomb\n"
    << "schema: {file: " << TROUPE_SOURCE_DIR << "/tests/e2e/plugin/e2e.capnp, payload: Item}\n"
    << "plugins: [e2e]\n"
    << "defaults: {batch: {max_items: 500}, retry: {max_attempts: 3}}\n"
    << "stages:\n"
    << "  - {name: gen, type: generator, count: " << n << ", payload_size: 0, output: items}\n"
    << "  - {name: bomb, type: e2e.bomb, poison: " << poison << ", input: items, output: safe}\n"
    << "  - {name: write, type: jsonl_sink, input: safe, path: " << out << "}\n";
  write_file(app, y.str());
  int aborts = 0;
  bool finished = false;
  for (int run = 0; run < 20 && !finished; ++run) {
    append_line(log, "=== run " + std::to_string(run + 1));
    troupe_process node{app, data, log};
    bool ended = node.wait_for_exit(2min);
    INFO(tail_of(log));
    REQUIRE(ended);
    if (killed_by(node.status(), SIGABRT))
      ++aborts;
    else {
      REQUIRE(describe_status(node.status()) == "exit 0");
      finished = true;
    }
  }
  INFO(tail_of(log));
  REQUIRE(finished);
  std::cerr << "e2e bomb: the process aborted " << aborts << " times before the run finished\n";
  CHECK(aborts >= 3);
  // Every other record once, in order.
  bool complete = true;
  auto text = read_file(out);
  auto lines = split_lines(text, complete);
  CHECK(complete);
  REQUIRE(lines.size() == n - 1);
  uint32_t expect = 0;
  size_t wrong = 0;
  for (auto line : lines) {
    if (expect == poison)
      ++expect;
    auto obj = parse_flat_json(line);
    auto it = obj ? obj->find("index") : json_object::iterator{};
    auto index = obj && it != obj->end() ? json_u32(it->second) : std::optional<uint32_t>(0);
    wrong += index != expect ? 1 : 0;
    ++expect;
  }
  CHECK(wrong == 0);
  // The poison record is in the bomb stage's dead-letter log, saying why.
  ::setenv("TROUPE_PLUGIN_PATH", TROUPE_PLUGIN_DIR, 1);
  auto dead = stored_dead_letters(app, data, "bomb");
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].input_seq == poison);
  CHECK(dead[0].error.find("the process died") != std::string::npos);
  CHECK(dead[0].attempts >= 3);
}
