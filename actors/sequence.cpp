#include "sequence.hpp"

#include "deadlines.hpp"
#include "state_bytes.hpp"

#include <algorithm>
#include <cstring>
#include <tuple>

namespace troupe {

using namespace state_bytes;

namespace {

// Partition state keys. Per origin (record key) k:
//   'o' k        origin_state: next id, records held back, gap deadline, skipped ranges
//   'h' k id     a record held back (its bytes), id big-endian: a scan walks them in order
// Per partition:
//   'd' time k   a gap deadline (deadlines.hpp): the earliest is the next wake-up
//   'c' name     a counter
constexpr char origin_tag = 'o', held_tag = 'h';
constexpr size_t max_ranges = 64; // skipped ranges remembered per origin, newest last

std::string held_key(std::string_view key, uint64_t id) {
  auto k = tagged(held_tag, key);
  put_be64(k, id);
  return k;
}

sequence::policy policy_param(const params& p, const std::string& key, bool pass_allowed) {
  auto v = p.get_string(key, "drop");
  if (v == "drop")
    return sequence::policy::drop;
  if (v == "side")
    return sequence::policy::side;
  if (v != "pass" || !pass_allowed)
    p.fail(key, std::string("expected drop") + (pass_allowed ? ", pass" : "") +
                  " or side, found '" + v + "'");
  return sequence::policy::pass;
}

capnp::StructSchema::Field report_field(const params& p, capnp::StructSchema s, const char* name,
                                        bool text) {
  auto f = s.findFieldByName(name);
  auto type_ok = [&](capnp::StructSchema::Field field) {
    auto w = field.getType().which();
    return text ? w == capnp::schema::Type::TEXT : is_integer(w);
  };
  if (f == nullptr || !type_ok(*kj::_::readMaybe(f)))
    p.fail("outputs.missing", "the missing edge's struct " +
                                std::string(s.getShortDisplayName().cStr()) + " needs a field '" +
                                name + "' of type " + (text ? "Text" : "an integer") +
                                " (a missing range is origin, first, last and optionally count)");
  return *kj::_::readMaybe(f);
}

field_path seq_path(const params& p) {
  std::optional<field_path> path;
  try {
    path.emplace(input_struct(p, "sequence"), p.get_string("seq_field"));
  } catch (const std::invalid_argument& e) {
    p.fail("seq_field", e.what());
  }
  return std::move(*path);
}

} // namespace

struct sequence::origin_state {
  bool started = false;
  uint64_t next = 0;     // the id released next
  uint64_t held = 0;     // records held back
  int64_t deadline = 0;  // when the gap before the first held record is given up; 0: no gap
  std::vector<std::pair<uint64_t, uint64_t>> skipped; // recent skipped ranges [first, last]

  static origin_state load(const state_store& st, std::string_view key) {
    origin_state o;
    auto v = st.get(tagged(origin_tag, key));
    if (!v || v->size() < 24)
      return o;
    o.started = true;
    o.next = get_be64(*v, 0);
    o.held = get_be64(*v, 8);
    o.deadline = static_cast<int64_t>(get_be64(*v, 16));
    for (size_t at = 24; at + 16 <= v->size(); at += 16)
      o.skipped.emplace_back(get_be64(*v, at), get_be64(*v, at + 8));
    return o;
  }
  void save(state_store& st, std::string_view key) const {
    std::string v;
    put_be64(v, next);
    put_be64(v, held);
    put_be64(v, static_cast<uint64_t>(deadline));
    for (const auto& [first, last] : skipped) {
      put_be64(v, first);
      put_be64(v, last);
    }
    st.put(tagged(origin_tag, key), v);
  }
  bool was_skipped(uint64_t id) const {
    return std::any_of(skipped.begin(), skipped.end(),
                       [&](const auto& r) { return id >= r.first && id <= r.second; });
  }
};

sequence::sequence(const params& p)
    : seq_(seq_path(p)),
      gap_timeout_(p.get_duration("gap_timeout", std::chrono::seconds{5})),
      max_pending_(p.get_u64("max_pending", 10000)),
      window_(p.get_u64("dedupe_window", 100000)),
      late_(policy_param(p, "late", true)),
      duplicates_(policy_param(p, "duplicates", false)),
      input_(p.input_edges().front()) {
  if (!is_integer(seq_.type().which()))
    p.fail("seq_field", "'" + seq_.text() + "' must be an integer field");
  if (p.has("first_seq"))
    first_seq_ = p.get_u64("first_seq", 0);
  if (max_pending_ == 0)
    p.fail("max_pending", "must be at least 1");
  auto ports = p.output_ports();
  auto connected = [&](const char* port) {
    return std::find(ports.begin(), ports.end(), port) != ports.end();
  };
  for (auto [port, pol, key] : {std::tuple{"late", late_, "late"},
                                std::tuple{"duplicates", duplicates_, "duplicates"}}) {
    if ((pol == policy::side) != connected(port))
      p.fail(key, pol == policy::side
                    ? std::string(key) + ": side sends them to the '" + port +
                        "' port; connect it (outputs: {" + port + ": <edge>})"
                    : std::string("the '") + port + "' port is connected, but " + key +
                        " is not 'side': it would never get a record");
  }
  missing_ = connected("missing");
  if (missing_) {
    auto s = p.output_schema("missing");
    if (!s)
      p.fail("outputs.missing", "the missing edge needs a struct (edges.<edge>.type) with fields "
                                "origin :Text, first and last (integers)");
    origin_field_ = report_field(p, *s, "origin", true);
    first_field_ = report_field(p, *s, "first", false);
    last_field_ = report_field(p, *s, "last", false);
    if (s->findFieldByName("count") != nullptr)
      count_field_ = report_field(p, *s, "count", false);
  }
}

namespace {
const char* const counter_names[] = {"in_order", "out_of_order", "duplicate", "late", "missing"};
}

// Counters add up in memory and reach the partition's state once per step (flush).
void sequence::count(state_store&, const char* what, uint64_t n) {
  for (size_t i = 0; i < counter_count; ++i)
    if (std::strcmp(counter_names[i], what) == 0)
      tallies_[part_][i] += n;
}

sequence::origin_state& sequence::origin_of(state_store& st, std::string_view key) {
  auto it = origins_.find(key);
  if (it == origins_.end())
    it = origins_.emplace(std::string(key), std::make_pair(part_, origin_state::load(st, key)))
           .first;
  return it->second.second;
}

void sequence::flush(context& ctx) {
  for (auto& [key, entry] : origins_) {
    auto st = ctx.partition_state(entry.first);
    entry.second.save(st, key);
  }
  origins_.clear();
  for (auto& [p, counts] : tallies_) {
    auto st = ctx.partition_state(p);
    for (size_t i = 0; i < counter_count; ++i)
      if (counts[i] > 0) {
        std::string k = std::string("c") + counter_names[i];
        st.put_u64(k, st.get_u64(k).value_or(0) + counts[i]);
      }
  }
  tallies_.clear();
}

void sequence::set_deadline(context& ctx, state_store& st, std::string_view key, origin_state& o,
                            int64_t deadline) {
  deadlines::move(ctx, st, key, o.deadline, deadline);
}

// The first record held back of an origin: its state key, id and bytes.
std::optional<sequence::held_record> sequence::first_held(const state_store& st,
                                                          std::string_view key,
                                                          const origin_state& o) const {
  if (o.held == 0)
    return std::nullopt;
  auto prefix = tagged(held_tag, key);
  auto first = st.scan(prefix, 1);
  if (first.empty() || first[0].first.size() != prefix.size() + 8 ||
      first[0].first.compare(0, prefix.size(), prefix) != 0)
    throw std::logic_error("sequence: origin '" + std::string(key) + "' counts " +
                           std::to_string(o.held) + " records held back, but none is stored");
  auto id = get_be64(first[0].first, prefix.size());
  return held_record{std::move(first[0].first), id, std::move(first[0].second)};
}

void sequence::release(context& ctx, state_store& st, std::string_view key, origin_state& o) {
  for (auto h = first_held(st, key, o); h && h->id == o.next; h = first_held(st, key, o)) {
    ctx.forward("out", ctx.restore(input_, h->bytes));
    st.erase(h->state_key);
    --o.held;
    ++o.next;
  }
}

void sequence::skip_gap(context& ctx, state_store& st, std::string_view key, origin_state& o) {
  auto h = first_held(st, key, o);
  if (!h)
    return;
  auto id = h->id;
  if (id > o.next) {
    uint64_t gap = id - o.next;
    if (missing_) {
      auto out = ctx.emit("missing");
      out.key(key);
      auto b = out.init_payload_dynamic();
      std::string origin(key); // Text wants its NUL
      b.set(origin_field_, capnp::Text::Reader(origin.c_str(), origin.size()));
      b.set(first_field_, o.next);
      b.set(last_field_, id - 1);
      if (count_field_)
        b.set(*count_field_, gap);
    }
    count(st, "missing", gap);
    o.skipped.emplace_back(o.next, id - 1);
    if (o.skipped.size() > max_ranges)
      o.skipped.erase(o.skipped.begin());
    o.next = id;
  }
  release(ctx, st, key, o);
}

void sequence::process_one(context& ctx, const record& r, int64_t now) {
  auto v = seq_.read(r.payload_any().getAs<capnp::AnyStruct>());
  if (!v) {
    ctx.dead_letter(r, "sequence: the record has no field '" + seq_.text() + "', its sequence id");
    return;
  }
  if (v->k == field_value::kind::integer && v->i < 0) {
    ctx.dead_letter(r, "sequence: " + seq_.text() + " = " + std::to_string(v->i) +
                         " is negative; sequence ids count from 0");
    return;
  }
  uint64_t id = v->k == field_value::kind::integer ? static_cast<uint64_t>(v->i) : v->u;
  auto key = r.key();
  if (key.size() > 480) {
    ctx.dead_letter(r, "sequence: the record's key (its origin) is longer than 480 bytes");
    return;
  }
  auto st = ctx.state();
  part_ = r.partition();
  auto& o = origin_of(st, key); // saved by flush(), once per step
  if (!o.started) {
    o.started = true;
    o.next = first_seq_.value_or(id);
    if (!first_seq_ && id > 0) // ids below the first one seen will not be waited for: late
      o.skipped.emplace_back(0, id - 1);
  }
  auto refuse = [&](policy pol, const char* port) {
    if (pol == policy::pass)
      ctx.forward("out", r);
    else if (pol == policy::side)
      ctx.forward(port, r);
  };
  if (id < o.next) {
    // Behind: a repeat of a record released, or one whose gap was given up on (late). Beyond the
    // window nothing tells them apart: it is counted late.
    bool late = o.was_skipped(id) || o.next - id > window_;
    count(st, late ? "late" : "duplicate");
    refuse(late ? late_ : duplicates_, late ? "late" : "duplicates");
    return;
  }
  if (id > o.next) { // early: held back until the gap before it fills or is given up on
    auto hk = held_key(key, id);
    if (st.get(hk)) {
      count(st, "duplicate");
      refuse(duplicates_, "duplicates");
      return;
    }
    st.put(hk, r.bytes());
    ++o.held;
    count(st, "out_of_order");
    if (o.deadline == 0)
      set_deadline(ctx, st, key, o, now + gap_timeout_.count());
    if (o.held > max_pending_) {
      skip_gap(ctx, st, key, o);
      set_deadline(ctx, st, key, o, o.held > 0 ? now + gap_timeout_.count() : 0);
    }
    return;
  }
  ctx.forward("out", r);
  ++o.next;
  count(st, "in_order");
  if (o.held > 0) {
    release(ctx, st, key, o);
    // What is still held waits behind a new gap, with a timeout of its own.
    set_deadline(ctx, st, key, o, o.held > 0 ? now + gap_timeout_.count() : 0);
  }
}

void sequence::process_batch(context& ctx, const batch& records) {
  origins_.clear(); // what an attempt that threw left
  tallies_.clear();
  auto now = context::now_ms();
  for (size_t i = 0; i < records.size(); ++i)
    process_one(ctx, records[i], now);
  flush(ctx);
}

void sequence::open(context& ctx) { deadlines::arm(ctx); }

void sequence::on_timer(context& ctx, int64_t now_ms) {
  constexpr size_t per_step = 256; // gaps given up per step; the rest in the next one
  size_t done = 0;
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    part_ = p;
    for (auto& d : deadlines::due(st, now_ms, per_step)) {
      auto o = origin_state::load(st, d.key);
      skip_gap(ctx, st, d.key, o);
      set_deadline(ctx, st, d.key, o, o.held > 0 ? now_ms + gap_timeout_.count() : 0);
      o.save(st, d.key);
      if (++done == per_step) {
        flush(ctx);
        ctx.wake_at(now_ms);
        return;
      }
    }
  }
  flush(ctx);
  deadlines::arm(ctx);
}

bool sequence::drained(context& ctx) {
  // The input ended: what is held back waits for nothing any more. Every origin holding records
  // has a deadline entry; give their gaps up, a bounded number per step.
  constexpr size_t per_step = 256;
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    auto due = deadlines::due(st, INT64_MAX, per_step);
    if (due.empty())
      continue;
    part_ = p;
    for (auto& d : due) {
      auto o = origin_state::load(st, d.key);
      while (o.held > 0)
        skip_gap(ctx, st, d.key, o);
      set_deadline(ctx, st, d.key, o, 0);
      o.save(st, d.key);
    }
    flush(ctx);
    return false;
  }
  std::string totals;
  for (const char* what : counter_names) {
    uint64_t n = 0;
    for (auto p : ctx.partitions())
      n += ctx.partition_state(p).get_u64(std::string("c") + what).value_or(0);
    totals += (totals.empty() ? "" : ", ") + std::string(what) + " " + std::to_string(n);
  }
  ctx.log_info("input ended: " + totals);
  return true;
}

void register_sequence_stage(registry& reg) {
  reg.add_operator<sequence>("sequence")
    .optional_outputs({"missing", "late", "duplicates"})
    .params({"seq_field", "gap_timeout", "max_pending", "dedupe_window", "first_seq", "late",
             "duplicates"})
    .passes_through({"missing"});
}

} // namespace troupe
