#include "rate_limit.hpp"

#include "state_bytes.hpp"

#include <algorithm>
#include <chrono>

namespace troupe {

using namespace state_bytes;

namespace {

// Partition state keys, per key k: 't' k -> when its next record is due (ordered µs); and
// 'x' due k -> "" (the index by that time, oldest first).
std::string due_key(int64_t due, std::string_view key) {
  std::string k(1, 'x');
  put_ordered_i64(k, due);
  k.append(key.data(), key.size());
  return k;
}

} // namespace

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
      break;
    }
    std::string next;
    put_ordered_i64(next, tat + interval);
    st.put(key, next);
    if (per_key_) {
      if (v && v->size() == 8)
        st.erase(due_key(get_ordered_i64(*v), r.key()));
      st.put(due_key(tat + interval, r.key()), "");
    }
    ctx.forward("out", r);
  }
  if (per_key_)
    expire(ctx, now, records.size());
}

void rate_limit::expire(context& ctx, int64_t now, size_t arrived) {
  size_t per_step = 256 + 2 * arrived; // more than arrive: the index cannot grow for long
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    for (const auto& [k, v] : st.scan("w\xff", per_step)) { // 'x' entries sort after "w\xff"
      if (k.size() < 9 || k[0] != 'x' || get_ordered_i64(k, 1) >= now)
        break;
      st.erase(tagged('t', std::string_view(k).substr(9)));
      st.erase(k);
    }
  }
}

void register_rate_limit_stage(registry& reg) {
  reg.add_operator<rate_limit>("rate_limit").params({"max", "per", "per_key"}).passes_through();
}

} // namespace troupe
