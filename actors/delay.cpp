#include "delay.hpp"

#include "state_bytes.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace troupe {

using namespace state_bytes;

// Partition state keys: 'q' due (ordered ms) n (be64) -> the record's bytes, n counting the
// partition's held records ("n" -> the next n), so that equal due times keep arrival order.

delay::delay(const params& p)
    : delay_(p.get_duration("delay", std::chrono::milliseconds{0})),
      max_delay_(p.get_duration("max_delay", std::chrono::hours{1})),
      backoff_(p.get_double("backoff", 2.0)),
      input_(p.input_edges().front()) {
  if (!p.has("delay"))
    p.fail("delay", "a delay needs delay: <duration> (how long each record waits)");
  if (p.has("attempt_header"))
    attempt_header_ = p.get_string("attempt_header");
  else if (p.has("backoff") || p.has("max_delay"))
    p.fail(p.has("backoff") ? "backoff" : "max_delay",
           "backoff grows the delay with a record's attempt count: set attempt_header: <name>");
  if (!(backoff_ >= 1.0 && backoff_ <= 100.0))
    p.fail("backoff", "a factor from 1 to 100");
}

int64_t delay::due_after(const record& r) const {
  double ms = static_cast<double>(delay_.count());
  if (attempt_header_)
    if (auto h = r.header(*attempt_header_)) {
      uint32_t n = 0;
      auto [end, ec] = std::from_chars(h->data(), h->data() + h->size(), n);
      if (ec == std::errc{} && end == h->data() + h->size())
        ms *= std::pow(backoff_, std::min<uint32_t>(n, 64));
    }
  return static_cast<int64_t>(std::min(ms, static_cast<double>(max_delay_.count())));
}

void delay::process_batch(context& ctx, const batch& records) {
  auto now = context::now_ms();
  for (size_t i = 0; i < records.size(); ++i) {
    auto r = records[i];
    auto st = ctx.state();
    auto n = st.get_u64("n").value_or(0);
    auto due = now + due_after(r);
    std::string k(1, 'q');
    put_ordered_i64(k, due);
    put_be64(k, n);
    st.put(k, r.bytes());
    st.put_u64("n", n + 1);
    ctx.wake_at(due);
  }
}

bool delay::release(context& ctx, int64_t until, size_t max) {
  bool all = true;
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    auto held = st.scan("p\xff", max); // 'q' keys sort right after
    size_t n = 0;
    for (const auto& [k, bytes] : held) {
      if (k.size() != 17 || k[0] != 'q' || get_ordered_i64(k, 1) > until)
        break;
      ctx.forward("out", ctx.restore(input_, bytes));
      st.erase(k);
      ++n;
    }
    all = all && n < max;
  }
  return all;
}

void delay::arm(context& ctx) {
  for (auto p : ctx.partitions()) {
    auto first = ctx.partition_state(p).scan("p\xff", 1);
    if (!first.empty() && first[0].first.size() == 17 && first[0].first[0] == 'q')
      ctx.wake_at(get_ordered_i64(first[0].first, 1));
  }
}

void delay::open(context& ctx) { arm(ctx); }

void delay::on_timer(context& ctx, int64_t now_ms) {
  if (!release(ctx, now_ms, 512)) {
    ctx.wake_at(now_ms); // more are due: the next step goes on
    return;
  }
  arm(ctx);
}

bool delay::drained(context& ctx) {
  // The input ended: the records still held go out when due; until then, wait for them.
  bool any = false;
  for (auto p : ctx.partitions()) {
    auto first = ctx.partition_state(p).scan("p\xff", 1);
    any = any || (!first.empty() && first[0].first[0] == 'q');
  }
  if (!any)
    return true;
  arm(ctx);
  return false;
}

void register_delay_stage(registry& reg) {
  reg.add_operator<delay>("delay")
    .params({"delay", "backoff", "max_delay", "attempt_header"})
    .passes_through();
}

} // namespace troupe
