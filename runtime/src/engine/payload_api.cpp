// The payload parts of the stage API (troupe/stage.hpp): which struct a record, an output and an
// edge carry, and the run-time refusal of a struct other than the edge's. What each edge carries
// was settled by the loader (app_config::edge_payloads); a worker binds it once, in
// step_impl::bind_payloads, and every check is then a map lookup and a comparison of type ids.
#include "engine/step_impl.hpp"

#include <capnp/dynamic.h>

#include <stdexcept>

namespace troupe {

using detail::step_impl;

namespace detail {

void step_impl::bind_payloads(const app_config& app, const stage_config& cfg) {
  payload_schema = app.payload_schema;
  port_payloads.clear();
  input_payloads.clear();
  for (const auto& [port, edge] : cfg.outputs)
    if (auto p = app.edge_payloads.find(edge); p != app.edge_payloads.end())
      port_payloads.emplace(port, port_payload{edge, p->second.schema});
  for (const auto& edge : cfg.inputs)
    if (auto p = app.edge_payloads.find(edge); p != app.edge_payloads.end())
      input_payloads.emplace(edge, p->second.schema);
}

} // namespace detail

namespace {

bool same(capnp::StructSchema a, capnp::StructSchema b) {
  // The same schema object, or the same type loaded twice (compiled in, and from a .capnp file).
  return a == b || a.getProto().getId() == b.getProto().getId();
}

const capnp::StructSchema* input_payload(const step_impl& step, std::string_view edge) {
  auto i = step.input_payloads.find(edge);
  return i == step.input_payloads.end() ? nullptr : &i->second;
}

} // namespace

// -- record -------------------------------------------------------------------------------------

std::optional<capnp::StructSchema> record::payload_schema() const {
  if (const auto* s = input_payload(*impl_->step, *impl_->input))
    return *s;
  return std::nullopt;
}

void record::check_payload(capnp::StructSchema wanted) const {
  const auto* s = input_payload(*impl_->step, *impl_->input);
  if (s && !same(*s, wanted))
    throw std::invalid_argument("stage '" + impl_->step->stage_name + "' reads " +
                                struct_name(wanted) + " from edge '" + *impl_->input +
                                "', which carries " + struct_name(*s));
}

capnp::DynamicStruct::Reader record::payload_dynamic() const {
  const auto* s = input_payload(*impl_->step, *impl_->input);
  if (!s)
    throw std::logic_error("edge '" + *impl_->input +
                           "' carries no payload struct (edges.<edge>.type or schema.payload)");
  return payload_any().getAs<capnp::DynamicStruct>(*s);
}

// -- record_builder -----------------------------------------------------------------------------

std::optional<capnp::StructSchema> record_builder::payload_schema() const {
  step_->pending_message(); // checks the builder is still live
  if (const auto* p = step_->pending_payload)
    return p->schema;
  return std::nullopt;
}

void record_builder::declare_payload(capnp::StructSchema built) {
  auto env = step_->pending_envelope();
  if (const auto* p = step_->pending_payload; p && !same(p->schema, built)) {
    step_->discard_pending(); // the half-built record must not be emitted by the next flush
    throw std::invalid_argument("stage '" + step_->stage_name + "' builds " + struct_name(built) +
                                " on port '" + step_->pending_port + "', but the port's edge '" +
                                p->edge + "' carries " + struct_name(p->schema));
  }
  env.setPayloadType(built.getProto().getId());
}

capnp::DynamicStruct::Builder record_builder::init_payload_dynamic() {
  auto env = step_->pending_envelope();
  const auto* p = step_->pending_payload;
  if (!p) {
    step_->discard_pending();
    throw std::logic_error("port '" + step_->pending_port +
                           "' writes an edge that carries no payload struct (edges.<edge>.type "
                           "or schema.payload)");
  }
  env.setPayloadType(p->schema.getProto().getId());
  return env.getPayload().initAs<capnp::DynamicStruct>(p->schema);
}

// -- context ------------------------------------------------------------------------------------

capnp::StructSchema context::payload_schema() const {
  if (!step_->payload_schema)
    throw std::logic_error("the app names no default payload struct (schema.payload)");
  return *step_->payload_schema;
}

std::optional<capnp::StructSchema> context::output_schema(std::string_view port) const {
  auto p = step_->port_payloads.find(port);
  if (p == step_->port_payloads.end())
    return std::nullopt;
  return p->second.schema;
}

std::optional<capnp::StructSchema> context::input_schema(std::string_view edge) const {
  if (const auto* s = input_payload(*step_, edge))
    return *s;
  return std::nullopt;
}

void context::check_forward(std::string_view port, const record& r) const {
  auto p = step_->port_payloads.find(port);
  auto from = r.payload_schema();
  if (p != step_->port_payloads.end() && from && !same(*from, p->second.schema))
    throw std::invalid_argument("stage '" + step_->stage_name + "' forwards " + struct_name(*from) +
                                " from edge '" + std::string(r.input()) + "' to port '" +
                                std::string(port) + "', whose edge '" + p->second.edge +
                                "' carries " + struct_name(p->second.schema));
}

} // namespace troupe
