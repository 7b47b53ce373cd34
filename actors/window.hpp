// window: aggregates each key's records over windows, as reduce does over a whole input.
//
//   by event time   `size: 1m` (tumbling), with `slide: 10s` (sliding: every window of `size`
//                   starting at a multiple of `slide`); the time is a field (`time_field`, an
//                   integer of ms since the epoch) or else the record's event time
//   by count        `count: 100` (tumbling), with `slide: 10` (sliding), counted per key
//
// Time windows close on the watermark: the largest event time the partition has seen, minus
// `lateness`. A record that belongs only to closed windows is late: sent to the `late` port
// (`late: side`) or dropped and counted (`late: drop`), never silently. An input that goes
// quiet still closes its windows: after `idle_timeout` without records, the watermark follows the
// wall clock (now - lateness), so replayed history closes at once and live data as time passes.
// Count windows close when full; when the input ends, every window still open is emitted with
// what it has.
//
// Each closed window is one record on `out`: key_field (Text, default "key"), value_field (the
// aggregate, as reduce computes it: count, sum, min, max, avg), start_field and end_field
// (integers, default "start" and "end": ms for time windows, record numbers for count windows,
// end exclusive), and count_field when the struct has it (default "count"). The aggregates, the
// watermark and the deadlines are in the partition's state in LMDB, committed with each step: a
// SIGKILL neither loses a window nor emits one twice, and open() re-arms the idle timer.
#pragma once

#include "aggregate.hpp"
#include "field_path.hpp"

#include <troupe/stage.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace troupe {

class window : public stage {
public:
  explicit window(const params& p);
  void open(context& ctx) override;
  void process_batch(context& ctx, const batch& records) override;
  void on_timer(context& ctx, int64_t now_ms) override;
  bool drained(context& ctx) override;

private:
  struct watermark; // of one partition, as kept in state
  void process_one(context& ctx, const record& r, int64_t now);
  void fold_count(context& ctx, const record& r, state_store& st);
  // Emits and forgets the windows that end at or before `until` (all, for count windows, when
  // `until` is the largest time); false when `max` were closed and more may be due.
  bool close_due(context& ctx, state_store& st, int64_t until, size_t max);
  void emit(context& ctx, std::string_view key, int64_t start, int64_t end, std::string_view acc);
  void arm(context& ctx, int64_t now);

  bool by_count_;
  int64_t size_, slide_;           // ms, or records
  int64_t lateness_ = 0;
  std::chrono::milliseconds idle_timeout_;
  std::optional<field_path> time_;
  bool late_side_ = false;
  uint64_t late_dropped_ = 0; // this run, for the log
  aggregator agg_;
  capnp::StructSchema::Field key_field_, start_field_, end_field_;
  std::optional<capnp::StructSchema::Field> count_field_;
  std::string key_;                // scratch: Text wants its NUL
  int64_t opened_at_ = 0;          // wall clock at open(): idleness counts from then at most
};

void register_window_stage(registry& reg);

} // namespace troupe
