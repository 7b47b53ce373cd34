#include "net/node_view.hpp"

#include "config/yaml_params.hpp"
#include "net/link_hub.hpp"
#include "net/link_stages.hpp"
#include "engine/stage_actor.hpp"

#include <algorithm>
#include <set>

namespace troupe::net {

namespace {

using detail::yaml_params;

std::shared_ptr<const params> link_params(const app_config& whole, const std::string& type,
                                          std::vector<std::pair<std::string, std::string>> keys,
                                          yaml_params::payloads ports) {
  std::map<std::string, yaml_params::value, std::less<>> values;
  std::vector<std::string> declared;
  for (auto& [k, v] : keys) {
    yaml_params::value value;
    value.what = yaml_params::value::kind::scalar;
    value.text = v;
    values.emplace(k, std::move(value));
    declared.push_back(k);
  }
  return std::make_shared<yaml_params>(whole.file, "nodes", 0, 0, whole.base_dir,
                                       std::move(values), type, std::move(declared), nullptr,
                                       std::move(ports));
}

// The input partitions node `i` of a stage's nodes owns: [i*P/k, (i+1)*P/k) (all of them for a
// stage on one node), by the rule workers divide partitions by.
std::vector<uint32_t> spread_share(const stage_config& s, size_t i, uint32_t partitions) {
  auto k = static_cast<uint32_t>(s.nodes.size());
  std::vector<uint32_t> out;
  for (auto p : owned_partitions(static_cast<uint32_t>(i), k, partitions))
    out.push_back(p);
  return out;
}

// A link stage for `edge` to or from `peer`, carrying `carried` of its `partitions`.
stage_config link_stage(const app_config& whole, const registry& reg, const char* type,
                        std::string name, const std::string& edge, const char* peer_key,
                        const std::string& peer, uint32_t partitions,
                        const std::set<uint32_t>& carried) {
  stage_config s;
  s.name = std::move(name);
  s.type = type;
  s.type_info = reg.find(type);
  s.nodes = {whole.node};
  s.supervision = whole.node_supervision;
  s.batch.max_items = 4096;
  s.settings = std::string{"type="} + type + " edge=" + edge + " " + peer_key + "=" + peer;
  yaml_params::payloads ports;
  ports.fallback = whole.payload_schema;
  bool out = std::string{type} == link_in_type;
  if (out) {
    s.outputs.emplace_back("out", edge);
    ports.connected_ports = {"out"};
    if (auto e = whole.edge_payloads.find(edge); e != whole.edge_payloads.end())
      ports.ports.emplace("out", e->second.schema);
  } else {
    s.inputs.push_back(edge);
    ports.input_edges = {edge};
    if (auto e = whole.edge_payloads.find(edge); e != whole.edge_payloads.end())
      ports.inputs.emplace(edge, e->second.schema);
  }
  std::vector<std::pair<std::string, std::string>> keys{{"edge", edge}, {peer_key, peer}};
  std::string list; // the partitions the link carries, "0,1,2"
  for (auto p : carried)
    list += (list.empty() ? "" : ",") + std::to_string(p);
  if (out) {
    keys.emplace_back("partitions", list);
  } else {
    // A worker per partition carried (up to the batches a receiver holds): as many batches in
    // flight. Only those partitions, when the peer's stages need only some.
    if (carried.size() < partitions)
      s.partition_subset.assign(carried.begin(), carried.end());
    s.workers = std::min<uint32_t>(static_cast<uint32_t>(carried.size()),
                                   static_cast<uint32_t>(inbox::max_waiting));
  }
  s.stage_params = link_params(whole, type, std::move(keys), std::move(ports));
  return s;
}

} // namespace

app_config node_view(const app_config& whole, const std::string& node, registry& reg) {
  register_link_stages(reg);
  app_config view = whole;
  view.node = node;
  view.fingerprint = fingerprint_of(whole);
  view.stages.clear();
  const node_config& me = *std::find_if(whole.nodes.begin(), whole.nodes.end(),
                                        [&](const node_config& n) { return n.name == node; });
  view.data_dir = me.data_dir;
  if (me.admin_host) {
    view.admin.host = *me.admin_host;
    view.admin.port = me.admin_port;
  } else {
    view.admin.port = 0; // nodes on one machine cannot share a port
  }
  // The partitions of each edge every edge's producer and consumer needs, by edge and node.
  auto parts_of = [&](const std::string& edge) {
    auto e = std::find_if(view.edges.begin(), view.edges.end(),
                          [&](const edge_spec& x) { return x.name == edge; });
    return std::max<uint32_t>(1, e->partitions ? e->partitions : e->default_partitions);
  };
  std::map<std::string, std::set<std::string>> producers, consumers;
  std::map<std::string, std::map<std::string, std::set<uint32_t>>> needs; // edge -> node -> parts
  for (const auto& s : whole.stages) {
    for (const auto& [port, edge] : s.outputs)
      producers[edge].insert(s.nodes.begin(), s.nodes.end());
    for (const auto& edge : s.inputs)
      for (size_t i = 0; i < s.nodes.size(); ++i) {
        consumers[edge].insert(s.nodes[i]);
        auto share = spread_share(s, i, parts_of(edge));
        needs[edge][s.nodes[i]].insert(share.begin(), share.end());
      }
  }
  for (const auto& s : whole.stages) {
    auto at = std::find(s.nodes.begin(), s.nodes.end(), node);
    if (at == s.nodes.end())
      continue;
    view.stages.push_back(s);
    if (s.nodes.size() > 1) { // its share of the input partitions, a worker for each at most
      auto& mine = view.stages.back();
      mine.partition_subset = spread_share(s, static_cast<size_t>(at - s.nodes.begin()),
                                           parts_of(s.inputs.front()));
      mine.workers = std::min<uint32_t>(mine.workers,
                                        static_cast<uint32_t>(mine.partition_subset.size()));
    }
  }
  for (auto& e : view.edges) {
    const auto& from = producers[e.name];
    const auto& to = consumers[e.name];
    bool remote = std::any_of(from.begin(), from.end(), [&](auto& n) { return !to.count(n); }) ||
                  std::any_of(to.begin(), to.end(), [&](auto& n) { return !from.count(n); });
    // Both ends split a remote edge alike: its partition count is fixed (the store refuses a
    // copy that holds another), not left to the readers of each node.
    if (remote && e.partitions == 0)
      e.partitions = e.default_partitions;
    uint32_t parts = std::max<uint32_t>(1, e.partitions);
    if (from.count(node))
      for (const auto& peer : to)
        if (peer != node)
          view.stages.push_back(link_stage(view, reg, link_out_type, e.name + "->" + peer, e.name,
                                           "to", peer, parts, needs[e.name][peer]));
    if (to.count(node))
      for (const auto& peer : from)
        if (peer != node)
          view.stages.push_back(link_stage(view, reg, link_in_type, e.name + "<-" + peer, e.name,
                                           "from", peer, parts, needs[e.name][node]));
  }
  std::set<std::string> touched;
  for (const auto& s : view.stages) {
    touched.insert(s.inputs.begin(), s.inputs.end());
    for (const auto& [port, edge] : s.outputs)
      touched.insert(edge);
  }
  view.edges.erase(std::remove_if(view.edges.begin(), view.edges.end(),
                                  [&](const edge_spec& e) { return !touched.count(e.name); }),
                   view.edges.end());
  // Its consumer groups are the stages reading it here (a link_out for each consuming node);
  // its partition count stays the whole app's, so that both ends split it alike.
  for (auto& e : view.edges) {
    std::vector<std::string> groups, skipping;
    for (const auto& s : view.stages)
      if (std::find(s.inputs.begin(), s.inputs.end(), e.name) != s.inputs.end()) {
        groups.push_back(s.name);
        if (std::find(e.skipping.begin(), e.skipping.end(), s.name) != e.skipping.end())
          skipping.push_back(s.name);
      }
    e.groups = std::move(groups);
    e.skipping = std::move(skipping);
  }
  return view;
}

} // namespace troupe::net
