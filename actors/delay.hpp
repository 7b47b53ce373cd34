// delay: holds each record for a while, then passes it on unchanged: `delay` after it arrived,
// or, with `attempt_header: <name>`, delay * backoff^n (at most `max_delay`), n being the
// integer in that header of the record (0 when absent): the seeds' "retry after a delay, with
// exponential backoff" for records a stage before it sent back with their attempt count.
//
// Records wait in the partition's state in LMDB, by due time (FIFO among equal times), and are
// released by the stage's timer (context::wake_at) in due order: a restart loses none and
// releases none twice, and one due while the node was down goes out as soon as it is back. When
// the input ends, the stage still waits for its last records to be due. A fixed delay keeps the
// input's order; with backoff, a record may overtake another.
#pragma once

#include <troupe/stage.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace troupe {

class delay : public stage {
public:
  explicit delay(const params& p);
  void open(context& ctx) override;
  void process_batch(context& ctx, const batch& records) override;
  void on_timer(context& ctx, int64_t now_ms) override;
  bool drained(context& ctx) override;

private:
  int64_t due_after(const record& r) const; // ms
  // Releases the records due by `until`, at most `max` per partition; false if more are due.
  bool release(context& ctx, int64_t until, size_t max);
  void arm(context& ctx);

  std::chrono::milliseconds delay_, max_delay_;
  double backoff_;
  std::optional<std::string> attempt_header_;
  std::string input_;
};

void register_delay_stage(registry& reg);

} // namespace troupe
