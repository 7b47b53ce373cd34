// What the config tests share: the fake stage types the fixtures in tests/data/config/ use, a
// loaded app with its registry, and assertions on issues by field, line and column.
#pragma once

#include "config/app_config.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <unistd.h>

namespace troupe::test {

namespace fs = std::filesystem;


inline const std::string dir = std::string(TROUPE_TEST_DATA) + "/config/";

using maker = std::unique_ptr<stage_base> (*)(const params&);

inline std::unique_ptr<stage_base> build_nothing(const params&) {
  return nullptr;
}

inline std::unique_ptr<stage_base> build_strict(const params& p) {
  p.get_u64("limit", 10);
  if (p.get_string("mode", "ok") == "bad")
    p.fail("mode", "must not be 'bad'");
  return nullptr;
}

inline std::unique_ptr<stage_base> build_throwing(const params&) {
  throw config_error("this stage never likes its params");
}

inline std::unique_ptr<stage_base> build_pathy(const params& p) {
  p.get_path("path");
  return nullptr;
}

inline std::unique_ptr<stage_base> build_schema_user(const params& p) {
  if (!p.payload_schema())
    throw config_error("needs the payload schema (add schema: to the app)");
  return nullptr;
}

inline stage_type type(std::string name, stage_kind kind, maker make = build_nothing) {
  stage_type t;
  t.name = std::move(name);
  t.kind = kind;
  t.make = make;
  return t;
}

// The fake stage types the fixtures use.
inline void add_test_types(registry& reg) {
  reg.add(type("test.source", stage_kind::source)).outputs({"out"}).params({"path"});
  reg.add(type("test.op", stage_kind::op))
    .outputs({"out"})
    .optional_outputs({"rejects"})
    .params({"factor", "enabled", "limit", "tags", "absent", "missing"});
  reg.add(type("test.sink", stage_kind::sink));
  reg.add(type("test.strict", stage_kind::op, build_strict)).outputs({"out"}).params({"limit", "mode"});
  reg.add(type("test.throws", stage_kind::op, build_throwing)).outputs({"out"});
  reg.add(type("test.pathy", stage_kind::sink, build_pathy)).params({"path"});
  reg.add(type("test.schema_sink", stage_kind::sink, build_schema_user)).owns_paths({"path"});
}

// A registry and what loading a file into it gave; the registry outlives the app's type_info.
struct loaded {
  registry reg;
  load_result result;
  std::string file; // as loaded

  explicit loaded(const std::string& name, const std::string& data_dir_override = "") {
    add_test_types(reg);
    file = name.find('/') == std::string::npos ? dir + name : name;
    result = load_app(file, reg, data_dir_override);
  }
  // With --set overrides and stage types of the test's own beside the shared ones.
  loaded(const std::string& name, const load_options& options,
         const std::function<void(registry&)>& extra = {}) {
    add_test_types(reg);
    if (extra)
      extra(reg);
    file = name.find('/') == std::string::npos ? dir + name : name;
    result = load_app(file, reg, options);
  }
  const std::vector<config_issue>& issues() const { return result.issues; }
  const app_config& app() const { return *result.app; }
};

inline std::string dump(const std::vector<config_issue>& issues) {
  std::string out;
  for (const auto& i : issues)
    out += i.to_string() + "\n";
  return out.empty() ? "(no issues)" : out;
}

inline const config_issue* find_issue(const std::vector<config_issue>& issues, const std::string& field,
                               int line) {
  for (const auto& i : issues)
    if (i.field == field && i.line == line)
      return &i;
  return nullptr;
}

// Asserts that there is an issue about `field` at line:column whose message contains `text`.
inline void check_issue(const loaded& l, const std::string& field, int line, int column,
                 const std::string& text) {
  INFO("issues:\n" << dump(l.issues()));
  INFO("looking for " << field << " at " << line << ":" << column);
  auto* issue = find_issue(l.issues(), field, line);
  REQUIRE(issue != nullptr);
  CHECK(issue->column == column);
  CHECK_THAT(issue->message, Catch::Contains(text));
  CHECK(issue->file == l.file);
}

inline bool any_issue_about(const loaded& l, const std::string& field_prefix) {
  for (const auto& i : l.issues())
    if (i.field.compare(0, field_prefix.size(), field_prefix) == 0)
      return true;
  return false;
}

// A fresh directory under the system's temp dir, removed at the end of the test.
struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path() /
           ("troupe-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string write(const std::string& name, const std::string& text) const {
    auto file = path / name;
    std::ofstream(file) << text;
    return file.string();
  }
};


} // namespace troupe::test
