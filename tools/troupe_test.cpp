// `troupe test APP.yaml CASES.yaml`: each case runs one stage of the app alone, in a node of its
// own in a fresh temporary data dir: its input edges are fed the case's JSON lines (a
// jsonl_source each), its output ports are written to files (a jsonl_sink each), and then the
// records of each port listed under `expect` and the stage's dead letters are compared with the
// case's. Records compare as the edge's struct sees them: both sides go through troupe's JSON
// codec, so key order, spacing, escapes and fields left at their default do not matter.
#include "troupe_test.hpp"

#include "base/log.hpp"
#include "builtin_stages.hpp"
#include "node/node.hpp"
#include "store/store.hpp"
#include "supervision/supervisor.hpp"

#include "envelope.capnp.h"

#include <troupe/json.hpp>

#include <capnp/serialize.h>
#include <caf/all.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace fs = std::filesystem;

namespace troupe::cli {

namespace {

struct test_case {
  std::string name, stage, key;
  std::map<std::string, std::vector<std::string>> inputs; // edge -> JSON lines
  std::map<std::string, std::vector<std::string>> expect; // port -> JSON lines
  std::vector<std::string> dead_letters;                  // substrings of the reasons, in order
  bool ordered = true;                                    // false: compare each port as a multiset
  int line = 0;
};

std::vector<std::string> lines_of(const YAML::Node& n) {
  std::vector<std::string> out;
  if (n.IsSequence()) { // a list of JSON strings
    for (const auto& item : n)
      out.push_back(item.as<std::string>());
    return out;
  }
  std::istringstream in{n.as<std::string>()}; // a block of JSON lines
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos)
      out.push_back(line);
  return out;
}

// The cases file, strictly: unknown keys are errors with their line.
std::optional<std::vector<test_case>> read_cases(const std::string& file, std::string& error) {
  auto where = [&](const YAML::Node& n) { return file + ":" + std::to_string(n.Mark().line + 1) + ": "; };
  try {
    auto root = YAML::LoadFile(file);
    if (!root["cases"] || !root["cases"].IsSequence()) {
      error = file + ": expected `cases:` with a list of cases";
      return std::nullopt;
    }
    std::vector<test_case> cases;
    for (const auto& c : root["cases"]) {
      test_case t;
      t.line = c.Mark().line + 1;
      for (const auto& kv : c) {
        auto k = kv.first.as<std::string>();
        if (k != "name" && k != "stage" && k != "input" && k != "inputs" && k != "expect" &&
            k != "dead_letters" && k != "key" && k != "ordered") {
          error = where(kv.first) + "unknown key '" + k + "' in a case (its keys: name, stage, " +
                  "input, inputs, key, expect, ordered, dead_letters)";
          return std::nullopt;
        }
      }
      if (!c["stage"]) {
        error = where(c) + "a case needs `stage:`, the stage it feeds";
        return std::nullopt;
      }
      t.stage = c["stage"].as<std::string>();
      t.name = c["name"] ? c["name"].as<std::string>() : t.stage + " (line " + std::to_string(t.line) + ")";
      if (c["key"])
        t.key = c["key"].as<std::string>();
      if (c["ordered"])
        t.ordered = c["ordered"].as<bool>();
      if (c["input"])
        t.inputs[""] = lines_of(c["input"]); // the stage's one input edge
      if (c["inputs"])
        for (const auto& kv : c["inputs"])
          t.inputs[kv.first.as<std::string>()] = lines_of(kv.second);
      if (c["expect"])
        for (const auto& kv : c["expect"])
          t.expect[kv.first.as<std::string>()] = lines_of(kv.second);
      if (c["dead_letters"])
        for (const auto& d : c["dead_letters"])
          t.dead_letters.push_back(d.as<std::string>());
      cases.push_back(std::move(t));
    }
    return cases;
  } catch (const YAML::Exception& e) {
    error = file + ": " + e.what();
    return std::nullopt;
  }
}

YAML::Node stage_node(const std::string& app_file, const std::string& name) {
  auto root = YAML::LoadFile(app_file);
  for (const auto& s : root["stages"])
    if (s["name"] && s["name"].as<std::string>() == name)
      return s;
  return {};
}

// JSON lines, each put through the struct's codec: the form the sink writes.
std::optional<std::string> canonical(const std::string& line, capnp::StructSchema s,
                                     std::string& error) {
  json_decoder dec{s};
  capnp::DynamicStruct::Reader value;
  if (auto err = dec.decode(line, value)) {
    error = err->to_string();
    return std::nullopt;
  }
  json_encoder enc{s};
  std::string out;
  if (auto err = enc.encode(value, out)) {
    error = err->to_string();
    return std::nullopt;
  }
  return out;
}

std::vector<std::string> file_lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in{path};
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

// Runs one case; prints what differs. True when it passed.
bool run_case(const app_config& app, const std::string& app_file, const test_case& t) {
  auto fail = [&](const std::string& why) {
    std::cout << "FAIL " << t.name << "\n  " << why << "\n";
    return false;
  };
  auto it = std::find_if(app.stages.begin(), app.stages.end(),
                         [&](const stage_config& s) { return s.name == t.stage; });
  if (it == app.stages.end())
    return fail("the app has no stage '" + t.stage + "'");
  const auto& s = *it;
  if (s.inputs.empty())
    return fail("stage '" + t.stage + "' is a source: it has no input to feed");
  auto carried = [&](const std::string& edge) -> const edge_payload* {
    auto e = app.edge_payloads.find(edge);
    return e == app.edge_payloads.end() ? nullptr : &e->second;
  };
  auto dir = fs::temp_directory_path() / ("troupe-test-" + std::to_string(::getpid()) + "-" +
                                          std::to_string(t.line));
  fs::remove_all(dir);
  fs::create_directories(dir);
  struct cleanup {
    fs::path d;
    ~cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } keep{dir};

  YAML::Node y;
  y["app"] = app.name + "_test";
  y["durability"] = "process";
  YAML::Node schema;
  for (const auto& f : app.schema_files)
    schema["files"].push_back(f);
  y["schema"] = schema;
  for (const auto& p : app.plugins)
    y["plugins"].push_back(p);
  YAML::Node stages;
  auto edge_of = [&](const std::string& e) {
    YAML::Node n;
    if (const auto* c = carried(e))
      n["type"] = c->name;
    y["edges"][e] = n;
  };
  for (size_t i = 0; i < s.inputs.size(); ++i) {
    const auto& e = s.inputs[i];
    if (!carried(e))
      return fail("edge '" + e + "' carries no struct, so JSON cannot feed it");
    auto records = t.inputs.count(e) ? t.inputs.at(e)
                 : (s.inputs.size() == 1 && t.inputs.count("")) ? t.inputs.at("")
                 : std::vector<std::string>{};
    std::ofstream f{(dir / ("in_" + std::to_string(i) + ".jsonl")).string()};
    for (const auto& r : records)
      f << r << "\n";
    YAML::Node src;
    src["name"] = "troupe_test_in_" + std::to_string(i);
    src["type"] = "jsonl_source";
    src["path"] = (dir / ("in_" + std::to_string(i) + ".jsonl")).string();
    if (!t.key.empty())
      src["key"] = t.key;
    src["output"] = e;
    stages.push_back(src);
    edge_of(e);
  }
  for (const auto& [port, given] : t.inputs)
    if (!given.empty() && !port.empty() && std::find(s.inputs.begin(), s.inputs.end(), port) == s.inputs.end())
      return fail("stage '" + t.stage + "' does not read edge '" + port + "'");
  stages.push_back(stage_node(app_file, t.stage));
  for (const auto& [port, edge] : s.outputs) {
    if (!carried(edge))
      return fail("edge '" + edge + "' carries no struct, so its records cannot be compared as JSON");
    YAML::Node sink;
    sink["name"] = "troupe_test_out_" + port;
    sink["type"] = "jsonl_sink";
    sink["input"] = edge;
    sink["path"] = (dir / ("out_" + port + ".jsonl")).string();
    stages.push_back(sink);
    edge_of(edge);
  }
  y["stages"] = stages;
  auto output_named = [&](const std::string& port) {
    return std::find_if(s.outputs.begin(), s.outputs.end(),
                        [&](const auto& o) { return o.first == port; });
  };
  for (const auto& expected : t.expect)
    if (output_named(expected.first) == s.outputs.end())
      return fail("stage '" + t.stage + "' has no connected output port '" + expected.first + "'");
  {
    std::ofstream f{(dir / "app.yaml").string()};
    f << YAML::Dump(y) << "\n";
  }

  registry reg;
  register_builtin_stages(reg);
  auto loaded = load_app((dir / "app.yaml").string(), reg, (dir / "data").string());
  if (loaded.errors()) {
    std::string all;
    for (const auto& i : loaded.issues)
      all += "\n  " + i.to_string();
    return fail("the case's app does not load:" + all);
  }
  node_outcome outcome;
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", std::max(2u, std::thread::hardware_concurrency()));
    caf::actor_system sys{cfg};
    outcome = run_node(sys, *loaded.app, [](caf::actor) {});
  }
  if (outcome.exit_code != 0)
    return fail("the stage's node failed: " + outcome.message);

  bool ok = true;
  std::string report;
  for (const auto& [port, want_lines] : t.expect) {
    auto edge = output_named(port)->second;
    auto schema_of = carried(edge)->schema;
    auto got = file_lines((dir / ("out_" + port + ".jsonl")).string());
    std::vector<std::string> want;
    for (const auto& w : want_lines) {
      std::string err;
      auto c = canonical(w, schema_of, err);
      if (!c)
        return fail("an expected record of port '" + port + "' is not valid " + carried(edge)->name +
                    ": " + err + "\n    " + w);
      want.push_back(*c);
    }
    if (!t.ordered) { // records of different partitions come in no defined order
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
    }
    if (got == want)
      continue;
    ok = false;
    report += "\n  port '" + port + "': " + std::to_string(got.size()) + " records, expected " +
              std::to_string(want.size());
    for (size_t i = 0; i < std::max(got.size(), want.size()); ++i)
      if (i >= got.size() || i >= want.size() || got[i] != want[i]) {
        report += "\n    record " + std::to_string(i + 1) + "\n      expected: " +
                  (i < want.size() ? want[i] : "(nothing)") + "\n      got:      " +
                  (i < got.size() ? got[i] : "(nothing)");
        break;
      }
  }
  // The stage's dead letters, from its store.
  store_options opts;
  opts.dir = loaded.app->data_dir;
  opts.map_size = loaded.app->map_size;
  opts.mode = loaded.app->mode;
  auto db = store::open(opts, layout_of(*loaded.app));
  if (!db)
    return fail("cannot reopen the case's store: " + describe(db.error()));
  auto reader = (*db)->reader();
  std::vector<std::string> reasons;
  if (!reader->refresh())
    if (auto dead = reader->dead_letters(*(*db)->find_stage(t.stage)))
      for (const auto& e : *dead) {
        auto words = kj::heapArray<capnp::word>(e.bytes.size() / sizeof(capnp::word));
        std::memcpy(words.begin(), e.bytes.data(), e.bytes.size());
        capnp::FlatArrayMessageReader msg{kj::ArrayPtr<const capnp::word>(words.begin(), words.size())};
        reasons.push_back(msg.getRoot<schema::DeadLetter>().getError().cStr());
      }
  bool dead_ok = reasons.size() == t.dead_letters.size();
  for (size_t i = 0; dead_ok && i < reasons.size(); ++i)
    dead_ok = reasons[i].find(t.dead_letters[i]) != std::string::npos;
  if (!dead_ok) {
    ok = false;
    report += "\n  dead letters: " + std::to_string(reasons.size()) + ", expected " +
              std::to_string(t.dead_letters.size());
    for (const auto& r : reasons)
      report += "\n    got: " + r;
    for (const auto& w : t.dead_letters)
      report += "\n    expected one containing: " + w;
  }
  if (!ok)
    return fail("differs:" + report);
  std::cout << "ok   " << t.name << "\n";
  return true;
}

} // namespace

int test_app(const app_config& app, const std::string& app_file, const std::string& cases_file) {
  std::string error;
  auto cases = read_cases(cases_file, error);
  if (!cases) {
    std::cerr << "troupe test: " << error << "\n";
    return 2;
  }
  set_log_level(log_level::warn); // the cases' nodes are small; their info lines are noise
  size_t failed = 0;
  for (const auto& c : *cases)
    failed += run_case(app, app_file, c) ? 0 : 1;
  std::cout << cases->size() - failed << " of " << cases->size() << " cases passed\n";
  return failed ? 1 : 0;
}

} // namespace troupe::cli
