// Loading an app's YAML file (the format is documented in runtime/CONFIG.md).
//
// load_app reads the whole file and checks all of it before giving up, so that one run reports
// every mistake: each becomes a config_issue with the file, line, column and field path it is
// about. Checks that would only repeat an earlier mistake are skipped (a stage of an unknown
// type gets no port checks; stages are not built when the payload schema failed to load).
//
// Before any pass the tree is rewritten: the --set overrides, then `${NAME}` from the
// environment (yaml_overrides.cpp, yaml_env.cpp). Passes, in order: the top-level settings;
// plugins (so their types are known); the payload schema; `edges:` overrides; each stage on its
// own; the graph of edges across stages (cycles included); the files stages write and read;
// finally each stage is built once through its type's `make` (constructors only read their
// params) so that parameter errors surface at load time, as `troupe lint` needs. The passes over
// plugins, the schema, the graph and the files live in plugins.cpp, app_schema.cpp,
// app_graph_checks.cpp and app_paths.cpp; the helpers that read YAML nodes in yaml_reader.hpp.
#include "config/app_config.hpp"

#include "config/app_loader.hpp"
#include "config/yaml_overrides.hpp"

#include <kj/exception.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

namespace fs = std::filesystem;

namespace troupe {

namespace detail {

namespace {

const std::vector<std::string> top_keys = {"app",      "data_dir", "durability", "store",
                                           "plugins",  "schema",   "supervision", "defaults",
                                           "edges",    "stages",   "admin",      "alerts",
                                           "log",      "schedule", "nodes",      "links"};
constexpr uint32_t max_workers = 4096;
constexpr uint32_t max_partitions = 4096;

// The three policy maps: each overlays the keys it names onto `into`, so that a stage inherits
// from `defaults:` (and supervision from the top-level `supervision:`) key by key.

void read_batch(reporter& r, const YAML::Node& n, const std::string& field, batch_config& into) {
  if (!open_map(r, n, field))
    return;
  check_keys(r, n, field, {"max_items", "max_delay", "in_flight"});
  if (auto v = n["max_items"]; v.IsDefined())
    if (auto x = read_u32(r, v, field + ".max_items", 1))
      into.max_items = *x;
  if (auto v = n["max_delay"]; v.IsDefined())
    if (auto x = read_duration(r, v, field + ".max_delay", false))
      into.max_delay = *x;
  if (auto v = n["in_flight"]; v.IsDefined())
    if (auto x = read_u32(r, v, field + ".in_flight", 1, 64))
      into.in_flight = *x;
}

void read_retry(reporter& r, const YAML::Node& n, const std::string& field, retry_config& into) {
  if (!open_map(r, n, field))
    return;
  check_keys(r, n, field, {"max_attempts", "backoff"});
  if (auto v = n["max_attempts"]; v.IsDefined())
    if (auto x = read_u32(r, v, field + ".max_attempts", 1))
      into.max_attempts = *x;
  if (auto v = n["backoff"]; v.IsDefined())
    if (auto x = read_duration(r, v, field + ".backoff", false))
      into.backoff = *x;
}

void read_supervision(reporter& r, const YAML::Node& n, const std::string& field,
                      supervision_config& into) {
  if (!open_map(r, n, field))
    return;
  check_keys(r, n, field, {"strategy", "max_restarts", "within", "backoff"});
  if (auto v = n["strategy"]; v.IsDefined())
    if (auto x = read_enum<restart_strategy>(r, v, field + ".strategy",
                                             {{"one_for_one", restart_strategy::one_for_one},
                                              {"one_for_all", restart_strategy::one_for_all},
                                              {"rest_for_one", restart_strategy::rest_for_one}}))
      into.strategy = *x;
  if (auto v = n["max_restarts"]; v.IsDefined())
    if (auto x = read_u32(r, v, field + ".max_restarts", 0))
      into.max_restarts = *x;
  if (auto v = n["within"]; v.IsDefined())
    if (auto x = read_duration(r, v, field + ".within", true))
      into.within = *x;
  const YAML::Node backoff = n["backoff"];
  auto bfield = field + ".backoff";
  if (!open_map(r, backoff, bfield))
    return;
  check_keys(r, backoff, bfield, {"min", "max", "jitter"});
  bool ok = true;
  if (auto v = backoff["min"]; v.IsDefined()) {
    auto x = read_duration(r, v, bfield + ".min", false);
    ok = ok && x;
    if (x)
      into.backoff_min = *x;
  }
  if (auto v = backoff["max"]; v.IsDefined()) {
    auto x = read_duration(r, v, bfield + ".max", false);
    ok = ok && x;
    if (x)
      into.backoff_max = *x;
  }
  if (auto v = backoff["jitter"]; v.IsDefined())
    if (auto x = read_fraction(r, v, bfield + ".jitter"))
      into.jitter = *x;
  if (ok && into.backoff_min > into.backoff_max)
    r.at(backoff, bfield,
         "expected min <= max, found min " + std::to_string(into.backoff_min.count()) +
             "ms and max " + std::to_string(into.backoff_max.count()) + "ms");
}

// The first line up to `error_line` (0-based) whose indentation holds a tab: yaml-cpp's own
// messages for those ("illegal map value", "illegal block entry") do not say so.
std::optional<YAML::Mark> tab_indent(const std::string& text, int error_line) {
  std::istringstream lines(text);
  std::string line;
  for (int n = 0; n <= error_line + 1 && std::getline(lines, line); ++n) {
    auto indent = line.find_first_not_of(" \t");
    auto tab = line.find('\t');
    if (tab != std::string::npos && (indent == std::string::npos || tab < indent)) {
      YAML::Mark m;
      m.line = n;
      m.column = int(tab);
      return m;
    }
  }
  return std::nullopt;
}

} // namespace

load_result app_loader::run() {
  load_result out;
  try {
    load();
  } catch (const std::exception& e) { // a bug of the loader; never let it escape
    r_.at(YAML::Mark::null_mark(), "", std::string("internal error while loading: ") + e.what());
  }
  out.schemas = schemas_;
  bool ok = r_.errors() == 0;
  out.issues = r_.take();
  if (ok)
    out.app = std::move(app_);
  return out;
}

void app_loader::load() {
  YAML::Node root;
  std::error_code ec;
  if (!fs::is_regular_file(app_.file, ec)) {
    r_.at(YAML::Mark::null_mark(), "",
          "cannot read the app file: it does not exist or is not a file");
    return;
  }
  std::ifstream in(app_.file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    r_.at(YAML::Mark::null_mark(), "", "cannot read the app file");
    return;
  }
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::ParserException& e) {
    if (auto tab = tab_indent(text.str(), e.mark.line))
      r_.at(*tab, "", "a tab is used for indentation; YAML indents with spaces only");
    else
      r_.at(e.mark, "", "YAML syntax error: " + e.msg);
    return;
  }
  if (!root.IsMap()) {
    r_.expected(root, "", "a map of app settings (app, stages, ...)");
    return;
  }
  app_.base_dir = absolute_path(fs::path(app_.file).parent_path());
  apply_overrides(r_, root, options_.overrides);
  substitute_env(r_, root); // after: an override replaces a value before it is read
  check_keys(r_, root, "", top_keys);
  read_settings(root);
  read_plugins(root["plugins"]);
  read_schema(root["schema"]);
  read_edges(root["edges"]);
  read_stages(root);
  read_alerts(root["alerts"]);
  read_nodes(root["nodes"], root["links"]);
  check_nodes();
  check_graph();
  check_paths();
  check_payloads();
  build_stages();
}

void app_loader::read_settings(const YAML::Node& root) {
  if (auto v = root["app"]; !v.IsDefined())
    r_.at(root, "app", "missing required key 'app' (the app's name)");
  else if (auto name = read_name(r_, v, "app", "an app name"))
    app_.name = *name;

  std::string data_dir = options_.data_dir;
  if (auto v = root["data_dir"]; v.IsDefined())
    if (auto dir = read_string(r_, v, "data_dir", "a directory"); dir && data_dir.empty())
      data_dir = *dir;
  if (data_dir.empty())
    data_dir = "troupe-data/" + app_.name;
  app_.data_dir = absolute_path(data_dir);

  if (auto v = root["durability"]; v.IsDefined())
    if (auto d = read_enum<durability>(
            r_, v, "durability", {{"process", durability::process}, {"sync", durability::sync}}))
      app_.mode = *d;

  if (const YAML::Node store = root["store"]; open_map(r_, store, "store")) {
    check_keys(r_, store, "store", {"map_size", "flush_interval", "stall_timeout"});
    if (auto v = store["map_size"]; v.IsDefined()) {
      auto size = v.IsScalar() ? parse_size(v.Scalar()) : std::nullopt;
      if (!size || *size < (uint64_t{4} << 20))
        r_.expected(v, "store.map_size", "a size of at least 4MiB such as 512MiB or 1GiB");
      else
        app_.map_size = *size;
    }
    if (auto v = store["flush_interval"]; v.IsDefined())
      if (auto d = read_duration(r_, v, "store.flush_interval", true))
        app_.flush_interval = *d;
    if (auto v = store["stall_timeout"]; v.IsDefined())
      if (auto d = read_duration(r_, v, "store.stall_timeout", true))
        app_.stall_timeout = *d;
  }

  read_admin(root["admin"]);
  read_schedule(root["schedule"]);
  read_log(root["log"]);
  read_supervision(r_, root["supervision"], "supervision", app_.node_supervision);
  default_supervision_ = app_.node_supervision;
  if (const YAML::Node defaults = root["defaults"]; open_map(r_, defaults, "defaults")) {
    check_keys(r_, defaults, "defaults", {"batch", "retry", "supervision"});
    read_batch(r_, defaults["batch"], "defaults.batch", default_batch_);
    read_retry(r_, defaults["retry"], "defaults.retry", default_retry_);
    read_supervision(r_, defaults["supervision"], "defaults.supervision", default_supervision_);
  }
}

// ---- edges

void app_loader::read_edges(const YAML::Node& edges) {
  if (!open_map(r_, edges, "edges"))
    return;
  check_keys(r_, edges, "edges", {});
  for (const auto& entry : edges) {
    YAML::Node key = entry.first;
    if (!key.IsScalar())
      continue;
    auto field = "edges." + key.Scalar();
    if (!valid_name(key.Scalar())) {
      read_name(r_, key, field, "an edge name");
      continue;
    }
    if (edge_overrides_.count(key.Scalar()))
      continue; // reported as given twice
    edge_override e{{}, field, key.Mark(), {}, {}, {}};
    e.spec.name = key.Scalar();
    auto& at = edge_overrides_.emplace(e.spec.name, std::move(e)).first->second;
    read_edge(entry.second, field, at.spec);
  }
}

void app_loader::read_edge(const YAML::Node& n, const std::string& field, edge_spec& spec) {
  if (!open_map(r_, n, field))
    return;
  check_keys(r_, n, field, {"partitions", "max_records", "max_bytes", "retention", "type"});
  if (auto v = n["type"]; v.IsDefined())
    read_edge_type(v, field + ".type", edge_overrides_.at(spec.name));
  if (auto v = n["partitions"]; v.IsDefined())
    if (auto x = read_u32(r_, v, field + ".partitions", 1, max_partitions))
      spec.partitions = *x;
  if (auto v = n["max_records"]; v.IsDefined())
    if (auto x =
            read_uint(r_, v, field + ".max_records", 1, std::numeric_limits<uint64_t>::max()))
      spec.max_records = *x;
  if (auto v = n["max_bytes"]; v.IsDefined()) {
    auto size = v.IsScalar() ? parse_size(v.Scalar()) : std::nullopt;
    if (!size || *size == 0)
      r_.expected(v, field + ".max_bytes", "a size > 0 such as 64MiB");
    else
      spec.max_bytes = *size;
  }
  const YAML::Node keep = n["retention"];
  auto kfield = field + ".retention";
  if (!open_map(r_, keep, kfield))
    return;
  check_keys(r_, keep, kfield, {"count", "age"});
  if (auto v = keep["count"]; v.IsDefined())
    if (auto x = read_uint(r_, v, kfield + ".count", 0, std::numeric_limits<uint64_t>::max()))
      spec.keep.count = *x;
  if (auto v = keep["age"]; v.IsDefined())
    if (auto x = read_duration(r_, v, kfield + ".age", false))
      spec.keep.age_ms = uint64_t(x->count());
}

// ---- stages

void app_loader::read_stages(const YAML::Node& root) {
  const YAML::Node list = root["stages"];
  if (!list.IsDefined()) {
    r_.at(root, "stages", "missing required key 'stages' (a non-empty list of stages)");
    return;
  }
  if (!list.IsSequence() || list.size() == 0) {
    r_.expected(list, "stages", "a non-empty list of stages");
    return;
  }
  std::map<std::string, int> first_line;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node n = list[i];
    auto field = index("stages", i);
    if (!n.IsMap()) {
      r_.expected(n, field, "a map with the stage's name, type, inputs and outputs");
      continue;
    }
    stage_draft s = read_stage(n, field);
    if (!s.cfg.name.empty()) {
      auto [at, fresh] = first_line.emplace(s.cfg.name, s.cfg.line);
      if (!fresh)
        r_.at(n["name"], field + ".name",
              "duplicate stage name '" + s.cfg.name + "' (first used at line " +
                  std::to_string(at->second) + ")");
    }
    check_ports(s);
    stages_.push_back(std::move(s));
  }
}

stage_draft app_loader::read_stage(const YAML::Node& n, const std::string& field) {
  stage_draft s;
  s.field = field;
  s.mark = n.Mark();
  s.cfg.line = line_of(s.mark);
  check_keys(r_, n, field, {}); // keys given twice; unknown ones below, once the type is known

  if (auto v = n["name"]; !v.IsDefined())
    r_.at(n, field + ".name", "missing required key 'name'");
  else if (auto name = read_name(r_, v, field + ".name", "a stage name"))
    s.cfg.name = *name;

  if (auto v = n["type"]; !v.IsDefined())
    r_.at(n, field + ".type", "missing required key 'type'");
  else if (auto type = read_string(r_, v, field + ".type", "a stage type")) {
    s.cfg.type = *type;
    s.cfg.type_info = reg_.find(*type);
    if (!s.cfg.type_info) {
      auto known = reg_.names();
      r_.at(v, field + ".type",
            "unknown stage type '" + *type + "'" + suggest(*type, known) + "; known types: " +
                (known.empty() ? "none (is a plugin missing?)" : join(known)));
    }
  }

  read_inputs(n, s);
  read_outputs(n, s);

  if (auto v = n["workers"]; v.IsDefined()) {
    s.workers_value = v;
    if (auto w = read_u32(r_, v, field + ".workers", 1, max_workers))
      s.cfg.workers = *w;
  }
  s.cfg.batch = default_batch_;
  s.cfg.retry = default_retry_;
  s.cfg.supervision = default_supervision_;
  read_batch(r_, n["batch"], field + ".batch", s.cfg.batch);
  read_retry(r_, n["retry"], field + ".retry", s.cfg.retry);
  read_supervision(r_, n["supervision"], field + ".supervision", s.cfg.supervision);
  if (auto v = n["lease"]; v.IsDefined()) {
    if (s.cfg.type_info && !s.cfg.type_info->leases)
      r_.at(v, field + ".lease",
            "'lease' is for stages that lease their items (a work_queue); type '" + s.cfg.type +
              "' divides its input by partition instead");
    else if (auto x = read_duration(r_, v, field + ".lease", true))
      s.cfg.lease = *x;
  }
  // How the stage subscribes to its inputs (publish/subscribe: runtime/CONFIG.md, "Consumer
  // groups").
  bool leasing = s.cfg.type_info && s.cfg.type_info->leases;
  auto subscription = [&](const char* key, std::vector<std::pair<std::string, bool>> choices,
                          bool& into) {
    auto v = n[key];
    if (!v.IsDefined())
      return;
    if (leasing)
      r_.at(v, field + "." + key, std::string("'") + key + "' is for stages that read their "
                                  "inputs by cursor; a work queue leases its items");
    else if (s.inputs.empty())
      r_.at(v, field + "." + key, std::string("'") + key + "' is about the edges a stage reads; "
                                  "stage '" + s.cfg.name + "' reads none");
    else if (auto c = read_enum<bool>(r_, v, field + "." + key, choices))
      into = *c;
  };
  if (auto v = n["node"]; v.IsDefined()) {
    s.node_value = v;
    if (auto name = read_name(r_, v, field + ".node", "a node name"))
      s.cfg.nodes = {*name};
  }
  if (auto v = n["nodes"]; v.IsDefined()) {
    if (s.node_value) {
      r_.at(v, field + ".nodes", "give 'node' (one) or 'nodes' (a list), not both");
    } else {
      s.node_value = v;
      s.nodes_list = true;
      if (!v.IsSequence() || v.size() == 0)
        r_.expected(v, field + ".nodes", "a non-empty list of node names such as [b, c]");
      else
        for (size_t i = 0; i < v.size(); ++i)
          if (auto name = read_name(r_, v[i], index(field + ".nodes", i), "a node name"))
            s.cfg.nodes.push_back(*name);
    }
  }
  subscription("start", {{"earliest", false}, {"latest", true}}, s.cfg.start_latest);
  subscription("slow", {{"hold", false}, {"skip", true}}, s.cfg.slow_skip);

  const auto& runtime_keys = runtime_stage_keys();
  for (const auto& entry : n) {
    if (!entry.first.IsScalar())
      continue;
    std::string key = entry.first.Scalar();
    if (std::find(runtime_keys.begin(), runtime_keys.end(), key) != runtime_keys.end())
      continue;
    if (s.cfg.type_info && !check_param_key(s, entry.first))
      continue;
    yaml_params::value v;
    YAML::Node node = entry.second;
    // `where: !flag` is a YAML tag, not text: the value would silently be nothing.
    if (const auto& tag = node.Tag(); tag.size() > 1 && tag[0] == '!') {
      r_.at(entry.first, s.field + "." + key,
            "YAML reads '" + tag + "' as a tag, not as text; quote the value: " + key + ": '" + tag +
                (node.IsScalar() && !node.Scalar().empty() ? " " + node.Scalar() : "") + "'");
      continue;
    }
    auto m = node.IsNull() ? entry.first.Mark() : node.Mark(); // a null's mark is the next token
    v.line = line_of(m);
    v.column = column_of(m);
    if (node.IsScalar()) {
      v.what = yaml_params::value::kind::scalar;
      v.text = node.Scalar();
    } else if (node.IsMap()) {
      v.what = yaml_params::value::kind::map;
      for (const auto& item : node) {
        yaml_params::value::entry e;
        e.key = item.first.IsScalar() ? item.first.Scalar() : std::string{};
        e.scalar = item.first.IsScalar() && item.second.IsScalar();
        if (item.second.IsScalar())
          e.text = item.second.Scalar();
        auto at = item.second.IsNull() ? item.first.Mark() : item.second.Mark();
        e.line = line_of(at);
        e.column = column_of(at);
        v.entries.push_back(std::move(e));
      }
    } else if (node.IsSequence()) {
      v.what = yaml_params::value::kind::list;
      v.scalar_items = true;
      for (const auto& item : node) {
        if (!item.IsScalar())
          v.scalar_items = false;
        else
          v.items.push_back(item.Scalar());
      }
    }
    s.own.emplace(key, std::move(v)); // a key given twice is reported by check_keys
  }
  return s;
}

// A key of the stage's own must be one its type declares; false (and an issue) when not.
bool app_loader::check_param_key(const stage_draft& s, const YAML::Node& key) {
  const auto& declared = s.cfg.type_info->params;
  const auto& name = key.Scalar();
  if (std::find(declared.begin(), declared.end(), name) != declared.end())
    return true;
  std::vector<std::string> all = runtime_stage_keys();
  all.insert(all.end(), declared.begin(), declared.end());
  r_.at(key, s.field + "." + name,
        "unknown key '" + name + "'" + suggest(name, all) + "; type '" + s.cfg.type + "' takes " +
            (declared.empty() ? "no params of its own" : join(declared)) +
            ", and the runtime's keys " + join(runtime_stage_keys()));
  return false;
}

void app_loader::read_inputs(const YAML::Node& n, stage_draft& s) {
  const YAML::Node list = n["inputs"];
  const YAML::Node one = n["input"];
  if (list.IsDefined() && one.IsDefined())
    r_.at(one, s.field + ".input", "give either 'input' or 'inputs', not both");
  if (one.IsDefined()) {
    s.inputs_key = one;
    if (auto edge = read_name(r_, one, s.field + ".input", "an edge name"))
      s.inputs.push_back({*edge, s.field + ".input", one.Mark()});
    return;
  }
  if (!list.IsDefined())
    return;
  s.inputs_key = list;
  if (!list.IsSequence()) {
    r_.expected(list, s.field + ".inputs", "a list of edge names");
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    auto field = index(s.field + ".inputs", i);
    auto edge = read_name(r_, list[i], field, "an edge name");
    if (!edge)
      continue;
    auto twice = std::find_if(s.inputs.begin(), s.inputs.end(),
                              [&](const edge_ref& e) { return e.edge == *edge; });
    if (twice != s.inputs.end()) {
      r_.at(list[i], field,
            "stage reads edge '" + *edge + "' twice (also at " + twice->field + ")");
      continue;
    }
    s.inputs.push_back({*edge, field, list[i].Mark()});
  }
}

void app_loader::read_outputs(const YAML::Node& n, stage_draft& s) {
  const YAML::Node map = n["outputs"];
  const YAML::Node one = n["output"];
  if (map.IsDefined() && one.IsDefined())
    r_.at(one, s.field + ".output", "give either 'output' or 'outputs', not both");
  if (one.IsDefined()) {
    s.outputs_key = one;
    if (auto edge = read_name(r_, one, s.field + ".output", "an edge name"))
      s.outputs.push_back({"out", {*edge, s.field + ".output", one.Mark()}});
    return;
  }
  if (!map.IsDefined())
    return;
  s.outputs_key = map;
  if (!map.IsMap()) {
    r_.expected(map, s.field + ".outputs", "a map of output port to edge name");
    return;
  }
  check_keys(r_, map, s.field + ".outputs", {});
  for (const auto& entry : map) {
    if (!entry.first.IsScalar())
      continue;
    std::string port = entry.first.Scalar();
    auto field = s.field + ".outputs." + port;
    if (!valid_name(port)) {
      read_name(r_, entry.first, field, "a port name");
      continue;
    }
    auto twice = std::find_if(s.outputs.begin(), s.outputs.end(),
                              [&](const auto& o) { return o.first == port; });
    if (twice != s.outputs.end())
      continue; // reported as given twice
    if (auto edge = read_name(r_, entry.second, field, "an edge name"))
      s.outputs.push_back({port, {*edge, field, entry.second.Mark()}});
  }
}

// Gives every stage its params and builds each once, to surface parameter errors now.
void app_loader::build_stages() {
  bool lint = !(schema_given_ && schema_failed_); // else every schema user would fail too
  for (auto& s : stages_) {
    yaml_params::payloads payloads{app_.payload_schema, {}, {}, {}, {}};
    for (const auto& [port, ref] : s.outputs) {
      payloads.connected_ports.push_back(port);
      if (auto e = app_.edge_payloads.find(ref.edge); e != app_.edge_payloads.end())
        payloads.ports.emplace(port, e->second.schema);
    }
    std::sort(payloads.connected_ports.begin(), payloads.connected_ports.end());
    for (const auto& in : s.inputs) {
      payloads.input_edges.push_back(in.edge);
      if (auto e = app_.edge_payloads.find(in.edge); e != app_.edge_payloads.end())
        payloads.inputs.emplace(in.edge, e->second.schema);
    }
    auto p = std::make_shared<yaml_params>(
        r_.file(), s.field, line_of(s.mark), column_of(s.mark), app_.base_dir, s.own, s.cfg.type,
        s.cfg.type_info ? s.cfg.type_info->params : std::vector<std::string>{}, schemas_,
        std::move(payloads));
    s.cfg.stage_params = p;
    s.cfg.settings = "type=" + s.cfg.type;
    for (const auto& [key, v] : s.own) { // a std::map: in key order
      s.cfg.settings += " " + key + "=";
      if (v.what == yaml_params::value::kind::scalar) {
        s.cfg.settings += v.text;
      } else if (v.what == yaml_params::value::kind::list) {
        s.cfg.settings += "[" + join(v.items) + "]";
      } else if (v.what == yaml_params::value::kind::map) {
        std::string m;
        for (const auto& e : v.entries)
          m += (m.empty() ? "" : ", ") + e.key + ": " + e.text;
        s.cfg.settings += "{" + m + "}";
      }
    }
    for (const auto& in : s.inputs)
      s.cfg.inputs.push_back(in.edge);
    for (const auto& [port, ref] : s.outputs)
      s.cfg.outputs.emplace_back(port, ref.edge);
    if (lint && s.buildable && s.cfg.type_info && s.cfg.type_info->make)
      try_make(s, *p);
    app_.stages.push_back(std::move(s.cfg));
  }
}

void app_loader::try_make(const stage_draft& s, const params& p) {
  auto fail = [&](const std::string& what) {
    r_.at(s.mark, s.field, "stage '" + s.cfg.name + "' (type '" + s.cfg.type + "'): " + what);
  };
  try {
    s.cfg.type_info->make(p);
  } catch (const located_config_error& e) {
    r_.add(e.issue());
  } catch (const config_error& e) {
    fail(e.what());
  } catch (const kj::Exception& e) {
    fail(std::string("constructor failed: ") + e.getDescription().cStr());
  } catch (const std::exception& e) {
    fail(std::string("constructor failed: ") + e.what());
  } catch (...) {
    fail("constructor failed with an unknown exception");
  }
}

} // namespace detail

std::string config_issue::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0)
      out += ":" + std::to_string(column);
  }
  out += ": ";
  if (severity == issue_severity::warning)
    out += "warning: ";
  if (!field.empty() && !from_override)
    out += field + ": ";
  return out + message;
}

size_t load_result::errors() const {
  return size_t(std::count_if(issues.begin(), issues.end(), [](const config_issue& i) {
    return i.severity == issue_severity::error;
  }));
}

load_result load_app(const std::string& path, registry& reg, const load_options& options) {
  return detail::app_loader(path, reg, options).run();
}

load_result load_app(const std::string& path, registry& reg, const std::string& data_dir_override) {
  load_options options;
  options.data_dir = data_dir_override;
  return load_app(path, reg, options);
}

store_layout layout_of(const app_config& app) {
  store_layout layout;
  layout.edges = app.edges;
  for (const auto& s : app.stages) {
    stage_spec spec;
    spec.name = s.name;
    spec.workers = s.workers;
    spec.leasing = s.type_info && s.type_info->leases;
    for (const auto& in : s.inputs)
      for (edge_id e = 0; e < app.edges.size(); ++e)
        if (app.edges[e].name == in)
          spec.inputs.push_back(e);
    layout.stages.push_back(std::move(spec));
  }
  return layout;
}

} // namespace troupe
