// sequence: puts each origin's records back in order by a sequence-id field, and deals with what
// the network did to them on the way: repeats are dropped, records that arrive early wait in
// state for the ones before them, a gap waits up to `gap_timeout` and is then skipped, reported
// as one "missing range" record, and a record that arrives after its gap was skipped is late.
//
// An origin is a record key (key your records by sensor, device or producer: the edge's
// partitions then bring every record of one origin to one worker). Everything lives in the
// partition's state in LMDB, committed with each step: the next expected id, the records held
// back, the recently skipped ranges and the gap deadlines (the timers, re-armed on open). So a
// SIGKILL loses nothing held back and releases nothing twice.
//
// Ports: `out` (in order), and optionally `missing` (one record per skipped range, of a struct
// with fields origin :Text, first and last (integers), and optionally count), `late` and
// `duplicates` (the records themselves, unchanged). Counters (records released in order, out of
// order, duplicate, late, missing ids) are kept in state and logged once the input ends.
#pragma once

#include "field_path.hpp"

#include <troupe/stage.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

class sequence : public stage {
public:
  explicit sequence(const params& p);
  void open(context& ctx) override;
  void process_batch(context& ctx, const batch& records) override;
  void on_timer(context& ctx, int64_t now_ms) override;
  bool drained(context& ctx) override;

  enum class policy { drop, pass, side };

private:
  struct origin_state; // of one key, as kept in state
  struct held_record {
    std::string state_key;
    uint64_t id;
    std::string bytes;
  };
  std::optional<held_record> first_held(const state_store& st, std::string_view key,
                                        const origin_state& o) const;
  void process_one(context& ctx, const record& r, int64_t now);
  // Releases the records held back from `o.next` on, as long as they follow each other.
  void release(context& ctx, state_store& st, std::string_view key, origin_state& o);
  // Gives up waiting for the gap before the first record held back: reports it, moves past it.
  void skip_gap(context& ctx, state_store& st, std::string_view key, origin_state& o);
  void set_deadline(context& ctx, state_store& st, std::string_view key, origin_state& o,
                    int64_t deadline);
  void count(state_store& st, const char* what, uint64_t n = 1);
  // A step's origin states (process_batch), by key, with their partition: loaded once, saved
  // once by flush(), with the counters added up meanwhile (per partition).
  origin_state& origin_of(state_store& st, std::string_view key);
  void flush(context& ctx);
  static constexpr size_t counter_count = 5;
  uint32_t part_ = 0; // the partition in hand, for count()
  std::map<std::string, std::pair<uint32_t, origin_state>, std::less<>> origins_;
  std::map<uint32_t, std::array<uint64_t, counter_count>> tallies_;

  field_path seq_;
  std::chrono::milliseconds gap_timeout_;
  uint64_t max_pending_, window_;
  std::optional<uint64_t> first_seq_;
  policy late_, duplicates_;
  std::string input_; // the input edge, for restoring the records held back
  bool missing_ = false;
  capnp::StructSchema::Field origin_field_, first_field_, last_field_;
  std::optional<capnp::StructSchema::Field> count_field_;
};

void register_sequence_stage(registry& reg);

} // namespace troupe
