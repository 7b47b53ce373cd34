#include "batch.hpp"

#include "aggregate.hpp"
#include "field_path.hpp"
#include "deadlines.hpp"
#include "state_bytes.hpp"

namespace troupe {

using namespace state_bytes;

namespace {

// Partition state keys, per group key k ("" without per_key):
//   'g' len k           the group: records waiting, their bytes, its deadline (0: empty)
//   'i' len k index     a record waiting (its bytes), index big-endian: a scan walks them in order
//   'd' time k          a group's deadline (deadlines.hpp): the earliest is the next wake-up
std::string item_key(std::string_view key, uint64_t index) {
  auto k = tagged('i', key);
  put_be64(k, index);
  return k;
}

} // namespace

struct batcher::group {
  uint64_t first = 0; // index of the first record waiting
  uint64_t n = 0;     // records waiting
  uint64_t bytes = 0;
  int64_t deadline = 0;
  static group load(const state_store& st, std::string_view key) {
    group g;
    if (auto v = st.get(tagged('g', key)); v && v->size() == 32) {
      g.first = get_be64(*v, 0);
      g.n = get_be64(*v, 8);
      g.bytes = get_be64(*v, 16);
      g.deadline = get_ordered_i64(*v, 24);
    }
    return g;
  }
  void save(state_store& st, std::string_view key) const {
    std::string v;
    put_be64(v, first);
    put_be64(v, n);
    put_be64(v, bytes);
    put_ordered_i64(v, deadline);
    st.put(tagged('g', key), v);
  }
};

batcher::batcher(const params& p)
    : count_(p.get_u64("count", 100)),
      bytes_(p.get_u64("bytes", 0)),
      wait_(p.get_duration("wait", std::chrono::seconds{1})),
      per_key_(p.get_bool("per_key", false)),
      input_(p.input_edges().front()),
      item_schema_(input_struct(p, "batch")) {
  if (count_ == 0 || count_ > 1000000)
    p.fail("count", "a batch holds 1 to 1000000 records");
  auto out = output_struct(p, "batch");
  auto is_items = [&](capnp::StructSchema::Field f) {
    auto t = f.getType();
    if (!t.isList())
      return false;
    auto e = t.asList().getElementType();
    return e.isStruct() && e.asStruct().getProto().getId() == item_schema_.getProto().getId();
  };
  std::string wanted = "a List(" + std::string(item_schema_.getShortDisplayName().cStr()) + ")";
  if (p.has("items_field")) {
    auto name = p.get_string("items_field");
    auto f = out.findFieldByName(name);
    if (f == nullptr || !is_items(*kj::_::readMaybe(f)))
      p.fail("items_field", std::string(out.getShortDisplayName().cStr()) + " has no field '" +
                              name + "' of type " + wanted);
    items_field_ = *kj::_::readMaybe(f);
  } else {
    int found = 0;
    for (auto f : out.getFields())
      if (is_items(f)) {
        items_field_ = f;
        ++found;
      }
    if (found != 1)
      p.fail("items_field", std::string(out.getShortDisplayName().cStr()) + " has " +
                              (found ? "several fields" : "no field") + " of type " + wanted +
                              "; name the one for the batch with items_field");
  }
  if (out.findFieldByName(p.get_string("count_field", "count")) != nullptr || p.has("count_field"))
    count_field_ = field_param(p, out, "count_field", "count", is_integer_type, "an integer field");
  if (p.has("key_field")) {
    if (!per_key_)
      p.fail("key_field", "batches have a key only with per_key: true");
    key_field_ = field_param(p, out, "key_field", "key", is_text_type, "a Text field");
  }
}

void batcher::flush(context& ctx, state_store& st, std::string_view key, group& g) {
  if (g.n > 0) {
    auto out = ctx.emit("out");
    if (per_key_)
      out.key(key);
    else
      out.no_key();
    auto b = out.init_payload_dynamic();
    auto list = b.init(items_field_, static_cast<unsigned>(g.n)).as<capnp::DynamicList>();
    auto prefix = tagged('i', key);
    unsigned i = 0;
    for (const auto& [k, bytes] : st.scan(prefix, g.n)) {
      if (k.size() != prefix.size() + 8 || k.compare(0, prefix.size(), prefix) != 0)
        break;
      auto r = ctx.restore(input_, bytes);
      list.set(i++, r.payload_any().getAs<capnp::DynamicStruct>(item_schema_));
      st.erase(k);
    }
    if (i != g.n)
      throw std::logic_error("batch: the group '" + std::string(key) + "' counts " +
                             std::to_string(g.n) + " records waiting, but " + std::to_string(i) +
                             " are stored");
    if (count_field_)
      b.set(*count_field_, g.n);
    if (key_field_) {
      std::string text(key);
      b.set(*key_field_, capnp::Text::Reader(text.c_str(), text.size()));
    }
  }
  deadlines::move(ctx, st, key, g.deadline, 0);
  g.first += g.n;
  g.n = 0;
  g.bytes = 0;
}

void batcher::process_batch(context& ctx, const batch& records) {
  auto now = context::now_ms();
  for (size_t i = 0; i < records.size(); ++i) {
    auto r = records[i];
    std::string_view key = per_key_ ? r.key() : std::string_view{};
    if (key.size() > 480) {
      ctx.dead_letter(r, "batch: the record's key is longer than 480 bytes");
      continue;
    }
    auto st = ctx.state();
    auto g = group::load(st, key);
    auto size = r.bytes().size();
    if (bytes_ > 0 && g.n > 0 && g.bytes + size > bytes_)
      flush(ctx, st, key, g); // it would overflow the batch: the batch goes first
    st.put(item_key(key, g.first + g.n), r.bytes());
    ++g.n;
    g.bytes += size;
    if (g.n >= count_ || (bytes_ > 0 && g.bytes >= bytes_)) {
      flush(ctx, st, key, g);
    } else if (g.deadline == 0) {
      deadlines::move(ctx, st, key, g.deadline, now + wait_.count());
    }
    g.save(st, key);
  }
}

void batcher::open(context& ctx) { deadlines::arm(ctx); }

void batcher::on_timer(context& ctx, int64_t now_ms) {
  constexpr size_t per_step = 64; // batches sent per timer step; the rest in the next one
  size_t sent = 0;
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    for (const auto& d : deadlines::due(st, now_ms, per_step)) {
      auto g = group::load(st, d.key);
      flush(ctx, st, d.key, g);
      g.save(st, d.key);
      if (++sent == per_step) {
        ctx.wake_at(now_ms);
        return;
      }
    }
  }
  deadlines::arm(ctx);
}

bool batcher::drained(context& ctx) {
  // The input ended: every group waiting is sent (each has a deadline).
  for (auto p : ctx.partitions()) {
    auto st = ctx.partition_state(p);
    auto due = deadlines::due(st, INT64_MAX, 64);
    if (due.empty())
      continue;
    for (const auto& d : due) {
      auto g = group::load(st, d.key);
      flush(ctx, st, d.key, g);
      g.save(st, d.key);
    }
    return false;
  }
  return true;
}

void register_batch_stage(registry& reg) {
  reg.add_operator<batcher>("batch").params(
    {"count", "bytes", "wait", "per_key", "items_field", "count_field", "key_field"});
}

} // namespace troupe
