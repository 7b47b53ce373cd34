// What each edge carries, checked against what its producer emits and its consumers read.
//
// An edge's struct is its `edges.<e>.type`, else the app's default (`schema.payload`), else the
// struct its producer's type declares for the port (stage_type::emits); else it has none and
// any struct goes. Then, for every edge:
//   - a producer that declares what its port emits must agree with the edge's type or default;
//   - a consumer that declares what it reads must agree with what the edge carries;
//   - a stage type that needs a struct (stage_type::needs_payload_struct) must get one on every
//     edge it reads or writes, and is not built when it does not (that would only repeat it).
// Schema-agnostic stages declare nothing and take any struct.
#include "config/app_loader.hpp"

#include <map>

namespace troupe::detail {

namespace {

bool same(capnp::StructSchema a, capnp::StructSchema b) {
  return a.getProto().getId() == b.getProto().getId();
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
    else if (app_.payload_schema)
      declared = carried{*app_.payload_schema, "schema.payload, the default"};

    const stage_type* t = p.stage->cfg.type_info;
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

  for (const auto& [edge, c] : carries)
    app_.edge_payloads.emplace(edge, edge_payload{c.schema, struct_name(c.schema)});

  for (auto& s : stages_) {
    const stage_type* t = s.cfg.type_info;
    if (!t)
      continue;
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
