// Runs small apps in-process for tests: a temp directory, an app YAML written into it, a
// registry with the built-in stages plus the test's own, and a CAF actor system.
#pragma once

#include "config/app_config.hpp"
#include "builtin_stages.hpp"
#include "codec/codec.hpp"
#include "node/node.hpp"
#include "store/store.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <catch2/catch.hpp>

#include <capnp/serialize.h>

#include <cstring>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace troupe::test {

// A fresh directory under the temp dir, removed with everything in it at the end of the test.
class temp_dir {
public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "troupe-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  // TROUPE_TEST_KEEP=1 keeps it, to look at after a failure.
  ~temp_dir() {
    if (std::getenv("TROUPE_TEST_KEEP"))
      return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary};
  out << text;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Loads `yaml` (written to dir/app.yaml) against builtins + whatever `extra` registers.
struct loaded_app {
  registry reg;
  load_result result;
  const app_config& app() const { return *result.app; }
};

template <class Extra>
std::unique_ptr<loaded_app> load_yaml(const temp_dir& dir, const std::string& yaml, Extra extra) {
  auto out = std::make_unique<loaded_app>();
  register_builtin_stages(out->reg);
  extra(out->reg);
  write_file(dir / "app.yaml", yaml);
  out->result = load_app(dir / "app.yaml", out->reg, dir / "data");
  for (const auto& issue : out->result.issues)
    UNSCOPED_INFO(issue.to_string());
  REQUIRE(out->result.issues.empty());
  return out;
}

inline node_outcome run_app(const app_config& app) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  return run_node(sys, app);
}

inline std::unique_ptr<store> open_store(const app_config& app) {
  store_options opts;
  opts.dir = app.data_dir;
  opts.map_size = app.map_size;
  opts.mode = app.mode;
  auto db = store::open(opts, layout_of(app));
  REQUIRE(db);
  return std::move(*db);
}

// The indexes of the Generated records in an edge: partition by partition, each in log order.
inline std::vector<uint64_t> indexes_in(store& db, const std::string& edge) {
  auto reader = db.reader();
  REQUIRE_FALSE(reader->refresh());
  std::vector<uint64_t> out;
  envelope_decoder dec;
  auto e = *db.find_edge(edge);
  for (partition_id p = 0; p < db.layout().edges[e].partitions; ++p) {
    auto n = reader->read(e, p, 0, SIZE_MAX, [&](uint64_t, std::string_view bytes) {
      REQUIRE_FALSE(dec.decode(bytes));
      out.push_back(dec.root().getPayload().getAs<schema::Generated>().getIndex());
      return true;
    });
    REQUIRE(n);
  }
  return out;
}

// A value read from the store that must be there and readable.
template <class T>
T must(caf::expected<T> x) {
  if (!x)
    FAIL("store read failed: " << describe(x.error()));
  return std::move(*x);
}

// 0 .. n-1 without those in `skip`.
inline std::vector<uint64_t> iota_except(uint64_t n, const std::set<uint64_t>& skip = {}) {
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < n; ++i)
    if (!skip.count(i))
      out.push_back(i);
  return out;
}

// The numbers in a file, one per line (an oracle's list of lines, say).
inline std::vector<uint64_t> numbers_in(const std::string& path) {
  std::vector<uint64_t> out;
  std::ifstream in{path};
  for (std::string line; std::getline(in, line);)
    out.push_back(std::stoull(line));
  return out;
}

// The dead letters of a stage of a stopped node, read from its store: the app file is loaded
// (plugins from TROUPE_PLUGIN_PATH) with `data_dir` as its data dir.
struct stored_dead_letter {
  std::string error;
  uint64_t input_seq = 0, source_position = 0;
  uint32_t attempts = 0;
  // The line it came from: a source's own position, or the source position it carried.
  uint64_t line() const { return source_position ? source_position : input_seq; }
};
inline std::vector<stored_dead_letter> stored_dead_letters(const app_config& app,
                                                           const std::string& stage) {
  auto db = open_store(app);
  auto reader = db->reader();
  REQUIRE_FALSE(reader->refresh());
  std::vector<stored_dead_letter> out;
  for (const auto& e : must(reader->dead_letters(*db->find_stage(stage)))) {
    auto words = kj::heapArray<capnp::word>(e.bytes.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), e.bytes.data(), e.bytes.size());
    capnp::FlatArrayMessageReader msg{kj::ArrayPtr<const capnp::word>(words.begin(), words.size())};
    auto dl = msg.getRoot<schema::DeadLetter>();
    out.push_back({dl.getError().cStr(), dl.getInputSeq(), dl.getSourcePosition(), dl.getAttempts()});
  }
  return out;
}
inline std::vector<stored_dead_letter> stored_dead_letters(const std::string& app_file,
                                                           const std::string& data_dir,
                                                           const std::string& stage) {
  registry reg;
  register_builtin_stages(reg);
  auto loaded = load_app(app_file, reg, data_dir);
  REQUIRE(loaded.issues.empty());
  return stored_dead_letters(*loaded.app, stage);
}

} // namespace troupe::test
