// rate_limit: passes records on unchanged at most `max` per `per` (a duration), overall or per
// record key (`per_key: true`), with bursts of up to `max` (a token bucket, as GCRA computes
// it). Records over the limit are never dropped: they stay in the input log (context::take_only)
// until the limit lets them through, so the stage's input backs up and, once that edge is full,
// the producer waits: backpressure. Per key, a throttled key holds back the records behind it in
// its partition (the log keeps their order), not the other partitions.
//
// The bucket's state (when the next record is due) is in LMDB, per partition and key or per
// worker, and commits with each step: a restart does not hand out a fresh burst. With
// `workers: N` and no per_key, each worker allows max/N. Per key, a key's entry is needed only
// while its next record is due in the future: an index by that time lets each step erase the
// entries that fell due (a bounded number), so the state holds the keys seen within about the
// last `per`, not every key ever seen.
#pragma once

#include <troupe/stage.hpp>

#include <cstdint>
#include <string>

namespace troupe {

class rate_limit : public stage {
public:
  explicit rate_limit(const params& p);
  void process_batch(context& ctx, const batch& records) override;

private:
  // Per key: erases entries whose time has passed, more than `arrived` of them at most.
  void expire(context& ctx, int64_t now, size_t arrived);
  uint64_t max_;
  int64_t per_us_;
  bool per_key_;
};

void register_rate_limit_stage(registry& reg);

} // namespace troupe
