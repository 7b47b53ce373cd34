// The stage API: everything a custom stage sees of the runtime.
//
// A stage is a C++ class. The runtime owns threads, batching, persistence, retries and restarts;
// the stage's code owns only the records in hand. One call to `process_batch` (or `produce`, for
// a source) is one *step*: every record emitted, every state change and the advanced input
// cursor commit together in one LMDB transaction, or - if the code throws - none of them do.
//
// Threading: the runtime calls a stage object from one thread at a time. A stage with
// `workers: N` gets N separate objects. Nothing here is thread-safe, nothing needs to be.
//
// Lifetimes: a `record` and the readers it hands out are valid only during the call that
// received them. A `record_builder` is valid until the next emit or forward.
#pragma once

#include <capnp/any.h>
#include <capnp/dynamic.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

namespace detail {
struct record_impl;
struct step_impl;
} // namespace detail

// How hard a commit tries to stay committed. Chosen per app (see runtime/STORE_FORMAT.md, "Durability").
enum class durability {
  sync,    // fsync before a step counts as done: survives power loss
  process, // survives a crash of the process; the OS writes back within a bounded interval
};

// One input record (a Cap'n Proto Envelope), read-only.
class record {
public:
  explicit record(const detail::record_impl& impl) : impl_(&impl) {}

  std::string_view origin() const;   // the stage that created the record
  uint64_t seq() const;              // its sequence number at that origin
  std::string_view key() const;      // empty when the record has none
  int64_t event_time() const;        // ms since the Unix epoch; 0 when unknown
  uint32_t attempt() const;          // failed attempts so far, including this step's retries
  std::optional<std::string_view> header(std::string_view name) const;

  std::string_view input() const;    // the edge it was read from
  uint64_t position() const;         // its sequence number in that edge

  // The payload, as the generated type T (from the app's schema).
  template <class T>
  typename T::Reader payload() const {
    return payload_any().template getAs<T>();
  }
  capnp::AnyPointer::Reader payload_any() const;
  // The payload read through the app's schema, for stages that are schema-agnostic.
  capnp::DynamicStruct::Reader payload_dynamic() const;

  // The whole Envelope as Cap'n Proto bytes (single segment, flat array).
  std::string_view bytes() const;

private:
  const detail::record_impl* impl_;
};

// A record being emitted. Key and event time default to those of the record in hand (the last
// one taken from the batch). Valid until the next emit or forward, or the end of the step.
class record_builder {
public:
  explicit record_builder(detail::step_impl& step) : step_(&step) {}

  record_builder& key(std::string_view k);
  record_builder& event_time(int64_t ms);
  record_builder& header(std::string_view name, std::string_view value);

  template <class T>
  typename T::Builder init_payload() {
    return payload_any().template initAs<T>();
  }
  capnp::AnyPointer::Builder payload_any();
  // Initialises the payload as the app's payload struct, through the dynamic API.
  capnp::DynamicStruct::Builder init_payload_dynamic();

private:
  detail::step_impl* step_;
};

// Keyed state of this stage instance. Reads see the last committed state plus this step's own
// writes; writes commit with the step. Keys are 1 to 500 bytes (std::invalid_argument else).
class state_store {
public:
  explicit state_store(detail::step_impl& step) : step_(&step) {}

  std::optional<std::string> get(std::string_view key) const;
  void put(std::string_view key, std::string_view value);
  void erase(std::string_view key);

  // Convenience for counters and offsets (stored as 8 little-endian bytes).
  std::optional<uint64_t> get_u64(std::string_view key) const;
  void put_u64(std::string_view key, uint64_t value);

private:
  detail::step_impl* step_;
};

// What a stage can do during a step, and during open/close.
class context {
public:
  explicit context(detail::step_impl& step) : step_(&step) {}

  // Starts a new record on the named output port. Throws std::invalid_argument for a port the
  // app's YAML does not connect.
  record_builder emit(std::string_view port);
  // Passes a record on unchanged (same id, key, headers and payload bytes).
  void forward(std::string_view port, const record& r);
  // Sends a record to this stage's dead-letter log with a reason, and goes on.
  void dead_letter(const record& r, std::string_view reason);
  // Dead-letters raw input that never became a record (a malformed line, say).
  void dead_letter_raw(std::string_view what, uint64_t position, std::string_view raw,
                       std::string_view reason);

  state_store& state() { return state_; }

  std::string_view stage_name() const;
  unsigned worker() const;         // 0..workers-1
  unsigned workers() const;
  troupe::durability durability() const;
  bool has_output(std::string_view port) const;
  // The app's payload struct, for schema-agnostic stages; throws if the app names none.
  capnp::StructSchema payload_schema() const;

private:
  detail::step_impl* step_;
  state_store state_{*step_};
};

// A view of the records of one step.
class batch {
public:
  batch(const std::vector<detail::record_impl>* records) : records_(records) {}
  size_t size() const;
  record operator[](size_t i) const;

private:
  const std::vector<detail::record_impl>* records_;
};

// Common to every stage kind.
class stage_base {
public:
  virtual ~stage_base();
  // Called once after a (re)start, before the first step; state is already loaded.
  virtual void open(context&) {}
  // Called on an orderly stop, after the last committed step.
  virtual void close(context&) {}
};

// A stage with inputs: an operator (has outputs) or a sink (has none).
class stage : public stage_base {
public:
  // Processes one record. Override this or process_batch.
  virtual void process(context& ctx, const record& r);
  // Processes a whole step's records; by default calls process for each, in order.
  virtual void process_batch(context& ctx, const batch& records);
};

// What a source reports after a call to produce.
struct produce_result {
  enum class kind { more, idle, done } what = kind::more;
  uint32_t idle_ms = 0; // for idle: ask again after this long

  static produce_result more() { return {kind::more, 0}; }
  static produce_result idle(uint32_t ms) { return {kind::idle, ms}; }
  static produce_result done() { return {kind::done, 0}; }
};

// A stage without inputs. `done` is final: it is persisted and a restarted source stays done.
class source : public stage_base {
public:
  virtual produce_result produce(context& ctx, size_t max_items) = 0;
};

// Thrown by stage code for a failure that is not the records' fault: a full disk, a peer that is
// down. The step is abandoned and retried with a growing delay for as long as it takes; the
// records' attempt counts do not grow and nothing goes to the dead-letter log. Any other
// exception counts against the records (see retry.max_attempts).
class transient_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Thrown by stage code (typically from open()) for a failure that no restart can heal: an input
// file that does not exist, a credential that is refused. The stage is given up at once, without
// the restarts its supervision allows; `troupe run` exits 1 naming the stage and the message.
class permanent_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Thrown for a bad stage parameter; the runtime adds the file, line and field.
class config_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// A stage's parameters from the app's YAML (everything under the stage except the keys the
// runtime owns: name, type, inputs, outputs, workers, batch, retry, supervision).
class params {
public:
  virtual ~params();
  virtual bool has(std::string_view key) const = 0;
  virtual std::string get_string(std::string_view key) const = 0;  // throws config_error
  virtual std::string get_string(std::string_view key, std::string_view fallback) const = 0;
  virtual uint64_t get_u64(std::string_view key, uint64_t fallback) const = 0;
  virtual double get_double(std::string_view key, double fallback) const = 0;
  virtual bool get_bool(std::string_view key, bool fallback) const = 0;
  // A path, resolved relative to the directory of the YAML file.
  virtual std::string get_path(std::string_view key) const = 0;
  // A list of strings (`[a, b]`; one string alone counts as a list of one); empty when the key
  // is absent. Throws config_error for anything else.
  virtual std::vector<std::string> get_strings(std::string_view key) const = 0;
  // The app's payload struct, or nullopt when the app names none.
  virtual std::optional<capnp::StructSchema> payload_schema() const = 0;
  // Throws config_error naming the field; use it for checks of your own.
  [[noreturn]] virtual void fail(std::string_view key, std::string_view message) const = 0;
};

enum class stage_kind { source, op, sink };

// How YAML names a stage type and how to build one. A constructor reads and checks its
// parameters and must have no side effects (`troupe lint` builds stages too); resources are
// acquired in open().
struct stage_type {
  std::string name;
  stage_kind kind = stage_kind::op;
  // Output ports the type emits to; a port the YAML leaves unconnected is an error unless it
  // is listed in optional_outputs.
  std::vector<std::string> outputs;
  std::vector<std::string> optional_outputs;
  // Run each instance on a thread of its own: for stages that block (fsync, subprocesses,
  // network) so they never stall the shared scheduler.
  bool blocking = false;
  std::function<std::unique_ptr<stage_base>(const params&)> make;
  // Refuse `workers` > 1: for stages whose effect outside LMDB is one ordered thing (a file).
  bool single_worker = false;
};

// The stage types a node knows. main() fills one explicitly: built-ins first, then plugins.
class registry {
public:
  void add(stage_type type); // throws std::invalid_argument on a duplicate name
  const stage_type* find(std::string_view name) const;
  std::vector<std::string> names() const;

  template <class T>
  void add_source(std::string name, std::vector<std::string> outputs = {"out"},
                  bool blocking = false) {
    add({std::move(name), stage_kind::source, std::move(outputs), {}, blocking,
         [](const params& p) { return std::unique_ptr<stage_base>(new T(p)); }});
  }
  template <class T>
  void add_operator(std::string name, std::vector<std::string> outputs = {"out"},
                    bool blocking = false) {
    add({std::move(name), stage_kind::op, std::move(outputs), {}, blocking,
         [](const params& p) { return std::unique_ptr<stage_base>(new T(p)); }});
  }
  template <class T>
  void add_sink(std::string name, bool blocking = false, bool single_worker = false) {
    add({std::move(name), stage_kind::sink, {}, {}, blocking,
         [](const params& p) { return std::unique_ptr<stage_base>(new T(p)); }, single_worker});
  }

private:
  std::map<std::string, stage_type, std::less<>> types_;
};

} // namespace troupe

// A plugin (a shared library named in the app's `plugins:`) defines its entry point with:
//   TROUPE_PLUGIN(reg) { reg.add_operator<my_stage>("my.stage"); }
#define TROUPE_PLUGIN(reg)                                                                     \
  extern "C" void troupe_plugin_register(::troupe::registry& reg)
