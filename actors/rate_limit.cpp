#include "rate_limit.hpp"

#include "state_bytes.hpp"

#include <algorithm>
#include <chrono>

namespace troupe {

using namespace state_bytes;

rate_limit::rate_limit(const params& p)
    : max_(p.get_u64("max", 0)),
      per_us_(p.get_duration("per", std::chrono::seconds{1}).count() * 1000),
      per_key_(p.get_bool("per_key", false)) {
  if (!p.has("max") || max_ == 0 || max_ > 1000000000)
    p.fail("max", "rate_limit needs max: <records per `per`>, 1 to 1000000000");
}

void rate_limit::process_batch(context& ctx, const batch& records) {
  // GCRA: each record moves the key's theoretical arrival time (tat) on by one interval; a
  // record may pass while tat is at most `per - interval` ahead of now (a burst of `max`).
  auto now = std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  auto share = per_key_ ? max_ : std::max<uint64_t>(1, max_ / std::max(1u, ctx.workers()));
  int64_t interval = std::max<int64_t>(1, per_us_ / static_cast<int64_t>(share));
  int64_t tolerance = per_us_ - interval;
  for (size_t i = 0; i < records.size(); ++i) {
    auto r = records[i];
    if (per_key_ && r.key().size() > 480) {
      ctx.dead_letter(r, "rate_limit: the record's key is longer than 480 bytes");
      continue;
    }
    auto st = per_key_ ? ctx.state() : ctx.worker_state();
    std::string key = per_key_ ? tagged('t', r.key()) : std::string("t");
    auto v = st.get(key);
    int64_t tat = v && v->size() == 8 ? get_ordered_i64(*v) : now;
    tat = std::max(tat, now);
    if (tat - now > tolerance) {
      ctx.take_only(i); // the rest waits in the input
      ctx.wake_at((tat - tolerance + 999) / 1000);
      return;
    }
    std::string next;
    put_ordered_i64(next, tat + interval);
    st.put(key, next);
    ctx.forward("out", r);
  }
}

void register_rate_limit_stage(registry& reg) {
  reg.add_operator<rate_limit>("rate_limit").params({"max", "per", "per_key"}).passes_through();
}

} // namespace troupe
