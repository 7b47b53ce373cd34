// Stage types: how YAML names a stage type, what the type takes and emits, and how to build one.
// A plugin or main() registers types by name with a small builder:
//
//   reg.add_operator<price_stage>("quickstart.price")
//       .outputs({"out"})
//       .optional_outputs({"review"})
//       .params({"review_above"})
//       .reads<quickstart::Order>()
//       .emits<quickstart::PricedOrder>("out");
//
// Included by troupe/stage.hpp; a stage's file needs only that one include.
#pragma once

#include <capnp/schema.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

class params;
class stage_base;

enum class stage_kind { source, op, sink };

// A registered stage type. Filled through registry::add_source/add_operator/add_sink and the
// stage_type_builder they return; read by the config loader and the node.
struct stage_type {
  std::string name;
  stage_kind kind = stage_kind::op;
  // Output ports the YAML must connect, and those it may leave unconnected.
  std::vector<std::string> outputs;
  std::vector<std::string> optional_outputs;
  // Output ports are whatever the YAML connects (at least one), read by the stage with
  // params::output_ports(): for stages whose ports are the user's (a copier, a splitter).
  bool any_outputs = false;
  // The YAML keys of its own the type takes (besides the keys the runtime owns, see
  // runtime_stage_keys()). Any other key under the stage is an error.
  std::vector<std::string> params;
  // Of those, the ones that name a file the stage writes (no two stages may own one file; `troupe
  // reset` deletes them) and the ones that name a file it reads (lint warns when it is missing).
  std::vector<std::string> owned_paths;
  std::vector<std::string> read_paths;
  // Run each instance on a thread of its own: for stages that block (fsync, subprocesses,
  // network) so they never stall the shared scheduler.
  bool blocking = false;
  // Refuse `workers` > 1: for stages whose effect outside LMDB is one ordered thing (a file).
  bool single_worker = false;
  // Its workers lease items instead of owning partitions (a work queue): a free worker takes
  // the next waiting item, highest stage::priority first; an item whose worker dies or holds it
  // past the stage's `lease` goes to another. No keyed state (worker_state only); no per-key
  // order. See runtime/CONFIG.md, "Work queues".
  bool leases = false;
  // Every edge the stage reads or writes must carry a payload struct (edges.<e>.type or
  // schema.payload): for schema-agnostic stages that still go through one (the JSON codecs).
  bool needs_payload_struct = false;
  // Records leave unchanged (ctx.forward): an output edge that names no struct carries the one
  // its inputs carry, and one that names a struct must name theirs.
  bool passes_through = false;
  // Of those, the ports that emit records of their own instead (a report, such as a sequence's
  // missing ranges): their edges carry whatever struct they name.
  std::vector<std::string> own_records;
  // The struct the stage reads from every input, and the struct each port emits, as the
  // stage's generated C++ types name them; absent: any struct (a schema-agnostic stage).
  std::optional<capnp::StructSchema> reads;
  std::map<std::string, capnp::StructSchema, std::less<>> emits;
  // Builds one instance. A constructor reads and checks its parameters and must have no side
  // effects (`troupe lint` builds stages too); resources are acquired in open().
  std::function<std::unique_ptr<stage_base>(const troupe::params&)> make;
};

// The keys of a stage in YAML that the runtime owns (name, type, inputs, outputs, workers, batch,
// retry, supervision, ...); a type cannot declare them as params of its own.
const std::vector<std::string>& runtime_stage_keys();

// Fills in one registered type. Every call checks what it is given against what the type
// already declares and throws std::invalid_argument on a contradiction (a sink with outputs, a
// param that the runtime owns, `emits` to a port that is not declared, a source that `reads`), so a plugin with a
// wrong registration fails to load with that message. Valid as long as its registry.
class stage_type_builder {
public:
  explicit stage_type_builder(stage_type& type) : type_(&type) {}

  // Replaces the required output ports (sources and operators default to {"out"}).
  stage_type_builder& outputs(std::vector<std::string> ports);
  stage_type_builder& optional_outputs(std::vector<std::string> ports);
  // Output ports named by the YAML, as many as it connects (at least one); replaces any ports
  // declared so far. Such a type cannot declare per-port structs (emits).
  stage_type_builder& any_outputs();
  // Adds params the type takes. owns_paths and reads_paths declare their keys as params too.
  stage_type_builder& params(std::vector<std::string> keys);
  stage_type_builder& owns_paths(std::vector<std::string> keys);
  stage_type_builder& reads_paths(std::vector<std::string> keys);
  stage_type_builder& blocking();
  stage_type_builder& single_worker();
  stage_type_builder& leases();
  stage_type_builder& needs_payload_struct();
  // `except`: ports that emit records of their own (stage_type::own_records).
  stage_type_builder& passes_through(std::vector<std::string> except = {});

  // The struct the stage reads (T is a generated type, e.g. quickstart::Order).
  template <class T>
  stage_type_builder& reads() {
    return reads(capnp::Schema::from<T>());
  }
  // The struct a port emits; declare the port first.
  template <class T>
  stage_type_builder& emits(std::string port = "out") {
    return emits(std::move(port), capnp::Schema::from<T>());
  }
  stage_type_builder& reads(capnp::StructSchema schema);
  stage_type_builder& emits(std::string port, capnp::StructSchema schema);

  const stage_type& type() const { return *type_; }

private:
  stage_type* type_;
};

// The stage types a node knows. main() fills one explicitly: built-ins first, then plugins.
class registry {
public:
  // Throws std::invalid_argument on an empty or duplicate name.
  stage_type_builder add(stage_type type);
  const stage_type* find(std::string_view name) const;
  std::vector<std::string> names() const; // sorted

  template <class T>
  stage_type_builder add_source(std::string name) {
    return add(make_type<T>(std::move(name), stage_kind::source, {"out"}));
  }
  template <class T>
  stage_type_builder add_operator(std::string name) {
    return add(make_type<T>(std::move(name), stage_kind::op, {"out"}));
  }
  template <class T>
  stage_type_builder add_sink(std::string name) {
    return add(make_type<T>(std::move(name), stage_kind::sink, {}));
  }

private:
  template <class T>
  static stage_type make_type(std::string name, stage_kind kind, std::vector<std::string> outs) {
    stage_type t;
    t.name = std::move(name);
    t.kind = kind;
    t.outputs = std::move(outs);
    t.make = [](const troupe::params& p) { return std::unique_ptr<stage_base>(new T(p)); };
    return t;
  }

  std::map<std::string, stage_type, std::less<>> types_; // node-stable: builders point into it
};

} // namespace troupe

// A plugin (a shared library named in the app's `plugins:`) defines its entry point with:
//   TROUPE_PLUGIN(reg) { reg.add_operator<my_stage>("my.stage").params({"factor"}); }
#define TROUPE_PLUGIN(reg)                                                                     \
  extern "C" void troupe_plugin_register(::troupe::registry& reg)
