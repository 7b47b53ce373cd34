#include "mapreduce.hpp"

#include <cstring>
#include <unordered_map>
#include <vector>

namespace troupe {

namespace {

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
  word_field_ = field_param(p, out, "word_field", "word", is_text_type, "a Text field");
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

reduce::reduce(const params& p)
    : agg_(p, "reduce", output_struct(p, "reduce"), false),
      key_field_(field_param(p, output_struct(p, "reduce"), "key_field", "key", is_text_type,
                             "a Text field")),
      per_step_(p.get_u64("emit_per_step", 1024)) {
  if (per_step_ == 0)
    p.fail("emit_per_step", "must be at least 1");
}

void reduce::process(context& ctx, const record& r) {
  if (!r.has_key()) {
    ctx.dead_letter(r, "reduce: the record has no key (reduce folds records by key)");
    return;
  }
  std::string key = value_prefix + std::string(r.key());
  auto state = ctx.state();
  auto acc = state.get(key).value_or(std::string{});
  auto why = agg_.fold(acc, r, r.key());
  if (!why.empty()) {
    ctx.dead_letter(r, "reduce: " + why);
    return;
  }
  state.put(key, acc);
}

bool reduce::drained(context& ctx) {
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
      auto key = k.substr(1);
      auto out = ctx.emit("out");
      out.key(key);
      auto b = out.init_payload_dynamic();
      b.set(key_field_, capnp::Text::Reader(key.c_str(), key.size()));
      agg_.write(b, v);
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
