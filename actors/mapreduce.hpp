// Map / shuffle / reduce from built-in stages: `tokenize` maps text to one record per word (or,
// with `combine: true`, one per distinct word of each step, carrying its count); the edge after
// it shuffles: its partitions are chosen by the records' key (the word), so every record of one
// key reaches the same reducer worker, whatever the number of workers; `reduce` folds the records
// of each key into an aggregate kept in its partition's state in LMDB (not in memory), and emits
// one record per key once its input has ended (stage::drained), in bounded steps.
#pragma once

#include "aggregate.hpp"
#include "field_path.hpp"

#include <troupe/stage.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace troupe {

// A word is a maximal run of ASCII letters, lower-cased unless `lowercase: false`.
class tokenize : public stage {
public:
  explicit tokenize(const params& p);
  void process_batch(context& ctx, const batch& records) override;

private:
  void emit(context& ctx, std::string_view word, uint64_t count);

  field_path text_;
  bool combine_, lowercase_;
  capnp::StructSchema::Field word_field_, count_field_;
  std::string word_; // scratch
};

class reduce : public stage {
public:
  explicit reduce(const params& p);
  void process(context& ctx, const record& r) override;
  bool drained(context& ctx) override;

private:
  aggregator agg_;
  capnp::StructSchema::Field key_field_;
  size_t per_step_;
};

void register_mapreduce_stages(registry& reg);

} // namespace troupe
