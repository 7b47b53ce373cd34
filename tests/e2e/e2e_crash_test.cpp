// End to end: real `troupe run` processes, SIGKILLed at random moments and restarted, whose
// final output must equal an oracle computed here, independently, line by line: nothing lost,
// nothing duplicated, order kept.
//
// The app: generator (N records, payload e2e.Item) -> e2e.running (tests/e2e/plugin: a running
// sum per bucket in keyed state) -> jsonl_sink. A step lost or repeated anywhere shows up as a
// wrong or missing line, and as wrong running sums from there on in that bucket.
//
// TROUPE_E2E_SCALE=small (the sanitizer build) shrinks the record counts, never the number of
// kills. TROUPE_E2E_SEED=S repeats a run's kill points (each test prints its seed).
#include "running_app.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <random>
#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

// When to SIGKILL a run.
struct kill_point {
  enum class kind { store_bytes, output_grows, output_bytes } what;
  uint64_t bytes = 0;

  std::string describe() const {
    switch (what) {
      case kind::store_bytes: return "data.mdb reaches " + std::to_string(bytes) + " bytes";
      case kind::output_grows: return "the output grows past its size at restart";
      case kind::output_bytes: return "the output reaches " + std::to_string(bytes) + " bytes";
    }
    return {};
  }
};

// Runs the app with `durability: mode` to completion through >= 5 SIGKILLs and restarts.
void run_with_crashes(const std::string& mode, uint32_t n) {
  temp_dir dir;
  auto app = dir / "app.yaml", data = dir / "data", out = dir / "out.jsonl", log = dir / "troupe.log";
  write_file(app, app_yaml(mode, n, out));
  auto expected = compute_oracle(n);

  auto seed = pick_seed();
  std::mt19937_64 rng{seed};
  INFO("durability " << mode << ", " << n << " records, seed " << seed
                     << " (TROUPE_E2E_SEED repeats it)");
  // Two early kills (while the store is young, then at the first new output), then five at
  // random output sizes, in order; none so late that the run could finish first.
  std::vector<kill_point> points{
    {kill_point::kind::store_bytes, std::uniform_int_distribution<uint64_t>{16 << 10, 1 << 20}(rng)},
    {kill_point::kind::output_grows, 0}};
  std::vector<uint32_t> lines(5);
  for (auto& k : lines)
    k = std::uniform_int_distribution<uint32_t>{1, n - n / 20}(rng);
  std::sort(lines.begin(), lines.end());
  for (auto k : lines)
    points.push_back({kill_point::kind::output_bytes, expected.bytes_before[k]});

  int kills = 0;
  bool finished = false;
  std::string history;
  for (size_t run = 0; run < points.size() && !finished; ++run) {
    const auto& point = points[run];
    append_line(log, "=== e2e run " + std::to_string(run + 1) + ": SIGKILL when " + point.describe());
    auto size_at_start = size_of(out);
    troupe_process node{app, data, log};
    auto reached = [&] {
      switch (point.what) {
        case kill_point::kind::store_bytes: return size_of(data + "/data.mdb") >= point.bytes;
        case kill_point::kind::output_grows: return size_of(out) > size_at_start;
        case kill_point::kind::output_bytes: return size_of(out) >= point.bytes;
      }
      return false;
    };
    bool ended_or_reached = wait_until([&] { return !node.running() || reached(); }, 5min);
    int status = node.kill_and_reap();
    INFO(history << tail_of(log));
    REQUIRE(ended_or_reached); // else the node hung or stalled
    if (killed_by(status, SIGKILL)) {
      ++kills;
      history += "run " + std::to_string(run + 1) + " SIGKILLed when " + point.describe() +
                 " (output then " + std::to_string(size_of(out)) + " bytes)\n";
    } else {
      REQUIRE(describe_status(status) == "exit 0"); // ended on its own: only a finished run may
      finished = true;
      history += "run " + std::to_string(run + 1) + " finished before " + point.describe() + "\n";
    }
  }
  if (!finished)
    run_to_the_end(app, data, log, history);
  std::cerr << "e2e " << mode << ": " << n << " records, seed " << seed << ", " << kills
            << " SIGKILLs\n" << history;
  INFO(history);
  CHECK(kills >= 5);
  check_output(out, expected.items, n);
}

} // namespace

TEST_CASE("a node SIGKILLed at random moments loses, repeats and reorders nothing at sync "
          "durability",
          "[e2e][slow]") {
  run_with_crashes("sync", small_scale() ? 100'000 : 1'000'000);
}

TEST_CASE("a node SIGKILLed at random moments loses, repeats and reorders nothing at process "
          "durability",
          "[e2e][slow]") {
  run_with_crashes("process", small_scale() ? 100'000 : 1'000'000);
}

TEST_CASE("SIGTERM stops a node cleanly and a restart completes the output exactly", "[e2e]") {
  uint32_t n = small_scale() ? 50'000 : 200'000;
  temp_dir dir;
  auto app = dir / "app.yaml", data = dir / "data", out = dir / "out.jsonl", log = dir / "troupe.log";
  write_file(app, app_yaml("process", n, out));
  auto expected = compute_oracle(n);

  {
    troupe_process node{app, data, log};
    bool reached = wait_until(
      [&] { return !node.running() || size_of(out) >= expected.bytes_before[n / 3]; }, 5min);
    INFO(tail_of(log));
    REQUIRE(reached);
    node.signal(SIGTERM);
    REQUIRE(node.wait_for_exit(2min));
    REQUIRE(describe_status(node.status()) == "exit 0");
  }
  // An orderly stop leaves only whole, committed lines: an exact prefix of the oracle.
  bool complete = true;
  auto stopped_at = split_lines(read_file(out), complete).size();
  INFO("stopped after " << stopped_at << " of " << n << " lines");
  CHECK(stopped_at < n); // else the run finished before the signal and proves less
  check_output(out, expected.items, stopped_at);

  for (int run = 0; run < 2; ++run) { // the second run finds nothing left to do
    append_line(log, "=== e2e restart " + std::to_string(run + 1));
    troupe_process node{app, data, log};
    bool ended = node.wait_for_exit(5min);
    INFO(tail_of(log));
    REQUIRE(ended);
    REQUIRE(describe_status(node.status()) == "exit 0");
    check_output(out, expected.items, n);
  }
}

TEST_CASE("SIGTERM while the node is still starting stops it in order", "[e2e]") {
  temp_dir dir;
  auto app = dir / "app.yaml", data = dir / "data", out = dir / "out.jsonl", log = dir / "troupe.log";
  write_file(app, app_yaml("process", 10'000'000, out)); // far more than it can do meanwhile
  troupe_process node{app, data, log};
  // The node logs its first line once the store is open, before its stages start: a signal
  // from here on must mean an orderly stop, not a lost signal or a kill.
  bool starting = wait_until(
    [&] { return !node.running() || read_file(log).find("data in") != std::string::npos; }, 1min);
  INFO(tail_of(log));
  REQUIRE(starting);
  node.signal(SIGTERM);
  REQUIRE(node.wait_for_exit(1min));
  CHECK(describe_status(node.status()) == "exit 0");
}

namespace {

// One order of apps/quickstart/orders.jsonl, priced as apps/quickstart/price.cpp documents it.
struct priced_order {
  uint32_t id;
  std::string customer;
  double total, discount, customer_total;
};

std::vector<priced_order> price_orders(const std::string& input) {
  std::vector<priced_order> out;
  std::map<std::string, double> running;
  bool complete = true;
  auto text = read_file(input);
  for (auto line : split_lines(text, complete)) {
    auto obj = parse_flat_json(line);
    if (!obj) // a malformed line: the source dead-letters it
      continue;
    auto id = json_u32(obj->at("id"));
    auto quantity = json_u32(obj->at("quantity"));
    auto price = json_double(obj->at("unitPrice"));
    REQUIRE((id && quantity && price));
    if (*quantity == 0) // the price stage throws: dead-lettered after its retries
      continue;
    double discount = *quantity >= 10 ? 0.1 : 0.0;
    double total = std::round(*quantity * *price * (1 - discount) * 100) / 100;
    const auto& customer = obj->at("customer").text;
    running[customer] += total;
    out.push_back({*id, customer, total, discount, std::round(running[customer] * 100) / 100});
  }
  return out;
}

} // namespace

// The quickstart's price stage keeps a running total per customer; the source keys orders by
// customer, so each customer's orders go to one partition, in order, whatever the worker count.
TEST_CASE("the quickstart app prices its bundled orders alike with 1, 2 and 4 workers", "[e2e]") {
  std::string qs = std::string(TROUPE_SOURCE_DIR) + "/apps/quickstart";
  auto expected = price_orders(qs + "/orders.jsonl");
  REQUIRE(expected.size() == 998); // 1000 lines, line 250 malformed, order 500 has quantity 0
  std::map<std::string, std::vector<uint32_t>> order_of; // each customer's orders, in order
  for (const auto& o : expected)
    order_of[o.customer].push_back(o.id);
  for (int workers : {1, 2, 4}) {
    INFO(workers << " workers");
    temp_dir dir;
    auto app = dir / "app.yaml", data = dir / "data", out = dir / "out/priced.jsonl";
    auto log = dir / "troupe.log";
    // apps/quickstart/app.yaml with absolute inputs, the output inside the temp dir, N workers.
    write_file(app, "app: quickstart\n"
                    "durability: process\n"
                    "schema:\n"
                    "  files: [" + qs + "/orders.capnp]\n"
                    "  payload: Order\n"
                    "plugins: [quickstart]\n"
                    "edges:\n"
                    "  priced: {type: PricedOrder}\n"
                    "defaults:\n"
                    "  batch: {max_items: 256}\n"
                    "  retry: {max_attempts: 3, backoff: 20ms}\n"
                    "stages:\n"
                    "  - name: read\n"
                    "    type: jsonl_source\n"
                    "    path: " + qs + "/orders.jsonl\n"
                    "    key: customer\n"
                    "    outputs: {out: orders}\n"
                    "  - name: price\n"
                    "    type: quickstart.price\n"
                    "    workers: " + std::to_string(workers) + "\n"
                    "    inputs: [orders]\n"
                    "    outputs: {out: priced}\n"
                    "  - name: write\n"
                    "    type: jsonl_sink\n"
                    "    inputs: [priced]\n"
                    "    path: out/priced.jsonl\n");
    troupe_process node{app, data, log};
    bool ended = node.wait_for_exit(2min);
    INFO(tail_of(log));
    REQUIRE(ended);
    REQUIRE(describe_status(node.status()) == "exit 0");

    bool complete = true;
    auto text = read_file(out);
    auto lines = split_lines(text, complete);
    CHECK(complete);
    REQUIRE(lines.size() == expected.size());
    // The same lines as a set (by order id), and each customer's orders in the input's order.
    std::map<uint32_t, const priced_order*> want;
    for (const auto& o : expected)
      want[o.id] = &o;
    std::map<std::string, std::vector<uint32_t>> seen_order;
    size_t mismatches = 0;
    std::string first;
    for (size_t i = 0; i < lines.size(); ++i) {
      auto obj = parse_flat_json(lines[i]);
      auto num = [&](const char* name) {
        return obj && obj->count(name) ? json_double(obj->at(name)) : std::optional<double>(0.0);
      };
      auto id = obj && obj->count("id") ? json_u32(obj->at("id")) : std::nullopt;
      auto w = id ? want.find(*id) : want.end();
      bool ok = w != want.end() && obj->count("customer") &&
                obj->at("customer").text == w->second->customer &&
                num("total") == w->second->total && num("discount") == w->second->discount &&
                num("customerTotal") == w->second->customer_total;
      if (ok) {
        seen_order[w->second->customer].push_back(*id);
        want.erase(w); // each once
      } else if (mismatches++ == 0) {
        first = "line " + std::to_string(i + 1) + ": " + std::string(lines[i]);
      }
    }
    INFO(mismatches << " mismatched lines" << (first.empty() ? "" : "; first: " + first));
    CHECK(mismatches == 0);
    CHECK(want.empty());
    CHECK(seen_order == order_of);
  }
}
