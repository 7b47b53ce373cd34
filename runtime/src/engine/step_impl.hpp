// What stands behind the public stage API during one step: the records in hand, the outputs
// being built, and the state overlays. Owned by one stage worker actor; one thread at a time.
//
// State reads see, newest first: this step's writes, the writes of the worker's steps that were
// sent to the writer and are not yet known to be in the snapshot (pipelined steps), then the
// snapshot. So a stage reads its own uncommitted state.
#pragma once

#include "codec/codec.hpp"
#include "config/app_config.hpp"
#include "store/step_delta.hpp"
#include "store/store.hpp"

#include <troupe/stage.hpp>

#include <capnp/message.h>

#include <caf/actor_addr.hpp>
#include <caf/atom.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe::detail {

struct step_impl;

// Sent by context::waker to a polling source.
using poke_atom = caf::atom_constant<caf::atom("poke")>;

inline std::string_view view(capnp::Text::Reader t) { return {t.cStr(), t.size()}; }
inline std::string_view view(capnp::Data::Reader d) {
  return {reinterpret_cast<const char*>(d.begin()), d.size()};
}

// A record of the batch in hand. Its Envelope is decoded on first use: a stage that only
// forwards or counts records never pays for decoding them. (Framing was checked when it was read;
// a record that fails to decode when used fails the step like an exception of the stage's, and
// is dead-lettered after its retries.)
struct record_impl {
  std::string_view bytes;       // the Envelope, as read (a view into the LMDB snapshot)
  const std::string* input;     // edge name
  partition_id partition = 0;
  uint64_t position = 0;        // sequence number in that partition
  uint64_t end_bytes = 0;       // the partition's byte position after it (for a cursor)
  uint32_t slot = 0;            // the worker's (input, partition) pair it was read from
  uint32_t extra_attempts = 0;  // failed attempts of this step so far
  envelope_decoder* decoder = nullptr;
  const step_impl* step = nullptr;
  mutable bool decoded = false;

  // The decoded Envelope; throws std::invalid_argument when the bytes do not decode.
  schema::Envelope::Reader envelope() const {
    if (!decoded) {
      if (auto err = decoder->decode(bytes))
        throw std::invalid_argument("record " + std::to_string(position) + " of " + *input +
                                    " cannot be decoded: " + describe(err));
      decoded = true;
    }
    return decoder->root();
  }

  // What a dead letter and a log line say of the record. Never throws: a record that does not
  // decode (or whose fields do not read) is described by its position alone.
  struct facts {
    bool decodes = false;
    uint32_t attempt = 0;
    uint64_t source_position = 0;
    std::string origin;
  };
  facts describe_for_dead_letter() const noexcept {
    try {
      auto env = envelope();
      return {true, env.getAttempt(), env.getSourcePosition(), env.getId().getOrigin().cStr()};
    } catch (...) {
      return {};
    }
  }
  // "record 26 of signups from line 30 of read's input", for log lines.
  std::string where(const facts& f) const;
};

// User-space state writes, keyed by the store's state key (scope, index, space, key).
using state_overlay = std::map<std::string, std::optional<std::string>, std::less<>>;

// A store error met by stage-facing code (a state read): it fails the step like an exception,
// but the worker treats it as the store's failure, not the records'.
class store_failure : public std::runtime_error {
public:
  explicit store_failure(caf::error err)
      : std::runtime_error(describe(err)), error_(std::move(err)) {}
  const caf::error& error() const { return error_; }

private:
  caf::error error_;
};

struct step_impl {
  // Set once per worker.
  std::string stage_name;
  stage_id stage = 0;
  uint32_t worker = 0;
  uint32_t workers = 1;
  uint32_t partitions = 1;            // the stage's state partitions
  std::vector<partition_id> owned;    // the input partitions this worker owns; {0} for a source
  bool has_inputs = false;
  bool leasing = false; // items go to any worker (a work queue): no keyed state
  durability mode = durability::process;
  std::map<std::string, edge_id, std::less<>> ports;
  std::vector<uint32_t> edge_partitions; // partition count of every edge, by edge id
  store_reader* reader = nullptr;
  // Overlays of sent steps not yet in the snapshot, oldest first (owned by the worker).
  const std::deque<state_overlay>* in_flight = nullptr;

  // Record ids: each partition of the stage numbers the records it creates, from a counter kept in
  // the partition's runtime state, so ids do not depend on the worker count. Indexed by partition.
  // A leasing stage's worker numbers its records itself ("<stage>@<worker>", in slot 0, the
  // counter in the worker's runtime state).
  std::vector<std::string> origins;
  std::vector<uint64_t> next_id;
  std::vector<uint64_t> first_id; // next_id when the step began

  // Payload structs, set once per worker by bind_payloads (engine/payload_api.cpp): the app's
  // default, and the struct of each connected port's edge and of each input edge; a port or
  // edge whose edge carries none (any struct goes) is absent.
  struct port_payload {
    std::string edge;
    capnp::StructSchema schema;
  };
  std::optional<capnp::StructSchema> payload_schema;
  std::map<std::string, port_payload, std::less<>> port_payloads;
  std::map<std::string, capnp::StructSchema, std::less<>> input_payloads;
  void bind_payloads(const app_config& app, const stage_config& cfg);
  // The port of the output being built (set by context::emit), and its struct if any.
  std::string pending_port;
  const port_payload* pending_payload = nullptr;

  // Per step.
  step_delta* delta = nullptr;
  // A store read of this step that failed. Kept even when the stage's code caught the
  // store_failure thrown for it: the step then fails all the same (a failed read must never
  // become a committed step).
  mutable caf::error store_error;
  // The record in hand (the last one handed out), for the key, time and partition of emits.
  mutable const record_impl* current = nullptr;
  state_overlay overlay;
  std::vector<std::function<void()>> commit_hooks; // context::on_commit, of this step
  int64_t wake_request = 0; // context::wake_at of this step: the earliest, 0 for none
  size_t take_limit = SIZE_MAX; // context::take_only: records of the batch the step consumes
  // context::restore: the record it hands out, the edge it names and its decoder.
  record_impl restored;
  std::string restored_input;
  envelope_decoder restored_decoder;

  // The worker's actor, for context::waker (a weak handle: a waker outlives nothing).
  caf::actor_addr self;

  step_impl();
  ~step_impl();
  step_impl(const step_impl&) = delete;
  step_impl& operator=(const step_impl&) = delete;

  // Starts a step writing into `d` (cleared); drops the overlay of the previous step.
  void begin(step_delta& d);
  // Serializes the pending output and copies the user state writes and the id counters into the
  // delta. `overlay` keeps the writes, for the worker to keep while the step is in flight.
  void finish();
  // Forgets everything of the current step (after an exception).
  void abandon();

  // Output building.
  void start_output(edge_id e);
  capnp::MessageBuilder& pending_message();
  schema::Envelope::Builder pending_envelope();
  void flush_pending();
  std::string_view pending_origin() const; // of the output being built
  uint64_t pending_seq() const;
  void add_header(std::string_view name, std::string_view value); // to the output being built
  void discard_pending(); // drops the output being built (its payload was refused)
  edge_id port(std::string_view name) const; // throws std::invalid_argument
  void add_forward(edge_id e, const record_impl& r);

  // The state partition for the record in hand; throws std::logic_error without one.
  partition_id current_partition() const;
  // Throws std::logic_error in a leasing stage: its workers share every partition.
  void check_keyed_state() const;
  std::vector<std::pair<std::string, std::string>> scan_state(state_scope scope, uint32_t index,
                                                              std::string_view after,
                                                              size_t max) const;
  std::optional<std::string> read_state(state_scope scope, uint32_t index,
                                        std::string_view key) const;

  // Pending output: built in a reusable zeroed first segment to avoid allocations.
  struct pending;
  std::unique_ptr<pending> out;
  mutable std::string scratch_key;
};

// A DeadLetter message (schemas/envelope.capnp), encoded.
struct dead_letter_info {
  std::string_view stage, error;
  uint32_t attempts = 0;
  std::string_view input;       // the edge, or a source's description (its file)
  partition_id partition = 0;
  uint64_t input_seq = 0;       // position in the partition, or the source's own (a line)
  uint64_t source_position = 0; // the record's position at its source, when known
  std::string_view record;      // the Envelope bytes, or raw input
};
std::string make_dead_letter(const dead_letter_info& info);

} // namespace troupe::detail
