// The shape checks of an app file: each stage's ports against its type, and the graph of edges
// the stages form together (one producer and at least one consumer each, no unknown edges).
#include "config/app_loader.hpp"

#include <algorithm>
#include <map>

namespace troupe::detail {

// What the stage's type allows: a source reads nothing, a sink writes nothing, every port
// exists and every required port is connected.
void app_loader::check_ports(stage_draft& s) {
  const stage_type* t = s.cfg.type_info;
  if (!t)
    return; // unknown type: already reported, and nothing to check against
  const auto& type = t->name;
  if (t->kind == stage_kind::source) {
    if (s.inputs_key)
      r_.at(*s.inputs_key, s.field + ".inputs",
            "a source (type '" + type + "') reads no edges; expected no inputs, found " +
                describe(*s.inputs_key));
    if (s.cfg.workers != 1 && s.workers_value)
      r_.expected(*s.workers_value, s.field + ".workers", "1 (a source runs exactly one worker)");
  } else if (!s.inputs_key) {
    r_.at(s.mark, s.field + ".inputs",
          std::string(t->kind == stage_kind::sink ? "a sink" : "an operator") + " (type '" +
              type +
              "') needs at least one input; expected 'inputs: [edge]' or "
              "'input: edge', found none");
  } else if (s.inputs_key->IsSequence() && s.inputs_key->size() == 0) {
    r_.expected(*s.inputs_key, s.field + ".inputs", "at least one input edge");
  }

  if (t->single_worker && s.cfg.workers != 1 && s.workers_value)
    r_.expected(*s.workers_value, s.field + ".workers",
                "1 (a '" + type + "' stage keeps one ordered output and runs exactly one worker)");

  if (t->kind == stage_kind::sink) {
    if (s.outputs_key)
      r_.at(*s.outputs_key, s.field + ".outputs",
            "a sink (type '" + type + "') writes no edges; expected no outputs, found " +
                describe(*s.outputs_key));
    return;
  }
  std::vector<std::string> ports = t->outputs;
  for (const auto& p : t->optional_outputs)
    if (std::find(ports.begin(), ports.end(), p) == ports.end())
      ports.push_back(p);
  for (const auto& [port, ref] : s.outputs)
    if (std::find(ports.begin(), ports.end(), port) == ports.end())
      r_.at(ref.mark, ref.field,
            "type '" + type + "' has no output port '" + port + "'" + suggest(port, ports) +
                "; its ports: " + (ports.empty() ? "none" : join(ports)));
  for (const auto& port : t->outputs) {
    bool optional = std::find(t->optional_outputs.begin(), t->optional_outputs.end(), port) !=
                    t->optional_outputs.end();
    bool connected = std::any_of(s.outputs.begin(), s.outputs.end(),
                                 [&](const auto& o) { return o.first == port; });
    if (!optional && !connected)
      r_.at(s.outputs_key ? s.outputs_key->Mark() : s.mark, s.field + ".outputs." + port,
            "required output port '" + port + "' of type '" + type +
                "' is not connected; expected 'outputs: {" + port + ": <edge>}'");
  }
}

// Every edge has exactly one producer and at least one consumer; `edges:` names only edges
// that exist. Edges are listed in order of first mention.
void app_loader::check_graph() {
  struct producer {
    size_t stage;
    const edge_ref* ref;
  };
  std::map<std::string, producer> producers;
  std::map<std::string, std::vector<size_t>> consumers;
  std::vector<std::string> order;
  auto mention = [&](const std::string& edge) {
    if (std::find(order.begin(), order.end(), edge) == order.end())
      order.push_back(edge);
  };
  for (size_t i = 0; i < stages_.size(); ++i) {
    for (const auto& in : stages_[i].inputs) {
      consumers[in.edge].push_back(i);
      mention(in.edge);
    }
    for (const auto& [port, ref] : stages_[i].outputs) {
      mention(ref.edge);
      auto [at, fresh] = producers.emplace(ref.edge, producer{i, &ref});
      if (!fresh)
        r_.at(ref.mark, ref.field,
              "edge '" + ref.edge + "' is already written by stage '" +
                  stages_[at->second.stage].cfg.name + "' (" + at->second.ref->field + ", line " +
                  std::to_string(line_of(at->second.ref->mark)) +
                  "); an edge has exactly one producer");
    }
  }
  for (const auto& s : stages_)
    for (const auto& in : s.inputs)
      if (!producers.count(in.edge))
        r_.at(in.mark, in.field,
              "dangling edge '" + in.edge + "': read here but written by no stage");
  for (const auto& [edge, p] : producers)
    if (!consumers.count(edge))
      r_.at(p.ref->mark, p.ref->field,
            "dangling edge '" + edge + "': written here but read by no stage");
  for (const auto& [edge, e] : edge_overrides_)
    if (std::find(order.begin(), order.end(), edge) == order.end())
      r_.at(e.mark, e.field,
            "unknown edge '" + edge + "': no stage reads or writes it" + suggest(edge, order));

  for (const auto& edge : order) {
    auto o = edge_overrides_.find(edge);
    edge_spec spec = o == edge_overrides_.end() ? edge_spec{} : o->second.spec;
    spec.name = edge;
    // The consumer group of an edge is the reading stage; by default an edge gets as many
    // partitions as its most parallel reader has workers (fixed once it holds data).
    for (size_t i : consumers[edge]) {
      const auto& reader = stages_[i];
      spec.groups.push_back(reader.cfg.name);
      spec.default_partitions = std::max(spec.default_partitions, reader.cfg.workers);
      if (spec.partitions > 0 && reader.cfg.workers > spec.partitions && reader.workers_value)
        r_.at(*reader.workers_value, reader.field + ".workers",
              "stage '" + reader.cfg.name + "' has " + std::to_string(reader.cfg.workers) +
                " workers but its input '" + edge + "' has " + std::to_string(spec.partitions) +
                " partitions (edges." + edge + ".partitions); each worker needs a partition of "
                "its own");
    }
    app_.edges.push_back(std::move(spec));
  }
  // Backlog caps in bytes that fit the map: three quarters of it shared by the edges, so that an
  // edge backs up into its producers before the store as a whole runs short of room.
  for (auto& spec : app_.edges)
    if (spec.max_bytes == 0)
      spec.max_bytes = std::max<uint64_t>(app_.map_size / 4 * 3 / std::max<size_t>(1, app_.edges.size()),
                                          uint64_t{1} << 20);
}

} // namespace troupe::detail
