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

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace troupe::test {

class temp_dir {
public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "troupe-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~temp_dir() {
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

} // namespace troupe::test
