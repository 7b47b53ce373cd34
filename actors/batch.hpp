// batch: collects records into one record of a list type, as the seeds' "queue up responses and
// send them in a batch" does: a batch is sent once it holds `count` records, or `bytes` bytes of
// records, or its first record has waited `wait`, whichever comes first, and when the input
// ends. Per partition of the input, or per record key with `per_key: true` (the batch is then
// keyed by it).
//
// The output struct has a List field of the input struct (`items_field`, default: its only such
// list), and optionally a count field (`count_field`, default "count" when present) and a Text
// key field (`key_field`). The records waiting are kept in the partition's state in LMDB with
// their deadline, so a SIGKILL loses none and sends none twice, and the wait survives restarts.
#pragma once

#include <troupe/stage.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace troupe {

class batcher : public stage {
public:
  explicit batcher(const params& p);
  void open(context& ctx) override;
  void process_batch(context& ctx, const batch& records) override;
  void on_timer(context& ctx, int64_t now_ms) override;
  bool drained(context& ctx) override;

private:
  struct group; // the records waiting under one key, as kept in state
  void flush(context& ctx, state_store& st, std::string_view key, group& g);

  uint64_t count_, bytes_;
  std::chrono::milliseconds wait_;
  bool per_key_;
  std::string input_;
  capnp::StructSchema item_schema_;
  capnp::StructSchema::Field items_field_;
  std::optional<capnp::StructSchema::Field> count_field_, key_field_;
};

void register_batch_stage(registry& reg);

} // namespace troupe
