// End to end: apps/sensors, one `troupe run` fed over HTTP by apps/sensors/loadgen.py, which
// injects gaps, duplicates, reordering, late readings and hot minutes, and says what it
// injected; apps/sensors/check.py compares every window, alert, gap, duplicate and late reading
// with that. Neither script shares code with the runtime. Then the same with the node SIGKILLed
// while the generator posts (it retries with its Idempotency-Keys) and restarted.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

std::string app_dir() { return std::string(TROUPE_SOURCE_DIR) + "/apps/sensors"; }

struct sensors_run {
  temp_dir dir;
  int port = free_port();
  sensors_run() {
    ::setenv("SENSORS_ADDRESS", ("127.0.0.1:" + std::to_string(port)).c_str(), 1);
    ::setenv("OUT_DIR", (dir / "out").c_str(), 1);
  }
  ~sensors_run() {
    ::unsetenv("SENSORS_ADDRESS");
    ::unsetenv("OUT_DIR");
  }
  // The window's idle_timeout (3 s in the app) is wall-clock time: a node stalled that long
  // (a sanitizer build on a busy machine) would close every window early and take the rest of
  // their readings for late. 10 s here keeps the outcome independent of the machine's speed.
  std::unique_ptr<troupe_process> node() {
    return std::make_unique<troupe_process>(
      std::vector<std::string>{std::string(TROUPE_BIN_DIR) + "/troupe", "run",
                               app_dir() + "/app.yaml", "--data-dir", dir / "data", "--set",
                               "stages.per_minute.idle_timeout=10s"},
      dir / "node.log");
  }
  std::unique_ptr<troupe_process> loadgen(uint64_t seed) {
    return std::make_unique<troupe_process>(
      std::vector<std::string>{"/usr/bin/env", "python3", app_dir() + "/loadgen.py", "--url",
                               "http://127.0.0.1:" + std::to_string(port) + "/", "--seed",
                               std::to_string(seed), "--expect", dir / "expected.json"},
      dir / "loadgen.log");
  }
  int check() {
    auto r = run_command({"/usr/bin/env", "python3", app_dir() + "/check.py", dir / "expected.json",
                          dir / "out"});
    last_check = r.output;
    return exit_code(r.status);
  }
  std::string last_check;
};

} // namespace

TEST_CASE("the sensors app reports every window, alert, gap, repeat and late reading the load "
          "generator injected", "[e2e][streams][apps]") {
  sensors_run run;
  auto node = run.node();
  auto seed = pick_seed();
  INFO("TROUPE_E2E_SEED=" << seed);
  auto gen = run.loadgen(seed);
  REQUIRE(gen->wait_for_exit(120s));
  INFO(tail_of(run.dir / "loadgen.log"));
  REQUIRE(exited_ok(gen->status()));
  // The last minutes close once the input has been quiet for idle_timeout (10 s, see node()).
  bool matched = wait_until([&] { return run.check() == 0; }, 60s, 500ms);
  INFO(run.last_check);
  INFO(tail_of(run.dir / "node.log"));
  REQUIRE(matched);
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  CHECK(exited_ok(node->status()));
}

TEST_CASE("the sensors app is exact when its node is SIGKILLed while readings are posted",
          "[e2e][streams][apps][crash]") {
  sensors_run run;
  auto node = run.node();
  auto seed = pick_seed();
  INFO("TROUPE_E2E_SEED=" << seed);
  auto gen = run.loadgen(seed);
  int kills = 0;
  for (int round = 0; round < 3 && gen->running(); ++round) {
    // Kill once more gaps were reported (the generator is mid-stream), then restart.
    uint64_t at = 1000 * (round + 1);
    wait_until([&] { return size_of(run.dir / "out/gaps.jsonl") > at || !gen->running(); }, 60s);
    if (!gen->running())
      break;
    if (killed_by(node->kill_and_reap(), SIGKILL))
      ++kills;
    node = run.node();
  }
  REQUIRE(gen->wait_for_exit(180s));
  INFO(tail_of(run.dir / "loadgen.log"));
  REQUIRE(exited_ok(gen->status()));
  CHECK(kills >= 1);
  bool matched = wait_until([&] { return run.check() == 0; }, 60s, 500ms);
  INFO(run.last_check);
  INFO(tail_of(run.dir / "node.log"));
  REQUIRE(matched);
}
