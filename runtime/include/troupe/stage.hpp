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
// Partitions: an edge is split into partitions by a hash of the record key (see
// troupe/partition.hpp); each worker of a stage owns some of its input's partitions and reads
// only those, in order. Keyed state lives with a partition (ctx.state()), so a key's state is in
// one place whatever the worker count, and moves with its partition when `workers` changes.
//
// Lifetimes: a `record` and the readers it hands out are valid only during the call that
// received them. A `record_builder` is valid until the next emit or forward.
#pragma once

#include <capnp/any.h>
#include <capnp/dynamic.h>

#include <troupe/stage_type.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
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
  bool has_key() const;              // an empty key is a key: it has a partition of its own
  std::string_view key() const;      // empty when the record has none (or an empty one)
  int64_t event_time() const;        // ms since the Unix epoch; 0 when unknown
  uint32_t attempt() const;          // failed attempts so far, including this step's retries
  std::optional<std::string_view> header(std::string_view name) const;

  std::string_view input() const;    // the edge it was read from
  uint32_t partition() const;        // the partition of that edge
  uint64_t position() const;         // its sequence number in that partition
  // Where in its source the record came from (a line number for a file source), 0 when unknown.
  uint64_t source_position() const;

  // The payload, as the generated type T. Throws std::invalid_argument, naming both, when the
  // edge the record came from carries another struct.
  template <class T>
  typename T::Reader payload() const {
    check_payload(capnp::Schema::from<T>());
    return payload_any().template getAs<T>();
  }
  // The payload's pointer, unchecked.
  capnp::AnyPointer::Reader payload_any() const;
  // The struct of the edge the record came from (its `type:`, or the app's default); nullopt
  // when the edge carries none.
  std::optional<capnp::StructSchema> payload_schema() const;
  // The payload read through payload_schema(), for schema-agnostic stages; std::logic_error when
  // there is none.
  capnp::DynamicStruct::Reader payload_dynamic() const;

  // The whole Envelope as Cap'n Proto bytes (single segment, flat array).
  std::string_view bytes() const;

private:
  friend class context; // forward() passes the record on without decoding it
  void check_payload(capnp::StructSchema wanted) const;

  const detail::record_impl* impl_;
};

// A record being emitted. Key and event time default to those of the record in hand (the last
// one taken from the batch). Valid until the next emit or forward, or the end of the step.
class record_builder {
public:
  explicit record_builder(detail::step_impl& step) : step_(&step) {}

  // The key also picks the partition of the output edge the record goes to (an empty key is a
  // key like any other); a record without a key goes to a partition by its id (keyless records
  // spread evenly). no_key() drops the key taken from the record in hand.
  record_builder& key(std::string_view k);
  record_builder& no_key();
  record_builder& event_time(int64_t ms);
  // Where in its source the record came from (a line number); dead letters downstream name it.
  record_builder& source_position(uint64_t position);
  record_builder& header(std::string_view name, std::string_view value);

  // The id the record gets: its origin (this stage, or the partition of it that numbers it) and
  // its sequence number there, as record::origin() and record::seq() will read them downstream.
  std::string_view origin() const;
  uint64_t seq() const;

  // Initialises the payload as the generated type T. Throws std::invalid_argument, naming both,
  // when the port's edge carries another struct.
  template <class T>
  typename T::Builder init_payload() {
    declare_payload(capnp::Schema::from<T>());
    return payload_any().template initAs<T>();
  }
  // The payload's pointer, unchecked.
  capnp::AnyPointer::Builder payload_any();
  // The struct of the port's edge; nullopt when it carries none.
  std::optional<capnp::StructSchema> payload_schema() const;
  // Initialises the payload as payload_schema(), through the dynamic API; std::logic_error when
  // there is none.
  capnp::DynamicStruct::Builder init_payload_dynamic();

private:
  void declare_payload(capnp::StructSchema built);

  detail::step_impl* step_;
};

// Keyed state: of one partition (context::state) or of one worker (context::worker_state).
// Reads see the last committed state plus the writes of this step and of the steps still being
// committed before it; writes commit with the step. Keys are 1 to 500 bytes
// (std::invalid_argument else). A value is a copy; the store is a small handle.
class state_store {
public:
  enum class scope : uint8_t { partition = 0, worker = 1 };
  state_store(detail::step_impl& step, scope s, uint32_t index)
      : step_(&step), scope_(s), index_(index) {}

  std::optional<std::string> get(std::string_view key) const;
  void put(std::string_view key, std::string_view value);
  void erase(std::string_view key);

  // The keys after `after` (strictly; "" = from the first), in byte order, at most `max`, with
  // their values: what get() would return for each. For walking all of a partition's keys in
  // bounded steps (a reduce emitting its totals from stage::drained).
  std::vector<std::pair<std::string, std::string>> scan(std::string_view after = {},
                                                        size_t max = 1024) const;
  // Convenience for counters and offsets (stored as 8 little-endian bytes).
  std::optional<uint64_t> get_u64(std::string_view key) const;
  void put_u64(std::string_view key, uint64_t value);

private:
  detail::step_impl* step_;
  scope scope_;
  uint32_t index_;
};

// What a stage can do during a step, and during open/close.
class context {
public:
  explicit context(detail::step_impl& step) : step_(&step) {}

  // Starts a new record on the named output port. Throws std::invalid_argument for a port the
  // app's YAML does not connect.
  record_builder emit(std::string_view port);
  // Passes a record on unchanged (same id, key, headers and payload bytes). Throws
  // std::invalid_argument when the record's edge and the port's edge carry different structs.
  void forward(std::string_view port, const record& r);
  // A record a stage kept in its state to pass on later (a reordering or batching stage): its
  // bytes as record::bytes() gave them, and the edge it was read from (record::input()). Read
  // it, or forward it: it goes on unchanged, with its id. Its partition and position read 0, and
  // it is not the record in hand (state() and emit's defaults do not change). Valid until the
  // next call of restore or the end of the step; `bytes` must outlive it. Bytes that do not
  // decode throw std::invalid_argument when read.
  record restore(std::string_view input, std::string_view bytes);
  // Sends a record to this stage's dead-letter log with a reason, and goes on.
  void dead_letter(const record& r, std::string_view reason);
  // Dead-letters raw input that never became a record (a malformed line, say).
  void dead_letter_raw(std::string_view what, uint64_t position, std::string_view raw,
                       std::string_view reason);

  // The state of the partition the record in hand came from (the last record taken from the
  // batch). Key your records by what your state is keyed by: then a key's state is in one place
  // whatever the worker count. A source has one partition, so this is simply its state. For a
  // stage with inputs there must be a record in hand (std::logic_error otherwise: in open(),
  // close() or before the first record, use worker_state()).
  state_store state();
  // The state of the partition record `r` came from.
  state_store state(const record& r);
  // This worker's own state, by worker index: kept when `workers` changes (worker w keeps w's).
  // For what belongs to the worker rather than to keys: a file it writes, a connection's offset.
  state_store worker_state();
  // The state of one of the partitions this worker owns (partitions()), without a record in
  // hand: for stage::drained. std::invalid_argument for a partition it does not own.
  state_store partition_state(uint32_t partition);

  // Runs `done` on this worker's thread once the step in hand has committed (at `sync`: once it
  // is on disk), after the hooks of its earlier steps; never when the step does not commit (its
  // code threw, or the worker died first: its successor starts from what did commit). For
  // answering whoever handed the step its input (an HTTP client waiting for its ack). A step
  // that emits and writes nothing but has a hook still commits, in order, to run it.
  void on_commit(std::function<void()> done);
  // A handle any thread may call, as often as it likes, to cut short the wait of a source that
  // returned produce_result::idle: its next produce() starts at once (a no-op otherwise, and
  // once the worker is gone). For a source fed by threads of its own (a server).
  std::function<void()> waker() const;
  // Asks for a call to stage::on_timer once the wall clock reaches `at_ms` (ms since the Unix
  // epoch; a time already past means at once). A worker holds one wake-up, the earliest asked
  // for; a request counts only if its step commits (or it was made in open()). Wake-ups live in
  // memory: keep your deadlines in state and ask again in open(). Then a restart loses none, and
  // a deadline that a committed step consumed fires no more.
  void wake_at(int64_t at_ms);
  // This step consumes only the first `n` records of its batch (process_batch's): the others
  // stay in the input and come first in a later step; what the step did with them (emits, state)
  // must be undone by not doing it. With a wake-up asked for (wake_at), the next step waits for
  // it, else it starts at once. For a stage that must not take more now (a rate limit): the
  // input log holds the rest, and backpressure reaches the producer. Only the smallest n of a
  // step counts; a leasing stage (work queue) may not use it (std::logic_error).
  void take_only(size_t n);
  // The wall clock, in ms since the Unix epoch.
  static int64_t now_ms();
  // A line in the node's log, from this stage and worker.
  void log_info(std::string_view message) const;
  void log_warn(std::string_view message) const;

  std::string_view stage_name() const;
  unsigned worker() const;         // 0..workers-1
  unsigned workers() const;
  // The input partitions this worker owns (empty for a source).
  std::vector<uint32_t> partitions() const;
  troupe::durability durability() const;
  bool has_output(std::string_view port) const;
  // The app's default payload struct (schema.payload); std::logic_error if the app names none.
  capnp::StructSchema payload_schema() const;
  // The struct of the edge an output port writes, or of an input edge; nullopt when that edge
  // carries none or the port is not connected.
  std::optional<capnp::StructSchema> output_schema(std::string_view port) const;
  std::optional<capnp::StructSchema> input_schema(std::string_view edge) const;

private:
  void check_forward(std::string_view port, const record& r) const;

  detail::step_impl* step_;
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
  // Called once every input is drained for good (the stages upstream finished and all their
  // records are consumed), before the stage is done: emit what it held back, such as a reduce's
  // totals. Every earlier step of this worker has committed by then. Each call is one step:
  // return false to be called again in a new step (to emit a large result in bounded steps),
  // true when finished; that step commits together with the stage's done mark. Returning false
  // after asking for a wake-up (context::wake_at) waits for it before the next call. Keep a cursor in
  // state to resume after a crash. A worker reaches its own partitions with
  // ctx.partitions() and ctx.partition_state(p). The default emits nothing.
  virtual bool drained(context& ctx);
  // Called in a step of its own, with no record in hand, once a wake-up asked for with
  // context::wake_at is due (`now_ms`: the wall clock then), whether or not records are
  // arriving. Emit, forward nothing (there is no record), write state as in process; reach the
  // worker's partitions with ctx.partitions() and ctx.partition_state(p), and ask for the next
  // wake-up. A throw fails the step like one of drained(). The default does nothing.
  virtual void on_timer(context& ctx, int64_t now_ms);
  // For a stage whose type leases its items (stage_type::leases): the item's priority, higher
  // first. Called once per record as it arrives, on any worker's object, with no step around it
  // (no context): read the record only. A throw dead-letters the record with its message. The
  // default: 0 for every record (arrival order).
  virtual int64_t priority(const record& r);
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
  // Called instead of open() when a source that finished in an earlier run is started again:
  // a description of how its input changed since (it grew, it was replaced), or nullopt. The
  // runtime then says the input will not be read again and how to start afresh.
  virtual std::optional<std::string> changed_since_done(context&) { return std::nullopt; }
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

// A stage's parameters from the app's YAML: the keys its type declares (stage_type::params), the
// loader having refused any other key that the runtime does not own. Reading a key the type
// does not declare throws config_error, so a registration that forgot one fails at lint.
class params {
public:
  virtual ~params();
  virtual bool has(std::string_view key) const = 0;
  virtual std::string get_string(std::string_view key) const = 0;  // throws config_error
  virtual std::string get_string(std::string_view key, std::string_view fallback) const = 0;
  virtual uint64_t get_u64(std::string_view key, uint64_t fallback) const = 0;
  virtual double get_double(std::string_view key, double fallback) const = 0;
  virtual bool get_bool(std::string_view key, bool fallback) const = 0;
  // A duration as the runtime's keys take one ("250ms", "30s", "5m", "1h"), at least 1 ms.
  virtual std::chrono::milliseconds get_duration(std::string_view key,
                                                 std::chrono::milliseconds fallback) const = 0;
  // A path, resolved relative to the directory of the YAML file.
  virtual std::string get_path(std::string_view key) const = 0;
  // A list of strings (`[a, b]`; one string alone counts as a list of one); empty when the key
  // is absent. Throws config_error for anything else.
  virtual std::vector<std::string> get_strings(std::string_view key) const = 0;
  // A map of strings (`{a: x, b: y}`), its entries in the YAML's order; empty when the key is
  // absent. Throws config_error for anything else. fail("key.entry", ...) points at an entry.
  virtual std::vector<std::pair<std::string, std::string>> get_map(std::string_view key) const = 0;
  // The output ports the YAML connects (sorted), and the stage's input edges (in the YAML's order).
  virtual std::vector<std::string> output_ports() const = 0;
  virtual std::vector<std::string> input_edges() const = 0;
  // The app's default payload struct (schema.payload), or nullopt when the app names none.
  virtual std::optional<capnp::StructSchema> payload_schema() const = 0;
  // The struct of the edge an output port writes (its `edges.<e>.type`, else the default, else
  // what the producer's type declares it emits), or of an input edge by name; nullopt when the
  // edge carries none or the port is not connected.
  virtual std::optional<capnp::StructSchema> output_schema(std::string_view port) const = 0;
  virtual std::optional<capnp::StructSchema> input_schema(std::string_view edge) const = 0;
  // Throws config_error naming the field (`key`, or `key.entry` for an entry of a map param);
  // use it for checks of your own.
  [[noreturn]] virtual void fail(std::string_view key, std::string_view message) const = 0;
};

} // namespace troupe
