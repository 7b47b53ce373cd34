#include "window.hpp"

#include "state_bytes.hpp"

#include <algorithm>
#include <limits>
#include <vector>

namespace troupe {

using namespace state_bytes;

namespace {

// Partition state keys:
//   'm'                         the watermark: watermark, largest event time, last arrival
//   'w' len key start           a window's aggregate (start: ordered ms, or a window number)
//   'e' end len key start       a time window's closing index, by end (ordered ms)
//   'k' len key                 records seen of a key (count windows)
//   'c' name                    counters
constexpr int64_t none = std::numeric_limits<int64_t>::min();

std::string window_key(std::string_view key, int64_t start) {
  auto k = tagged('w', key);
  put_ordered_i64(k, start);
  return k;
}

std::string end_key(int64_t end, std::string_view key, int64_t start) {
  std::string k(1, 'e');
  put_ordered_i64(k, end);
  auto t = tagged('e', key);
  k.append(t, 1, std::string::npos);
  put_ordered_i64(k, start);
  return k;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

int64_t positive(const params& p, const char* key, bool by_count) {
  if (by_count) {
    auto n = p.get_u64(key, 0);
    if (n == 0 || n > uint64_t{1} << 40)
      p.fail(key, "a count window's " + std::string(key) + " is a number of records, at least 1");
    return static_cast<int64_t>(n);
  }
  return p.get_duration(key, std::chrono::milliseconds{1}).count();
}

// Whether the windows are by count (count:) rather than by time (size:); one of them is needed.
bool by_count(const params& p) {
  if (p.has("count") && p.has("size"))
    p.fail("count", "a window is by time (size: <duration>) or by count (count: <records>), "
                    "not both");
  if (!p.has("count") && !p.has("size"))
    p.fail("size", "a window needs size: <duration> (event-time windows) or count: <records>");
  return p.has("count");
}

} // namespace

struct window::watermark {
  int64_t mark = none;     // windows ending at or before it are closed
  int64_t largest = none;  // the largest event time seen
  int64_t arrival = 0;     // wall clock of the last record
  static watermark load(const state_store& st) {
    watermark w;
    if (auto v = st.get("m"); v && v->size() == 24) {
      w.mark = get_ordered_i64(*v, 0);
      w.largest = get_ordered_i64(*v, 8);
      w.arrival = get_ordered_i64(*v, 16);
    }
    return w;
  }
  void save(state_store& st) const {
    std::string v;
    put_ordered_i64(v, mark);
    put_ordered_i64(v, largest);
    put_ordered_i64(v, arrival);
    st.put("m", v);
  }
};

window::window(const params& p)
    : by_count_(by_count(p)),
      size_(positive(p, by_count_ ? "count" : "size", by_count_)),
      slide_(p.has("slide") ? positive(p, "slide", by_count_) : size_),
      idle_timeout_(p.get_duration("idle_timeout", std::chrono::seconds{5})),
      agg_(p, "window", output_struct(p, "window"), true) {
  if (slide_ > size_ || size_ % slide_ != 0)
    p.fail("slide", "the slide must divide the window's size (size " + std::to_string(size_) +
                      ", slide " + std::to_string(slide_) + ")");
  if (size_ / slide_ > 1000)
    p.fail("slide", "a record would belong to " + std::to_string(size_ / slide_) +
                      " windows; at most 1000 (make the slide larger)");
  if (p.has("lateness")) {
    if (by_count_)
      p.fail("lateness", "count windows have no event time, so no lateness");
    auto text = p.get_string("lateness");
    bool zero = !text.empty() && text[0] == '0' &&
                text.find_first_not_of("0smhd", 1) == std::string::npos; // 0, 0s, 0ms, ...
    lateness_ = zero ? 0 : p.get_duration("lateness", {}).count();
  }
  if (by_count_ && p.has("idle_timeout"))
    p.fail("idle_timeout", "count windows close when full, not on a clock");
  if (p.has("time_field")) {
    if (by_count_)
      p.fail("time_field", "count windows read no time");
    try {
      time_.emplace(input_struct(p, "window"), p.get_string("time_field"));
    } catch (const std::invalid_argument& e) {
      p.fail("time_field", e.what());
    }
    if (!is_integer_type(time_->type()))
      p.fail("time_field", "'" + time_->text() + "' must be an integer field (ms since the epoch)");
  }
  auto late = p.get_string("late", "drop");
  if (late != "drop" && late != "side")
    p.fail("late", "expected drop or side, found '" + late + "'");
  late_side_ = late == "side";
  auto ports = p.output_ports();
  bool late_port = std::find(ports.begin(), ports.end(), "late") != ports.end();
  if (late_side_ != late_port)
    p.fail("late", late_side_ ? "late: side sends late records to the 'late' port; connect it"
                              : "the 'late' port is connected, but late is not 'side'");
  if (by_count_ && late_port)
    p.fail("late", "count windows have no late records");
  auto out = output_struct(p, "window");
  key_field_ = field_param(p, out, "key_field", "key", is_text_type, "a Text field");
  start_field_ = field_param(p, out, "start_field", "start", is_integer_type, "an integer field");
  end_field_ = field_param(p, out, "end_field", "end", is_integer_type, "an integer field");
  auto count_name = p.get_string("count_field", "count");
  if (out.findFieldByName(count_name) != nullptr || p.has("count_field"))
    count_field_ = field_param(p, out, "count_field", "count", is_integer_type, "an integer field");
}

void window::emit(context& ctx, std::string_view key, int64_t start, int64_t end,
                  std::string_view acc) {
  auto out = ctx.emit("out");
  out.key(key);
  if (!by_count_)
    out.event_time(end);
  key_.assign(key.data(), key.size());
  auto b = out.init_payload_dynamic();
  b.set(key_field_, capnp::Text::Reader(key_.c_str(), key_.size()));
  b.set(start_field_, start);
  b.set(end_field_, end);
  if (count_field_)
    b.set(*count_field_, agg_.count(acc));
  agg_.write(b, acc);
}

bool window::close_due(context& ctx, state_store& st, int64_t until, size_t max) {
  char tag = by_count_ ? 'w' : 'e';
  auto due = st.scan(std::string(1, tag - 1) + "\xff", max);
  size_t n = 0;
  for (const auto& [k, v] : due) {
    if (k[0] != tag)
      return true;
    std::string_view rest;
    std::string_view key;
    int64_t start, end;
    if (by_count_) {
      if (!untag(k, key, rest) || rest.size() != 8)
        throw std::logic_error("window: a state key that is not a window's");
      start = get_ordered_i64(rest) * slide_;
      end = start + static_cast<int64_t>(agg_.count(v)); // not full: after its last record
      emit(ctx, key, start, end, v);
      st.erase(k);
    } else {
      end = get_ordered_i64(k, 1);
      if (end > until)
        return true;
      if (!untag(std::string_view(k).substr(8), key, rest) || rest.size() != 8)
        throw std::logic_error("window: a state key that is not a window's");
      start = get_ordered_i64(rest);
      auto wk = window_key(key, start);
      auto acc = st.get(wk);
      if (!acc)
        throw std::logic_error("window: the window of '" + std::string(key) + "' from " +
                               std::to_string(start) + " has no aggregate");
      emit(ctx, key, start, end, *acc);
      st.erase(wk);
      st.erase(k);
    }
    ++n;
  }
  return n < max;
}

void window::fold_count(context& ctx, const record& r, state_store& st) {
  // Record i of its key belongs to windows j with j*slide <= i < j*slide + size.
  auto seen_key = tagged('k', r.key());
  auto i = static_cast<int64_t>(st.get_u64(seen_key).value_or(0));
  std::vector<std::pair<std::string, std::string>> folded;
  for (int64_t j = floor_div(i, slide_); j >= 0 && j * slide_ > i - size_; --j) {
    auto wk = window_key(r.key(), j);
    auto acc = st.get(wk).value_or(std::string{});
    auto why = agg_.fold(acc, r, r.key());
    if (!why.empty()) {
      ctx.dead_letter(r, "window: " + why);
      return; // nothing of it folded: the writes below have not happened
    }
    folded.emplace_back(std::move(wk), std::move(acc));
  }
  for (auto& [wk, acc] : folded) {
    int64_t start = get_ordered_i64(wk, wk.size() - 8) * slide_;
    if (i == start + size_ - 1) { // full
      emit(ctx, r.key(), start, start + size_, acc);
      st.erase(wk);
    } else {
      st.put(wk, acc);
    }
  }
  st.put_u64(seen_key, static_cast<uint64_t>(i + 1));
}

void window::process_one(context& ctx, const record& r, int64_t now) {
  if (r.key().size() > 480) {
    ctx.dead_letter(r, "window: the record's key is longer than 480 bytes");
    return;
  }
  auto st = ctx.state();
  if (by_count_) {
    fold_count(ctx, r, st);
    return;
  }
  int64_t t;
  if (time_) {
    auto v = time_->read(r.payload_any().getAs<capnp::AnyStruct>());
    if (!v) {
      ctx.dead_letter(r, "window: the record has no field '" + time_->text() + "', its event time");
      return;
    }
    if (v->k == field_value::kind::unsigned_integer && v->u > uint64_t(INT64_MAX)) {
      ctx.dead_letter(r, "window: " + time_->text() + " is too large to be a time in ms");
      return;
    }
    t = v->k == field_value::kind::unsigned_integer ? static_cast<int64_t>(v->u) : v->i;
  } else {
    t = r.event_time();
    if (t == 0) {
      ctx.dead_letter(r, "window: the record has no event time (set time_field: <field>)");
      return;
    }
  }
  auto w = watermark::load(st);
  // Every window [s, s + size) with s a multiple of slide that holds t, and is still open; all
  // folded before any is written, so that a record refused by the fold leaves none changed.
  struct fold {
    int64_t start;
    std::string key, acc;
    bool fresh;
  };
  std::vector<fold> open;
  for (int64_t s = floor_div(t, slide_) * slide_; s > t - size_; s -= slide_) {
    if (w.mark != none && s + size_ <= w.mark)
      continue; // closed
    auto wk = window_key(r.key(), s);
    auto acc = st.get(wk);
    bool fresh = !acc;
    std::string a = fresh ? std::string{} : std::move(*acc);
    auto why = agg_.fold(a, r, r.key());
    if (!why.empty()) {
      ctx.dead_letter(r, "window: " + why);
      return;
    }
    open.push_back({s, std::move(wk), std::move(a), fresh});
  }
  for (const auto& f : open) {
    st.put(f.key, f.acc);
    if (f.fresh)
      st.put(end_key(f.start + size_, r.key(), f.start), "");
  }
  if (open.empty()) {
    st.put_u64("clate", st.get_u64("clate").value_or(0) + 1);
    if (late_side_)
      ctx.forward("late", r);
    else if (auto n = ++late_dropped_; n == 1 || n == 10 || n == 100 || n % 1000 == 0)
      ctx.log_warn("dropped " + std::to_string(n) + " late record" + (n == 1 ? "" : "s") +
                   " since the start (the latest: key '" + std::string(r.key()) + "', event time " +
                   std::to_string(t) + ", behind the watermark " + std::to_string(w.mark) +
                   "); late: side keeps them, a larger lateness waits for them");
    return;
  }
  w.largest = std::max(w.largest, t);
  w.mark = std::max(w.mark, w.largest - lateness_);
  w.arrival = now;
  w.save(st);
}

void window::process_batch(context& ctx, const batch& records) {
  auto now = context::now_ms();
  for (size_t i = 0; i < records.size(); ++i)
    process_one(ctx, records[i], now);
  if (by_count_ || records.size() == 0)
    return;
  // Windows the watermark passed close once per step, not per record: a record cannot join a
  // window behind the watermark, so what they hold is final either way.
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    auto w = watermark::load(st);
    if (w.mark != none)
      while (!close_due(ctx, st, w.mark, 1024)) {
      }
  }
  ctx.wake_at(now + idle_timeout_.count());
}

void window::arm(context& ctx, int64_t now) {
  if (by_count_)
    return;
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    auto first = st.scan("d\xff", 1); // 'e' entries sort after "d\xff"
    if (first.empty() || first[0].first[0] != 'e')
      continue;
    auto w = watermark::load(st);
    auto end = get_ordered_i64(first[0].first, 1);
    // Idle, the watermark follows the wall clock (now - lateness): it reaches `end` then.
    auto quiet_since = std::max(w.arrival, opened_at_);
    ctx.wake_at(std::max({now, quiet_since + idle_timeout_.count(), end + lateness_}));
  }
}

void window::open(context& ctx) {
  opened_at_ = context::now_ms(); // time the node was down is not time the input was quiet
  arm(ctx, opened_at_);
}

void window::on_timer(context& ctx, int64_t now_ms) {
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    auto w = watermark::load(st);
    if (w.largest == none || now_ms - std::max(w.arrival, opened_at_) < idle_timeout_.count())
      continue;
    auto idle_mark = now_ms - lateness_;
    if (idle_mark <= w.mark)
      continue;
    w.mark = idle_mark;
    w.save(st);
    if (!close_due(ctx, st, w.mark, 1024)) {
      ctx.wake_at(now_ms); // more are due: the next step goes on
      return;
    }
  }
  arm(ctx, now_ms);
}

bool window::drained(context& ctx) {
  // The input ended: every window still open closes, a bounded number per step.
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    if (!close_due(ctx, st, std::numeric_limits<int64_t>::max(), 1024))
      return false;
  }
  uint64_t late = 0;
  for (auto p : ctx.partitions())
    late += ctx.partition_state(p).get_u64("clate").value_or(0);
  if (late > 0)
    ctx.log_info("input ended: " + std::to_string(late) + " late records " +
                 (late_side_ ? "went to the late port" : "were dropped"));
  return true;
}

void register_window_stage(registry& reg) {
  reg.add_operator<window>("window")
    .optional_outputs({"late"})
    .params({"size", "count", "slide", "lateness", "idle_timeout", "time_field", "late", "op",
             "field", "key_field", "value_field", "start_field", "end_field", "count_field"});
}

} // namespace troupe
