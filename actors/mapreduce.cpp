#include "mapreduce.hpp"

#include <cstring>
#include <unordered_map>
#include <vector>

namespace troupe {

namespace {

capnp::StructSchema output_struct(const params& p, const char* who) {
  auto s = p.output_schema("out");
  if (!s)
    p.fail("type", std::string(who) + " builds records, so its output edge must carry a struct "
                                      "(edges.<edge>.type, or schema.payload)");
  return *s;
}

bool is_integer_type(capnp::Type t) { return is_integer(t.which()); }

bool is_float(capnp::Type t) {
  return t.which() == capnp::schema::Type::FLOAT32 || t.which() == capnp::schema::Type::FLOAT64;
}

// A top-level field of `s` named by the param `key` (default `fallback`), of a type `fits` accepts.
capnp::StructSchema::Field field_param(const params& p, capnp::StructSchema s, const std::string& key,
                                       const std::string& fallback, bool (*fits)(capnp::Type),
                                       const char* wanted) {
  auto name = p.get_string(key, fallback);
  auto f = s.findFieldByName(name);
  if (f == nullptr)
    p.fail(key, std::string(s.getShortDisplayName().cStr()) + " has no field '" + name +
                  "' (set " + key + ")");
  auto field = *kj::_::readMaybe(f);
  if (!fits(field.getType()))
    p.fail(key, "'" + name + "' must be " + wanted);
  return field;
}

bool is_text(capnp::Type t) { return t.which() == capnp::schema::Type::TEXT; }
bool is_number(capnp::Type t) { return is_integer_type(t) || is_float(t); }

// Aggregates in state: 8 bytes (an int64 or a double), or 16 for avg (sum, count).
struct aggregate {
  int64_t i = 0;
  double f = 0;
  uint64_t n = 0;
};

std::string encode(const aggregate& a, bool integral, bool avg) {
  std::string out(avg ? 16 : 8, '\0');
  if (integral)
    std::memcpy(&out[0], &a.i, 8);
  else
    std::memcpy(&out[0], &a.f, 8);
  if (avg)
    std::memcpy(&out[8], &a.n, 8);
  return out;
}

std::optional<aggregate> decode(const std::optional<std::string>& v, bool integral, bool avg) {
  if (!v || v->size() != (avg ? 16u : 8u))
    return std::nullopt;
  aggregate a;
  if (integral)
    std::memcpy(&a.i, v->data(), 8);
  else
    std::memcpy(&a.f, v->data(), 8);
  if (avg)
    std::memcpy(&a.n, v->data() + 8, 8);
  return a;
}

// A reducer's state, per partition: "v" + key -> the aggregate, "#at" -> the last key emitted
// while draining, "#done" once the partition's totals are all out. "u" sorts just before every
// "v" key: the scan starts after it.
constexpr const char* value_prefix = "v";
constexpr const char* before_values = "u";

} // namespace

// -- tokenize -----------------------------------------------------------------------------------

namespace {
field_path text_path(const params& p) {
  std::optional<field_path> path;
  try {
    path.emplace(input_struct(p, "tokenize"), p.get_string("field", "text"));
  } catch (const std::invalid_argument& e) {
    p.fail("field", std::string(e.what()) + " (set field: to the Text field to split)");
  }
  return std::move(*path);
}
} // namespace

tokenize::tokenize(const params& p)
    : text_(text_path(p)),
      combine_(p.get_bool("combine", false)),
      lowercase_(p.get_bool("lowercase", true)) {
  if (text_.type().which() != capnp::schema::Type::TEXT)
    p.fail("field", "'" + text_.text() + "' must be a Text field");
  auto out = output_struct(p, "tokenize");
  word_field_ = field_param(p, out, "word_field", "word", is_text, "a Text field");
  count_field_ = field_param(p, out, "count_field", "count", is_integer_type, "an integer field");
}

void tokenize::emit(context& ctx, std::string_view word, uint64_t count) {
  auto out = ctx.emit("out");
  out.key(word);
  word_.assign(word.data(), word.size()); // Text wants its NUL
  auto b = out.init_payload_dynamic();
  b.set(word_field_, capnp::Text::Reader(word_.c_str(), word_.size()));
  b.set(count_field_, count);
}

void tokenize::process_batch(context& ctx, const batch& records) {
  // Each text lower-cased once into a buffer of the step; words are views into those buffers,
  // counted (with combine) in a map keyed by the views, in the order they were first seen.
  std::vector<std::string> texts;
  texts.reserve(records.size());
  std::unordered_map<std::string_view, uint64_t> counts;
  std::vector<std::string_view> order;
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  for (size_t i = 0; i < records.size(); ++i) {
    auto r = records[i];
    auto v = text_.read(r.payload_any().getAs<capnp::AnyStruct>());
    if (!v) {
      ctx.dead_letter(r, "tokenize: the record has no field '" + text_.text() + "'");
      continue;
    }
    auto& text = texts.emplace_back(v->text);
    if (lowercase_)
      for (auto& c : text)
        if (c >= 'A' && c <= 'Z')
          c = static_cast<char>(c - 'A' + 'a');
    for (size_t at = 0; at < text.size();) {
      if (!letter(text[at])) {
        ++at;
        continue;
      }
      size_t end = at + 1;
      while (end < text.size() && letter(text[end]))
        ++end;
      std::string_view word{text.data() + at, end - at};
      at = end;
      if (!combine_) {
        emit(ctx, word, 1);
        continue;
      }
      auto [it, fresh] = counts.try_emplace(word, 0);
      if (fresh)
        order.push_back(word);
      ++it->second;
    }
  }
  for (auto w : order)
    emit(ctx, w, counts[w]);
}

// -- reduce -------------------------------------------------------------------------------------

reduce::reduce(const params& p) : per_step_(p.get_u64("emit_per_step", 1024)) {
  auto name = p.get_string("op");
  if (name == "count") op_ = op::count;
  else if (name == "sum") op_ = op::sum;
  else if (name == "min") op_ = op::min;
  else if (name == "max") op_ = op::max;
  else if (name == "avg") op_ = op::avg;
  else p.fail("op", "expected count, sum, min, max or avg, found '" + name + "'");
  if (per_step_ == 0)
    p.fail("emit_per_step", "must be at least 1");
  if (op_ != op::count) {
    if (!p.has("field"))
      p.fail("op", "'" + name + "' folds a field: set field: <path>");
    try {
      value_.emplace(input_struct(p, "reduce"), p.get_string("field"));
    } catch (const std::invalid_argument& e) {
      p.fail("field", e.what());
    }
    if (!is_number(value_->type()))
      p.fail("field", "'" + value_->text() + "' must be a number field to " + name);
    int_fold_ = is_integer_type(value_->type());
  } else {
    int_fold_ = true;
  }
  integral_ = int_fold_ && op_ != op::avg;
  auto out = output_struct(p, "reduce");
  key_field_ = field_param(p, out, "key_field", "key", is_text, "a Text field");
  value_field_ = field_param(p, out, "value_field", "value",
                             integral_ ? is_number : is_float,
                             integral_ ? "a number field" : "a Float32 or Float64 field");
}

void reduce::process(context& ctx, const record& r) {
  if (!r.has_key()) {
    ctx.dead_letter(r, "reduce: the record has no key (reduce folds records by key)");
    return;
  }
  bool avg = op_ == op::avg;
  std::string key = value_prefix + std::string(r.key());
  auto state = ctx.state();
  auto had = decode(state.get(key), int_fold_, avg);
  aggregate a = had.value_or(aggregate{});
  if (op_ == op::count) {
    ++a.i;
  } else {
    auto v = value_->read(r.payload_any().getAs<capnp::AnyStruct>());
    if (!v) {
      ctx.dead_letter(r, "reduce: the record has no field '" + value_->text() + "'");
      return;
    }
    if (int_fold_) { // exactly, in 64-bit signed integers; what does not fit is refused
      if (v->k == field_value::kind::unsigned_integer && v->u > uint64_t(INT64_MAX)) {
        ctx.dead_letter(r, "reduce: " + value_->text() + " = " + std::to_string(v->u) +
                             " does not fit a 64-bit signed integer");
        return;
      }
      int64_t x = v->k == field_value::kind::unsigned_integer ? static_cast<int64_t>(v->u) : v->i;
      bool adds = op_ == op::sum || op_ == op::avg;
      int64_t sum = 0;
      if (had && adds && __builtin_add_overflow(a.i, x, &sum)) {
        ctx.dead_letter(r, "reduce: adding " + std::to_string(x) + " to the " + (avg ? "sum" : "total") +
                             " of key '" + std::string(r.key()) + "' (" + std::to_string(a.i) +
                             ") overflows a 64-bit signed integer");
        return;
      }
      a.i = !had ? x : adds ? sum : op_ == op::min ? std::min(a.i, x) : std::max(a.i, x);
      ++a.n;
    } else {
      double x = v->k == field_value::kind::floating ? v->f
                 : v->k == field_value::kind::unsigned_integer ? static_cast<double>(v->u)
                                                               : static_cast<double>(v->i);
      a.f = !had ? x : op_ == op::min ? std::min(a.f, x) : op_ == op::max ? std::max(a.f, x) : a.f + x;
      ++a.n;
    }
  }
  state.put(key, encode(a, int_fold_, avg));
}

bool reduce::drained(context& ctx) {
  bool avg = op_ == op::avg;
  for (auto p : ctx.partitions()) {
    auto state = ctx.partition_state(p);
    if (state.get("#done"))
      continue;
    auto at = state.get("#at").value_or(before_values);
    auto entries = state.scan(at, per_step_);
    bool more = entries.size() == per_step_;
    for (const auto& [k, v] : entries) {
      if (k.compare(0, 1, value_prefix) != 0) {
        more = false;
        break;
      }
      auto a = decode(v, int_fold_, avg);
      if (!a)
        throw std::logic_error("reduce: the state of key '" + k.substr(1) + "' is not an aggregate");
      auto key = k.substr(1);
      auto out = ctx.emit("out");
      out.key(key);
      auto b = out.init_payload_dynamic();
      b.set(key_field_, capnp::Text::Reader(key.c_str(), key.size()));
      if (integral_)
        b.set(value_field_, a->i);
      else if (avg && int_fold_) // an exact integer sum, divided once
        b.set(value_field_, a->n ? static_cast<double>(static_cast<long double>(a->i) /
                                                       static_cast<long double>(a->n))
                                 : 0.0);
      else
        b.set(value_field_, avg ? (a->n ? a->f / static_cast<double>(a->n) : 0.0) : a->f);
      at = k;
    }
    state.put("#at", at);
    if (!more)
      state.put("#done", "1");
    return false; // one partition's slice per step; the next call goes on
  }
  return true;
}

void register_mapreduce_stages(registry& reg) {
  reg.add_operator<tokenize>("tokenize").params(
    {"field", "combine", "lowercase", "word_field", "count_field"});
  reg.add_operator<reduce>("reduce").params(
    {"op", "field", "key_field", "value_field", "emit_per_step"});
}

} // namespace troupe
