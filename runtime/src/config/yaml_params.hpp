// The params a stage sees: its own keys, copied out of the YAML tree. A plain copy, so nothing
// of yaml-cpp is touched after loading and any worker thread may read it.
#pragma once

#include "config/app_config.hpp"

#include <troupe/stage.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::detail {

// A config_error that knows where it is: thrown by yaml_params, so that the loader can report
// the exact key even though the error passed through a stage's constructor.
class located_config_error : public config_error {
public:
  explicit located_config_error(config_issue issue)
      : config_error(issue.to_string()), issue_(std::move(issue)) {}
  const config_issue& issue() const { return issue_; }

private:
  config_issue issue_;
};

class yaml_params final : public params {
public:
  struct value {
    enum class kind { null, scalar, map, list } what = kind::null;
    std::string text; // the scalar's text
    std::vector<std::string> items; // a list's elements, when all of them are scalars
    bool scalar_items = false;
    struct entry { // a map's entries, in the YAML's order
      std::string key, text;
      bool scalar = false;
      int line = 0, column = 0;
    };
    std::vector<entry> entries;
    int line = 0;
    int column = 0;
  };

  // The structs the stage's edges carry: the app's default, by output port, by input edge.
  struct payloads {
    std::optional<capnp::StructSchema> fallback;
    std::map<std::string, capnp::StructSchema, std::less<>> ports, inputs;
    std::vector<std::string> connected_ports, input_edges; // all of them, struct or not
  };

  // `declared`: the params the stage's type declares; reading any other key is a bug of the
  // type's registration, reported as a config_error naming `type`.
  yaml_params(std::string file, std::string field, int line, int column, std::string base_dir,
              std::map<std::string, value, std::less<>> values, std::string type,
              std::vector<std::string> declared, std::shared_ptr<schema_loader> schemas,
              payloads structs)
      : file_(std::move(file)), field_(std::move(field)), line_(line), column_(column),
        base_dir_(std::move(base_dir)), values_(std::move(values)), type_(std::move(type)),
        declared_(std::move(declared)), schemas_(std::move(schemas)),
        structs_(std::move(structs)) {}

  bool has(std::string_view key) const override;
  std::string get_string(std::string_view key) const override;
  std::string get_string(std::string_view key, std::string_view fallback) const override;
  uint64_t get_u64(std::string_view key, uint64_t fallback) const override;
  double get_double(std::string_view key, double fallback) const override;
  bool get_bool(std::string_view key, bool fallback) const override;
  std::chrono::milliseconds get_duration(std::string_view key,
                                         std::chrono::milliseconds fallback) const override;
  std::string get_path(std::string_view key) const override;
  std::vector<std::string> get_strings(std::string_view key) const override;
  std::vector<std::pair<std::string, std::string>> get_map(std::string_view key) const override;
  std::vector<std::string> output_ports() const override { return structs_.connected_ports; }
  std::vector<std::string> input_edges() const override { return structs_.input_edges; }
  std::optional<capnp::StructSchema> payload_schema() const override { return structs_.fallback; }
  std::optional<capnp::StructSchema> output_schema(std::string_view port) const override;
  std::optional<capnp::StructSchema> input_schema(std::string_view edge) const override;
  [[noreturn]] void fail(std::string_view key, std::string_view message) const override;

private:
  const value* find(std::string_view key) const;
  std::string field_of(std::string_view key) const;
  static std::string describe(const value& v);
  const std::string& scalar(std::string_view key, const value& v, const char* expected) const;
  [[noreturn]] void throw_at(const value& v, std::string_view key, std::string message) const;
  void reject_null(std::string_view key, const value& v) const;
  [[noreturn]] void throw_missing(std::string_view key, const char* expected) const;

  std::string file_;
  std::string field_; // "stages[3]"
  int line_, column_; // of the stage's map
  std::string base_dir_;
  std::map<std::string, value, std::less<>> values_;
  std::string type_;
  std::vector<std::string> declared_;
  std::shared_ptr<schema_loader> schemas_; // keeps structs_ valid
  payloads structs_;
};

} // namespace troupe::detail
