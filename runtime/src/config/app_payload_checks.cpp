// What each edge carries, checked against what its producer emits and its consumers read.
//
// An edge's struct is its `edges.<e>.type`; else, after a stage that passes records through,
// what its inputs carry; else the app's default (`schema.payload`); else the struct its
// producer's type declares for the port (stage_type::emits); else it has none and any struct
// goes. Then, for every edge:
//   - a producer that declares what its port emits must agree with the edge's type or default;
//   - a consumer that declares what it reads must agree with what the edge carries;
//   - a stage type that needs a struct (stage_type::needs_payload_struct) must get one on every
//     edge it reads or writes, and is not built when it does not (that would only repeat it).
// Schema-agnostic stages declare nothing and take any struct. A stage that passes records through
// (stage_type::passes_through) gives an output edge that names no struct the one its inputs
// carry, and must get the same struct on every input and output.
#include "config/app_loader.hpp"

#include <algorithm>
#include <map>

namespace troupe::detail {

namespace {

bool same(capnp::StructSchema a, capnp::StructSchema b) {
  return a.getProto().getId() == b.getProto().getId();
}

bool own_records(const stage_type& t, const std::string& port) {
  return std::find(t.own_records.begin(), t.own_records.end(), port) != t.own_records.end();
}

} // namespace

void app_loader::read_edge_type(const YAML::Node& n, const std::string& field, edge_override& e) {
  auto name = read_string(r_, n, field, "a struct name");
  if (!name)
    return;
  e.type_name = *name;
  e.type_mark = n.Mark();
  if (!schema_given_) {
    r_.at(n, field,
          "edge '" + e.spec.name + "' names the struct '" + *name +
              "', but the app has no schema (add schema: {files: [your.capnp]})");
    return;
  }
  if (schema_failed_ && parsed_files_.empty())
    return; // the schema's own problem is reported; every type would repeat it
  e.type = resolve_struct(*name, n, field);
}

void app_loader::check_payloads() {
  if (schema_given_ && schema_failed_)
    return; // the schema failed to load: every check would repeat that
  struct port_ref {
    stage_draft* stage;
    const std::string* port;
    const edge_ref* ref;
  };
  std::map<std::string, port_ref> producers;
  for (auto& s : stages_)
    for (const auto& [port, ref] : s.outputs)
      producers.emplace(ref.edge, port_ref{&s, &port, &ref});

  // What each edge carries, and where that was said, for the messages.
  struct carried {
    capnp::StructSchema schema;
    std::string said; // "edges.priced.type, line 12", "schema.payload", "stage 'p' port 'out'"
  };
  std::map<std::string, carried> carries;
  std::vector<std::string> inherited; // edges that carry what their producer's inputs carry
  for (const auto& [edge, p] : producers) {
    std::optional<carried> declared;
    if (auto o = edge_overrides_.find(edge); o != edge_overrides_.end() && o->second.type) {
      auto field = o->second.field + ".type";
      auto by = r_.override_of(field);
      declared = carried{
          *o->second.type,
          by.empty() ? field + ", line " + std::to_string(line_of(o->second.type_mark)) : by};
    } else if (auto o = edge_overrides_.find(edge);
               o != edge_overrides_.end() && !o->second.type_name.empty())
      continue; // its type did not resolve: reported

    const stage_type* t = p.stage->cfg.type_info;
    bool passes_on = t && t->passes_through && !own_records(*t, *p.port);
    if (!declared && passes_on) {
      inherited.push_back(edge); // what its inputs carry, settled below
      continue;
    }
    if (!declared && app_.payload_schema)
      declared = carried{*app_.payload_schema, "schema.payload, the default"};
    std::optional<capnp::StructSchema> emitted;
    if (t)
      if (auto e = t->emits.find(*p.port); e != t->emits.end())
        emitted = e->second;
    std::string port_text = "stage '" + p.stage->cfg.name + "' port '" + *p.port + "'";
    if (declared && emitted && !same(declared->schema, *emitted)) {
      r_.at(p.ref->mark, p.ref->field,
            port_text + " emits " + struct_name(*emitted) + ", but edge '" + edge + "' carries " +
                struct_name(declared->schema) + " (" + declared->said + "); set edges." + edge +
                ".type to the struct the port emits");
    }
    if (declared)
      carries.emplace(edge, *declared);
    else if (emitted)
      carries.emplace(edge, carried{*emitted, "as " + port_text + " emits"});
  }
  // Through chains of pass-through stages, upstream first: the graph has no cycle, so each round
  // settles at least one edge until none is left that can be.
  for (bool progress = true; progress && !inherited.empty();) {
    progress = false;
    for (auto i = inherited.begin(); i != inherited.end();) {
      const auto& s = *producers.at(*i).stage;
      std::optional<carried> from;
      bool known = !s.inputs.empty();
      for (const auto& in : s.inputs) {
        auto c = carries.find(in.edge);
        if (c == carries.end()) {
          known = false;
          break;
        }
        if (!from)
          from = carried{c->second.schema, "as stage '" + s.cfg.name + "' passes on what edge '" +
                                               in.edge + "' carries"};
      }
      if (known && from) {
        carries.emplace(*i, *from);
        i = inherited.erase(i);
        progress = true;
      } else {
        ++i;
      }
    }
  }
  if (app_.payload_schema) // passed on from inputs that carry none: the default
    for (const auto& edge : inherited)
      carries.emplace(edge, carried{*app_.payload_schema, "schema.payload, the default"});

  for (const auto& [edge, c] : carries)
    app_.edge_payloads.emplace(edge, edge_payload{c.schema, struct_name(c.schema)});

  for (auto& s : stages_) {
    const stage_type* t = s.cfg.type_info;
    if (!t)
      continue;
    if (t->passes_through) {
      // Every input and output the same struct: the first input's is the one to match.
      const std::string* first = nullptr;
      for (const auto& in : s.inputs)
        if (carries.count(in.edge)) {
          first = &in.edge;
          break;
        }
      auto mismatch = [&](const edge_ref& ref) {
        auto c = carries.find(ref.edge);
        if (!first || c == carries.end() || same(c->second.schema, carries.at(*first).schema))
          return;
        r_.at(ref.mark, ref.field,
              "stage '" + s.cfg.name + "' (type '" + s.cfg.type + "') passes records on "
              "unchanged, so its edges must carry one struct; edge '" + ref.edge + "' carries " +
                  struct_name(c->second.schema) + " (" + c->second.said + ") and edge '" +
                  *first + "' " + struct_name(carries.at(*first).schema));
      };
      for (const auto& in : s.inputs)
        mismatch(in);
      for (const auto& out : s.outputs)
        if (!own_records(*t, out.first))
          mismatch(out.second);
    }
    for (const auto& in : s.inputs) {
      auto c = carries.find(in.edge);
      if (t->reads && c != carries.end() && !same(*t->reads, c->second.schema))
        r_.at(in.mark, in.field,
              "stage '" + s.cfg.name + "' reads " + struct_name(*t->reads) + ", but edge '" +
                  in.edge + "' carries " + struct_name(c->second.schema) + " (" + c->second.said +
                  ")");
    }
    if (!t->needs_payload_struct)
      continue;
    auto need = [&](const edge_ref& ref) {
      if (carries.count(ref.edge) || !producers.count(ref.edge))
        return; // carries one, or dangling (reported)
      if (auto o = edge_overrides_.find(ref.edge);
          o != edge_overrides_.end() && !o->second.type_name.empty())
        return; // its type is wrong: reported
      r_.at(ref.mark, ref.field,
            "stage '" + s.cfg.name + "' (type '" + s.cfg.type +
                "') needs a payload struct on edge '" + ref.edge +
                "', which carries none; name one with edges." + ref.edge +
                ".type or schema.payload");
      s.buildable = false;
    };
    for (const auto& in : s.inputs)
      need(in);
    for (const auto& out : s.outputs)
      need(out.second);
  }
}

} // namespace troupe::detail
