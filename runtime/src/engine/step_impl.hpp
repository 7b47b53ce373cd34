// What stands behind the public stage API during one step: the records in hand, the outputs
// being built, and the state overlay. Owned by one stage worker actor; one thread at a time.
#pragma once

#include "codec/codec.hpp"
#include "config/app_config.hpp"
#include "store/step_delta.hpp"
#include "store/store.hpp"

#include <troupe/stage.hpp>

#include <capnp/message.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe::detail {

struct step_impl;

struct record_impl {
  std::string_view bytes;       // the Envelope, as read (a view into the LMDB snapshot)
  const std::string* input;     // edge name
  uint64_t position = 0;        // sequence number in that edge
  uint32_t extra_attempts = 0;  // failed attempts of this step so far
  envelope_decoder* decoder = nullptr;
  const step_impl* step = nullptr;
};

struct step_impl {
  // Set once per worker.
  std::string stage_name;
  std::string origin; // record ids this worker creates: stage name, or "<stage>#<worker>"
  stage_id stage = 0;
  uint32_t worker = 0;
  uint32_t workers = 1;
  durability mode = durability::process;
  std::map<std::string, edge_id, std::less<>> ports;
  store_reader* reader = nullptr;

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
  // The record in hand (the last one handed out), for the key and time defaults of emits.
  mutable const record_impl* current = nullptr;
  std::map<std::string, std::optional<std::string>, std::less<>> overlay; // user state writes
  uint64_t next_id = 0;        // next RecordId.seq for `origin`
  uint64_t first_id = 0;       // next_id when the step began
  std::vector<std::string> dead_reasons;

  step_impl();
  ~step_impl();
  step_impl(const step_impl&) = delete;
  step_impl& operator=(const step_impl&) = delete;

  // Starts a step writing into `d` (cleared); drops the overlay of the previous step.
  void begin(step_delta& d);
  // Serializes the pending output and moves state writes and the id counter into the delta.
  void finish();
  // Forgets everything of the current step (after an exception).
  void abandon();

  // Output building.
  void start_output(edge_id e);
  capnp::MessageBuilder& pending_message();
  schema::Envelope::Builder pending_envelope();
  void flush_pending();
  void discard_pending(); // drops the output being built (its payload was refused)
  edge_id port(std::string_view name) const; // throws std::invalid_argument

  std::optional<std::string> committed_state(std::string_view key) const;

  // Pending output: built in a reusable zeroed first segment to avoid allocations.
  struct pending;
  std::unique_ptr<pending> out;
};

// Encodes a DeadLetter message.
std::string make_dead_letter(std::string_view stage, std::string_view error, uint32_t attempts,
                             std::string_view input, uint64_t input_seq, std::string_view record);

} // namespace troupe::detail
