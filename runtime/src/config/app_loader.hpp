// The loader behind load_app: one object per load that walks the YAML tree, fills an
// app_config and reports every issue it finds (see app_config.cpp for the passes and their
// order). Private to the runtime; its parts are defined where they are about:
//   app_config.cpp       the settings, `edges:`, the stages, building them
//   plugins.cpp          `plugins:`
//   app_schema.cpp       `schema:` and the structs edges name
//   app_payload_checks.cpp what each edge carries, against its producer and consumers
//   app_graph_checks.cpp ports, the graph of edges, cycles
//   app_paths.cpp        the files stages write (owned) and read
//   app_admin.cpp        `admin:`, the node's HTTP endpoint, and `alerts:`
//   app_nodes.cpp        `nodes:`, `links:` and each stage's `node:`
#pragma once

#include "config/app_config.hpp"
#include "config/yaml_params.hpp"
#include "config/yaml_reader.hpp"

#include <capnp/schema-parser.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>


namespace troupe::detail {

struct edge_ref {
  std::string edge;
  std::string field; // "stages[1].inputs[0]", "stages[1].outputs.out"
  YAML::Mark mark;
};

struct stage_draft {
  stage_config cfg;
  std::string field; // "stages[i]"
  YAML::Mark mark;
  std::map<std::string, yaml_params::value, std::less<>> own; // the stage's params
  std::vector<edge_ref> inputs;
  std::vector<std::pair<std::string, edge_ref>> outputs; // port -> edge
  // As written (input or inputs, ...); optional because a default YAML::Node is a defined null.
  std::optional<YAML::Node> inputs_key, outputs_key, workers_value, node_value;
  bool nodes_list = false; // placed with `nodes:` (a list)
  bool buildable = true; // false when building it would only repeat a reported problem
};

struct edge_override {
  edge_spec spec;
  std::string field;
  YAML::Mark mark;
  // `type:`, as written and as resolved (unset when absent or when it did not resolve).
  std::string type_name;
  YAML::Mark type_mark;
  std::optional<capnp::StructSchema> type;
};

struct parsed_file {
  std::string text; // as listed in the YAML
  std::string path; // absolute
  capnp::ParsedSchema parsed;
};

class app_loader {
public:
  app_loader(const std::string& path, registry& reg, load_options options)
      : r_(path), reg_(reg), options_(std::move(options)) {
    app_.file = path;
  }

  load_result run();

private:
  void load();
  void read_settings(const YAML::Node& root);
  void read_admin(const YAML::Node& admin);
  void read_alerts(const YAML::Node& alerts);
  void read_schedule(const YAML::Node& schedule);
  void read_log(const YAML::Node& log);
  void read_nodes(const YAML::Node& nodes, const YAML::Node& links);
  void check_nodes();
  void read_tls(const YAML::Node& tls);
  std::string tls_file(const YAML::Node& at, const std::string& field, const std::string& path);

  // ---- plugins
  void read_plugins(const YAML::Node& list);
  std::optional<std::string> resolve_plugin(const std::string& entry, std::string& error);

  // ---- schema
  void read_schema(const YAML::Node& schema);
  bool read_import_path(const YAML::Node& list, std::vector<std::string>& dirs);
  std::optional<capnp::StructSchema> resolve_struct(const std::string& name, const YAML::Node& at,
                                                    const std::string& field);

  // ---- edges
  void read_edges(const YAML::Node& edges);
  void read_edge(const YAML::Node& n, const std::string& field, edge_spec& spec);
  void read_edge_type(const YAML::Node& n, const std::string& field, edge_override& e);

  // ---- stages
  void read_stages(const YAML::Node& root);
  stage_draft read_stage(const YAML::Node& n, const std::string& field);
  void read_inputs(const YAML::Node& n, stage_draft& s);
  void read_outputs(const YAML::Node& n, stage_draft& s);
  bool check_param_key(const stage_draft& s, const YAML::Node& key);
  void check_ports(stage_draft& s);
  void check_graph();
  void check_cycles(const std::vector<std::vector<std::pair<size_t, const edge_ref*>>>& readers);
  void check_paths();
  void check_payloads();
  void build_stages();
  void try_make(const stage_draft& s, const params& p);

  reporter r_;
  registry& reg_;
  load_options options_;
  app_config app_;
  std::shared_ptr<schema_loader> schemas_;
  std::vector<parsed_file> parsed_files_;
  bool schema_given_ = false;
  bool schema_failed_ = true; // until the payload struct is found
  batch_config default_batch_;
  retry_config default_retry_;
  supervision_config default_supervision_;
  std::map<std::string, edge_override> edge_overrides_;
  std::vector<stage_draft> stages_;
  std::map<std::string, YAML::Mark> node_marks_; // where `nodes:` names each node
};

} // namespace troupe::detail
