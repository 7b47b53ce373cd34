// The stage-type registry: the one deliberate global-ish table of the project, filled explicitly
// by main() (built-ins, then plugins) and read by the config loader and the node; and the
// builder that fills in one type (see troupe/stage_type.hpp).
#include <troupe/stage.hpp>

#include <algorithm>
#include <stdexcept>

namespace troupe {

params::~params() = default;

const std::vector<std::string>& runtime_stage_keys() {
  static const std::vector<std::string> keys = {"name",    "type",       "inputs",  "input",
                                                "outputs", "output",     "workers", "batch",
                                                "retry",   "supervision", "lease",
                                                "start",   "slow",       "node",
                                                "nodes"};
  return keys;
}

namespace {

bool contains(const std::vector<std::string>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

void add_unique(std::vector<std::string>& into, const std::string& x) {
  if (!contains(into, x))
    into.push_back(x);
}

[[noreturn]] void refuse(const stage_type& t, const std::string& what) {
  throw std::invalid_argument("stage type '" + t.name + "': " + what);
}

} // namespace

namespace {

void check_ports(const stage_type& t, const std::vector<std::string>& ports,
                 const std::vector<std::string>& others) {
  if (t.kind == stage_kind::sink && !ports.empty())
    refuse(t, "a sink has no output ports");
  for (const auto& p : ports)
    if (p.empty())
      refuse(t, "an output port needs a name");
  for (const auto& [port, schema] : t.emits) // a port that emits must stay declared
    if (!contains(ports, port) && !contains(others, port))
      refuse(t, "port '" + port + "' emits a struct but would no longer be declared");
}

} // namespace

stage_type_builder& stage_type_builder::outputs(std::vector<std::string> ports) {
  check_ports(*type_, ports, type_->optional_outputs);
  type_->outputs = std::move(ports);
  return *this;
}

stage_type_builder& stage_type_builder::optional_outputs(std::vector<std::string> ports) {
  check_ports(*type_, ports, type_->outputs);
  type_->optional_outputs = std::move(ports);
  return *this;
}

stage_type_builder& stage_type_builder::any_outputs() {
  if (type_->kind == stage_kind::sink)
    refuse(*type_, "a sink has no output ports");
  if (!type_->emits.empty())
    refuse(*type_, "a type with the YAML's ports cannot declare what a port emits");
  type_->outputs.clear();
  type_->optional_outputs.clear();
  type_->any_outputs = true;
  return *this;
}

stage_type_builder& stage_type_builder::params(std::vector<std::string> keys) {
  for (const auto& k : keys) {
    if (k.empty())
      refuse(*type_, "a param needs a name");
    if (contains(runtime_stage_keys(), k))
      refuse(*type_, "'" + k + "' is a key the runtime owns, not a param of the type");
    add_unique(type_->params, k);
  }
  return *this;
}

stage_type_builder& stage_type_builder::owns_paths(std::vector<std::string> keys) {
  params(keys);
  for (const auto& k : keys)
    add_unique(type_->owned_paths, k);
  return *this;
}

stage_type_builder& stage_type_builder::reads_paths(std::vector<std::string> keys) {
  params(keys);
  for (const auto& k : keys)
    add_unique(type_->read_paths, k);
  return *this;
}

stage_type_builder& stage_type_builder::blocking() {
  type_->blocking = true;
  return *this;
}

stage_type_builder& stage_type_builder::single_worker() {
  type_->single_worker = true;
  return *this;
}

stage_type_builder& stage_type_builder::leases() {
  if (type_->kind == stage_kind::source)
    throw std::invalid_argument("stage type '" + type_->name + "': a source has no items to lease");
  type_->leases = true;
  return *this;
}

stage_type_builder& stage_type_builder::needs_payload_struct() {
  type_->needs_payload_struct = true;
  return *this;
}

stage_type_builder& stage_type_builder::passes_through(std::vector<std::string> except) {
  if (type_->kind != stage_kind::op)
    refuse(*type_, "only an operator passes records through");
  type_->passes_through = true;
  type_->own_records = std::move(except);
  return *this;
}

stage_type_builder& stage_type_builder::reads(capnp::StructSchema schema) {
  if (type_->kind == stage_kind::source)
    refuse(*type_, "a source reads no edges, so it reads no struct");
  type_->reads = schema;
  return *this;
}

stage_type_builder& stage_type_builder::emits(std::string port, capnp::StructSchema schema) {
  if (!contains(type_->outputs, port) && !contains(type_->optional_outputs, port))
    refuse(*type_, "emits to port '" + port + "', which it does not declare (declare its ports " +
                       "with .outputs or .optional_outputs first)");
  type_->emits[port] = schema;
  return *this;
}

stage_type_builder registry::add(stage_type type) {
  if (type.name.empty())
    throw std::invalid_argument("a stage type needs a name");
  if (types_.count(type.name) != 0)
    throw std::invalid_argument("stage type '" + type.name + "' is already registered");
  if (!type.make)
    throw std::invalid_argument("stage type '" + type.name + "' has no way to build it (make)");
  auto name = type.name;
  auto at = types_.emplace(std::move(name), std::move(type)).first;
  return stage_type_builder{at->second};
}

const stage_type* registry::find(std::string_view name) const {
  auto i = types_.find(name);
  return i == types_.end() ? nullptr : &i->second;
}

std::vector<std::string> registry::names() const {
  std::vector<std::string> out;
  out.reserve(types_.size());
  for (const auto& entry : types_)
    out.push_back(entry.first);
  return out; // sorted: types_ is an ordered map
}

} // namespace troupe
