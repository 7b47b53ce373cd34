// The phases of troupe_json_bench (see json_bench.cpp and README.md): the input file, the codec
// alone in each direction, Cap'n Proto's own JSON codec for comparison, and the pipeline
// jsonl_source -> jsonl_sink run by a node as `troupe run` would.
#include "json_phases.hpp"

#include "builtin_stages.hpp"
#include "base/log.hpp"
#include "config/app_config.hpp"
#include "config/schema_loader.hpp"
#include "node/node.hpp"

#include <troupe/json.hpp>

#include <caf/all.hpp>
#include <capnp/compat/json.h>
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

namespace troupe::bench {

namespace {

using clock_type = std::chrono::steady_clock;

double since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in{path, std::ios::binary};
  for (std::string line; std::getline(in, line);)
    lines.push_back(std::move(line));
  return lines;
}

// The quickstart's Order schema, parsed at run time as the node parses it.
struct order_schema {
  schema_loader loader{{"/usr/include"}};
  capnp::StructSchema schema =
    loader.parse(TROUPE_QUICKSTART_SCHEMA).getNested("Order").asStruct();
};

} // namespace

void write_orders(const std::string& path, uint64_t n) {
  static const char* customers[] = {"margaret", "ada", "grace", "linus", "dennis", "barbara",
                                    "ken", "frances"};
  static const char* items[] = {"mouse", "keyboard", "monitor", "cable", "headset", "laptop"};
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f)
    throw std::runtime_error("cannot write " + path);
  uint64_t x = 88172645463325252ull; // xorshift64: the same file every run
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (uint64_t i = 1; i <= n; ++i) {
    auto cents = 100 + next() % 49900;
    // As Python's json.dumps writes it: ", " and ": " separators.
    std::fprintf(f,
                 "{\"id\": %llu, \"customer\": \"%s\", \"item\": \"%s\", \"quantity\": %u, "
                 "\"unitPrice\": %llu.%02llu}\n",
                 static_cast<unsigned long long>(i), customers[next() % 8], items[next() % 6],
                 static_cast<unsigned>(1 + next() % 20),
                 static_cast<unsigned long long>(cents / 100),
                 static_cast<unsigned long long>(cents % 100));
  }
  std::fclose(f);
}

phase_result run_decode(const std::string& input) {
  phase_result r;
  order_schema s;
  auto lines = read_lines(input);
  json_decoder d{s.schema};
  capnp::DynamicStruct::Reader value;
  uint64_t sum = 0; // read a field, so nothing can be optimised away
  auto start = clock_type::now();
  for (const auto& line : lines) {
    if (auto err = d.decode(line, value)) {
      r.fail("line " + std::to_string(r.records + 1) + ": " + err->to_string());
      return r;
    }
    sum += value.get("quantity").as<uint32_t>();
    ++r.records;
  }
  r.seconds = since(start);
  r.backlog = sum;
  return r;
}

phase_result run_encode(const std::string& input) {
  phase_result r;
  order_schema s;
  auto lines = read_lines(input);
  // The records as the sink gets them: each its own message's flat bytes, read back in place.
  std::vector<kj::Array<capnp::word>> records;
  records.reserve(lines.size());
  json_decoder d{s.schema};
  for (const auto& line : lines) {
    capnp::MallocMessageBuilder m;
    auto root = m.initRoot<capnp::DynamicStruct>(s.schema);
    if (auto err = d.decode(line, root)) {
      r.fail(err->to_string());
      return r;
    }
    records.push_back(capnp::messageToFlatArray(m));
  }
  json_encoder e{s.schema};
  std::string out;
  uint64_t bytes = 0;
  auto start = clock_type::now();
  for (const auto& words : records) {
    capnp::FlatArrayMessageReader reader{words};
    out.clear();
    if (auto err = e.encode(reader.getRoot<capnp::DynamicStruct>(s.schema), out)) {
      r.fail(err->to_string());
      return r;
    }
    bytes += out.size() + 1;
    ++r.records;
  }
  r.seconds = since(start);
  r.file_bytes = bytes;
  return r;
}

phase_result run_capnp_decode(const std::string& input) {
  phase_result r;
  order_schema s;
  auto lines = read_lines(input);
  capnp::JsonCodec codec;
  auto start = clock_type::now();
  for (const auto& line : lines) {
    capnp::MallocMessageBuilder m;
    auto root = m.initRoot<capnp::DynamicStruct>(s.schema);
    codec.decode(kj::ArrayPtr<const char>(line.data(), line.size()), root);
    ++r.records;
  }
  r.seconds = since(start);
  return r;
}

phase_result run_json_pipeline(const std::string& input, const std::string& dir, bool verbose) {
  if (!verbose)
    set_log_level(log_level::warn);
  phase_result r;
  auto yaml = dir + "/app.yaml";
  {
    std::ofstream f{yaml};
    f << "app: json_bench\n"
         "durability: process\n"
         "schema: {file: " TROUPE_QUICKSTART_SCHEMA ", payload: Order}\n"
         "stages:\n"
         "  - name: read\n"
         "    type: jsonl_source\n"
         "    path: " << input << "\n"
         "    outputs: {out: orders}\n"
         "  - name: write\n"
         "    type: jsonl_sink\n"
         "    inputs: [orders]\n"
         "    path: " << dir << "/out.jsonl\n";
  }
  registry reg;
  register_builtin_stages(reg);
  auto loaded = load_app(yaml, reg, dir + "/data");
  if (!loaded.issues.empty()) {
    r.fail("the bench app does not load: " + loaded.issues.front().to_string());
    return r;
  }
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::max(2u, std::thread::hardware_concurrency()));
  caf::actor_system sys{cfg};
  auto start = clock_type::now();
  auto outcome = run_node(sys, *loaded.app);
  r.seconds = since(start);
  if (outcome.exit_code != 0) {
    r.fail("the node failed: " + outcome.message);
    return r;
  }
  std::ifstream out{dir + "/out.jsonl", std::ios::binary};
  for (std::string line; std::getline(out, line);)
    ++r.records;
  return r;
}

} // namespace troupe::bench
