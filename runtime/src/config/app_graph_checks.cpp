// The shape checks of an app file: each stage's ports against its type, and the graph of edges
// the stages form together (one producer and at least one consumer each, no unknown edges, no
// cycles).
#include "config/app_loader.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <set>

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
  if (t->any_outputs) {
    if (s.outputs.empty())
      r_.at(s.outputs_key ? s.outputs_key->Mark() : s.mark, s.field + ".outputs",
            "type '" + type + "' needs at least one output; expected 'outputs: {<port>: <edge>}'");
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
  for (auto& s : stages_)
    for (const auto& in : s.inputs)
      if (!producers.count(in.edge)) {
        r_.at(in.mark, in.field,
              "dangling edge '" + in.edge + "': read here but written by no stage");
        s.buildable = false; // what it reads is unknown: building it would only add noise
      }
  for (const auto& [edge, p] : producers)
    if (!consumers.count(edge))
      r_.at(p.ref->mark, p.ref->field,
            "dangling edge '" + edge + "': written here but read by no stage");
  // Who reads what each stage writes: the graph the cycle check walks.
  std::vector<std::vector<std::pair<size_t, const edge_ref*>>> readers(stages_.size());
  for (size_t j = 0; j < stages_.size(); ++j)
    for (const auto& in : stages_[j].inputs)
      if (auto p = producers.find(in.edge); p != producers.end())
        readers[p->second.stage].emplace_back(j, &in);
  check_cycles(readers);

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
      if (reader.cfg.slow_skip)
        spec.skipping.push_back(reader.cfg.name);
      // A leasing stage's workers share every partition: they need none of their own.
      bool leasing = reader.cfg.type_info && reader.cfg.type_info->leases;
      if (leasing)
        continue;
      // Spread over k nodes, each running `workers` workers: k * workers partitions by default.
      auto spread = std::max<uint32_t>(1, static_cast<uint32_t>(reader.cfg.nodes.size()));
      spec.default_partitions = std::max(spec.default_partitions, reader.cfg.workers * spread);
      if (spread > 1 && spec.partitions > 0 && spec.partitions < spread)
        r_.at(*reader.node_value, reader.field + ".nodes",
              "stage '" + reader.cfg.name + "' is spread over " + std::to_string(spread) +
                " nodes but its input '" + edge + "' has " + std::to_string(spec.partitions) +
                " partitions (edges." + edge + ".partitions); each node needs a partition of "
                "its own");
      if (spec.partitions > 0 && reader.cfg.workers > spec.partitions && reader.workers_value)
        r_.at(*reader.workers_value, reader.field + ".workers",
              "stage '" + reader.cfg.name + "' has " + std::to_string(reader.cfg.workers) +
                " workers but its input '" + edge + "' has " + std::to_string(spec.partitions) +
                " partitions (edges." + edge + ".partitions); each worker needs a partition of "
                "its own");
    }
    app_.edges.push_back(std::move(spec));
  }
  // Backlog caps in bytes that fit the map: three eighths of it shared by the edges (a record
  // takes up to about twice its bytes in the store, with keys, framing and half-full pages), so
  // that edges back up into their producers before the store as a whole runs short of room, and
  // the consumers always find room to write what they make of their input.
  for (auto& spec : app_.edges)
    if (spec.max_bytes == 0)
      spec.max_bytes = std::max<uint64_t>(
        app_.map_size / 8 * 3 / std::max<size_t>(1, app_.edges.size()), uint64_t{64} << 10);
}

// A cycle would circulate records for ever: a stage that reads its own output writes without
// end, and a loop without a source waits for ever. Each cycle is reported once per strongly
// connected group of stages, as the shortest loop through its first stage in file order, at the
// input that closes it.
void app_loader::check_cycles(
    const std::vector<std::vector<std::pair<size_t, const edge_ref*>>>& readers) {
  size_t n = stages_.size();
  std::set<size_t> reported;
  for (size_t start = 0; start < n; ++start) {
    if (reported.count(start))
      continue;
    // Breadth first from `start` until it comes back: the shortest loop through it.
    std::vector<std::optional<std::pair<size_t, const edge_ref*>>> came_from(n);
    std::deque<size_t> todo{start};
    const edge_ref* closing = nullptr;
    size_t last = start;
    while (!todo.empty() && !closing) {
      size_t at = todo.front();
      todo.pop_front();
      for (const auto& [next, ref] : readers[at]) {
        if (next == start) {
          closing = ref;
          last = at;
          break;
        }
        if (!came_from[next] && next != start) {
          came_from[next] = std::make_pair(at, ref);
          todo.push_back(next);
        }
      }
    }
    if (!closing)
      continue;
    std::vector<size_t> loop{start};
    std::vector<std::string> edges{closing->edge};
    for (size_t at = last; at != start; at = came_from[at]->first) {
      loop.push_back(at);
      edges.push_back(came_from[at]->second->edge);
    }
    std::reverse(loop.begin() + 1, loop.end());
    std::reverse(edges.begin(), edges.end());
    std::string path;
    for (size_t k : loop)
      path += stages_[k].cfg.name + " -> ";
    path += stages_[start].cfg.name;
    if (loop.size() == 1)
      r_.at(closing->mark, closing->field,
            "stage '" + stages_[start].cfg.name + "' reads edge '" + closing->edge +
                "', which it writes itself: a cycle, its records would go round for ever");
    else
      r_.at(closing->mark, closing->field,
            "the stages form a cycle: " + path + " (through edges " + join(edges) +
                "); records would go round for ever");
    // Everything on a loop with `start` is in its group: report the group once.
    for (size_t k : loop)
      reported.insert(k);
    for (size_t k = 0; k < n; ++k)
      if (came_from[k]) { // reachable from start; in the group if start is reachable from it
        std::vector<bool> seen(n);
        std::deque<size_t> back{k};
        seen[k] = true;
        while (!back.empty()) {
          size_t at = back.front();
          back.pop_front();
          for (const auto& hop : readers[at])
            if (hop.first == start)
              reported.insert(k);
            else if (!seen[hop.first])
              seen[hop.first] = true, back.push_back(hop.first);
        }
      }
  }
}

} // namespace troupe::detail
