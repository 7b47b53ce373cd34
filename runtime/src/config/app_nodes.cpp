// `nodes:` and `links:`: an app spread over several nodes, and each stage's `node:`.
//
//   nodes:
//     a: {address: 127.0.0.1:7401}                 # where its node links listen (HOST:PORT)
//     b: {address: 127.0.0.1:7402, data_dir: /srv/b, admin: 127.0.0.1:9402}
//   links: {timeout: 10s, linger: 10s, tls: {ca: ca.pem, certificate: node.pem, key: node.key}}
//   stages:
//     - {name: read, type: jsonl_source, node: a, ...}
//
// Every node reads the same file; `troupe run app.yaml --node a` runs one of them and `troupe
// launch app.yaml` all of them (net/node_view.hpp makes each node's view).
#include "config/app_loader.hpp"
#include "config/config_values.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace fs = std::filesystem;

namespace troupe::detail {

namespace {

const char* address_help = "HOST:PORT with a port from 1 to 65535, such as 127.0.0.1:7401";

} // namespace

void app_loader::read_nodes(const YAML::Node& nodes, const YAML::Node& links) {
  if (open_map(r_, nodes, "nodes")) {
    check_keys(r_, nodes, "nodes", {});
    std::map<std::string, std::string> addresses; // "host:port" -> node
    for (const auto& entry : nodes) {
      const YAML::Node key = entry.first, n = entry.second;
      auto field = "nodes." + (key.IsScalar() ? key.Scalar() : std::string{"?"});
      auto name = read_name(r_, key, field, "a node name");
      if (!name || !open_map(r_, n, field))
        continue;
      check_keys(r_, n, field, {"address", "data_dir", "admin", "certificate", "key"});
      node_config node;
      node.name = *name;
      node.line = line_of(key.Mark());
      node_marks_[node.name] = key.Mark();
      if (auto v = n["address"]; !v.IsDefined()) {
        r_.at(n, field + ".address",
              "missing required key 'address' (where the node's links listen: " +
                std::string{address_help} + ")");
      } else if (auto text = read_string(r_, v, field + ".address", "an address HOST:PORT")) {
        auto a = parse_host_port(*text);
        if (!a || a->port == 0) {
          r_.expected(v, field + ".address", address_help);
        } else {
          node.host = a->host;
          node.port = a->port;
          auto [at, fresh] = addresses.emplace(*text, node.name);
          if (!fresh)
            r_.at(v, field + ".address", "node " + at->second + " listens at " + *text +
                                           " already: each node needs an address of its own");
        }
      }
      node.data_dir = app_.data_dir + "/" + node.name;
      if (auto v = n["data_dir"]; v.IsDefined())
        if (auto dir = read_string(r_, v, field + ".data_dir", "a directory"))
          node.data_dir = absolute_path(*dir);
      if (auto v = n["admin"]; v.IsDefined())
        if (auto text = read_string(r_, v, field + ".admin", "an address HOST:PORT")) {
          if (auto a = parse_host_port(*text)) {
            node.admin_host = a->host;
            node.admin_port = a->port;
          } else {
            r_.expected(v, field + ".admin", "HOST:PORT with a port from 0 (a free one) to "
                                             "65535, such as 127.0.0.1:9401");
          }
        }
      for (const char* k : {"certificate", "key"})
        if (auto v = n[k]; v.IsDefined())
          if (auto path = read_string(r_, v, field + "." + k, "a PEM file"))
            (std::string{k} == "key" ? node.key : node.certificate) = tls_file(v, field + "." + k,
                                                                              *path);
      app_.nodes.push_back(std::move(node));
    }
    if (nodes.IsMap() && nodes.size() == 0)
      r_.expected(nodes, "nodes", "a map of node names to their addresses");
    if (app_.schedule)
      r_.at(nodes, "nodes", "a scheduled app (schedule:) runs on one node; this one declares "
                            "nodes");
  }
  if (!open_map(r_, links, "links"))
    return;
  check_keys(r_, links, "links", {"timeout", "linger", "tls"});
  if (!nodes.IsDefined()) {
    r_.at(links, "links", "'links' is about the links between an app's nodes; this app declares "
                          "no nodes (nodes:)");
    return;
  }
  auto& cfg = app_.links;
  auto duration = [&](const char* key, std::chrono::milliseconds& into) {
    if (auto v = links[key]; v.IsDefined())
      if (auto d = read_duration(r_, v, std::string{"links."} + key, true))
        into = *d;
  };
  duration("timeout", cfg.timeout);
  duration("linger", cfg.linger);
  read_tls(links["tls"]);
}

// `links.tls`: the CA every node's certificate must be signed by, and the certificate and key
// of nodes that name none of their own.
void app_loader::read_tls(const YAML::Node& tls) {
  if (!open_map(r_, tls, "links.tls") || !tls.IsMap())
    return;
  check_keys(r_, tls, "links.tls", {"ca", "certificate", "key"});
  if (auto v = tls["ca"]; !v.IsDefined())
    r_.at(tls, "links.tls.ca", "missing required key 'ca' (the PEM file of the certificate "
                               "authority that signed every node's certificate)");
  else if (auto path = read_string(r_, v, "links.tls.ca", "a PEM file"))
    app_.links.tls_ca = tls_file(v, "links.tls.ca", *path);
  std::string certificate, key;
  if (auto v = tls["certificate"]; v.IsDefined())
    if (auto path = read_string(r_, v, "links.tls.certificate", "a PEM file"))
      certificate = tls_file(v, "links.tls.certificate", *path);
  if (auto v = tls["key"]; v.IsDefined())
    if (auto path = read_string(r_, v, "links.tls.key", "a PEM file"))
      key = tls_file(v, "links.tls.key", *path);
  for (auto& n : app_.nodes) {
    if (n.certificate.empty())
      n.certificate = certificate;
    if (n.key.empty())
      n.key = key;
    if (n.certificate.empty() || n.key.empty())
      r_.at(node_marks_.at(n.name), "nodes." + n.name,
            "with links.tls, node " + n.name + " needs a certificate and a key (its own "
            "`certificate:` and `key:`, or links.tls's)");
  }
}

// A PEM file's absolute path (relative to the YAML's folder); an issue when it cannot be read.
std::string app_loader::tls_file(const YAML::Node& at, const std::string& field,
                                 const std::string& path) {
  auto full = absolute_path(fs::path(path).is_absolute() ? fs::path(path)
                                                         : fs::path(app_.base_dir) / path);
  std::ifstream in{full};
  if (!in)
    r_.at(at, field, "cannot read " + full);
  return full;
}

// Every stage of an app with nodes is placed on one of them; an app without nodes places none.
void app_loader::check_nodes() {
  std::vector<std::string> names;
  for (const auto& n : app_.nodes)
    names.push_back(n.name);
  std::map<std::string, size_t> placed;
  for (auto& s : stages_) {
    if (!s.node_value) {
      if (!app_.nodes.empty() && !s.cfg.name.empty())
        r_.at(s.mark, s.field + ".node",
              "missing key 'node': stage '" + s.cfg.name + "' must be placed on one of the "
                "app's nodes (" + join(names) + ")");
      continue;
    }
    if (app_.nodes.empty()) {
      r_.at(*s.node_value, s.field + ".node",
            "'node' places a stage on one of the app's nodes; this app declares none (nodes:)");
      continue;
    }
    if (s.cfg.nodes.empty())
      continue; // not a name: reported
    std::set<std::string> seen;
    for (size_t i = 0; i < s.cfg.nodes.size(); ++i) {
      const auto& node = s.cfg.nodes[i];
      auto field = s.nodes_list ? index(s.field + ".nodes", i) : s.field + ".node";
      const YAML::Node at = s.nodes_list ? (*s.node_value)[i] : *s.node_value;
      if (std::find(names.begin(), names.end(), node) == names.end())
        r_.at(at, field, "unknown node '" + node + "'" + suggest(node, names) +
                           "; the app's nodes are " + join(names));
      else if (!seen.insert(node).second)
        r_.at(at, field, "node '" + node + "' is listed twice");
      else
        ++placed[node];
    }
    if (s.cfg.nodes.size() < 2)
      continue;
    // Spread over several nodes: its input partitions are divided among them.
    auto why_not = [&]() -> std::string {
      const auto* t = s.cfg.type_info;
      if (s.inputs.empty())
        return "a source runs on one node";
      if (t && t->leases)
        return "a work queue leases its items from one node (not over several yet)";
      if (t && t->single_worker)
        return "type '" + s.cfg.type + "' writes one thing in order (it takes one worker)";
      return "";
    }();
    if (!why_not.empty())
      r_.at(*s.node_value, s.field + ".nodes",
            "stage '" + s.cfg.name + "' cannot be spread over several nodes: " + why_not +
              "; give it one (node: NAME)");
  }
  for (const auto& n : app_.nodes)
    if (app_.links.tls_ca.empty() && (!n.certificate.empty() || !n.key.empty()))
      r_.at(node_marks_.at(n.name), "nodes." + n.name,
            "a certificate or key is for links over TLS: give links.tls (its ca at least)");
  for (const auto& n : app_.nodes)
    if (!placed.count(n.name))
      r_.warn(node_marks_.at(n.name), "nodes." + n.name,
              "no stage is placed on node " + n.name + ": it will run nothing");
}

} // namespace troupe::detail
