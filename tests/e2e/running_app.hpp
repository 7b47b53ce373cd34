// The app most crash tests run, and its oracle: generator (N records, payload e2e.Item) ->
// e2e.running (tests/e2e/plugin: a running sum per bucket in keyed state) -> jsonl_sink. A step
// lost or repeated anywhere shows up as a wrong or missing line, and as wrong running sums from
// there on in that bucket. The oracle is a plain loop here, sharing no code with the runtime.
#pragma once

#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace troupe::test {

// What e2e.running must have written for record i, computed by a plain loop.
struct item {
  uint32_t index, bucket, running;
};

struct oracle {
  std::vector<item> items;
  std::vector<uint64_t> bytes_before; // bytes_before[k]: about the file's size after k lines
};

inline oracle compute_oracle(uint32_t n) {
  oracle o;
  o.items.reserve(n);
  o.bytes_before.reserve(n + 1);
  o.bytes_before.push_back(0);
  uint32_t running[16] = {};
  char line[96];
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t b = i % 16;
    running[b] += i % 1000; // wraps mod 2^32, as the stage's does
    o.items.push_back({i, b, running[b]});
    // Only to place kill points by size: the comparison below parses, it never compares text.
    auto len = std::snprintf(line, sizeof line, "{\"index\":%u,\"bucket\":%u,\"running\":%u}\n",
                             i, b, running[b]);
    o.bytes_before.push_back(o.bytes_before.back() + static_cast<uint64_t>(len));
  }
  return o;
}

inline std::string app_yaml(const std::string& mode, uint32_t n, const std::string& out) {
  std::ostringstream y;
  y << "app: e2e\n"
    << "durability: " << mode << "\n"
    << "schema:\n"
    << "  file: " << TROUPE_SOURCE_DIR << "/tests/e2e/plugin/e2e.capnp\n"
    << "  payload: Item\n"
    << "plugins: [e2e]\n"
    << "stages:\n"
    << "  - name: gen\n"
    << "    type: generator\n"
    << "    count: " << n << "\n"
    << "    payload_size: 16\n"
    << "    outputs: {out: items}\n"
    << "  - name: running\n"
    << "    type: e2e.running\n"
    << "    inputs: [items]\n"
    << "    outputs: {out: totals}\n"
    << "  - name: write\n"
    << "    type: jsonl_sink\n"
    << "    inputs: [totals]\n"
    << "    path: " << out << "\n";
  return y.str();
}

// Compares the sink's file with the oracle: every line parsed, every field checked, in order.
// A field the codec left out counts as its default (0, or an empty body), as in Cap'n Proto.
inline void check_output(const std::string& path, const std::vector<item>& expected,
                         size_t lines_wanted) {
  auto text = read_file(path);
  bool complete = true;
  auto lines = split_lines(text, complete);
  size_t mismatches = 0;
  std::string first;
  for (size_t i = 0; i < std::min(lines.size(), lines_wanted); ++i) {
    const auto& want = expected[i];
    bool ok = false;
    if (auto obj = parse_flat_json(lines[i])) {
      auto field = [&](const char* name) -> std::optional<uint32_t> {
        auto it = obj->find(name);
        return it == obj->end() ? std::optional<uint32_t>(0) : json_u32(it->second);
      };
      auto body = obj->find("body");
      bool known_keys = std::all_of(obj->begin(), obj->end(), [](const auto& kv) {
        return kv.first == "index" || kv.first == "body" || kv.first == "bucket" ||
               kv.first == "running";
      });
      ok = known_keys && field("index") == want.index && field("bucket") == want.bucket &&
           field("running") == want.running &&
           (body == obj->end() || (body->second.is_string && body->second.text.empty()));
    }
    if (!ok && mismatches++ == 0)
      first = "line " + std::to_string(i + 1) + ": " + std::string(lines[i]) +
              "\n  expected index " + std::to_string(want.index) + ", bucket " +
              std::to_string(want.bucket) + ", running " + std::to_string(want.running);
  }
  INFO(path << ": " << lines.size() << " lines, " << lines_wanted << " wanted; " << mismatches
            << " mismatched" << (first.empty() ? "" : "; first: " + first));
  CHECK(complete);
  CHECK(lines.size() == lines_wanted);
  CHECK(mismatches == 0);
}

// Runs the app once more, to its end: it must exit 0 (a last run after crashes or cuts).
inline void run_to_the_end(const std::string& app, const std::string& data, const std::string& log,
                           const std::string& history) {
  append_line(log, "=== last run: to the end");
  troupe_process node{app, data, log};
  bool ended = node.wait_for_exit(std::chrono::minutes(10));
  INFO(history << tail_of(log));
  REQUIRE(ended);
  REQUIRE(describe_status(node.status()) == "exit 0");
}

} // namespace troupe::test
