// The routing stages of the event-driven patterns: they pass records on unchanged (ctx.forward:
// same id, key, headers and payload bytes) and differ only in where each record goes.
//
//   copier    every record to every connected output
//   merger    every record of every input to `out`; inputs take turns, order per input kept
//   filter    records matching `where` to `out`; the others to `rejected` if connected, else
//             dropped (or dead-lettered, with `unmatched: dead_letter`: a validation step)
//   splitter  each record to the first route whose condition it matches (or to every one, with
//             `mode: all`), else to `default`; with no default, a record matching nothing is a
//             dead letter
//   sharder   each record to output shard_<i>, i = XXH3-64(key) mod the number of shards: the
//             same hash as the edges' partitions (troupe/partition.hpp); the key is a field
//             (`key: path`, a Text as its bytes, an integer in decimal) or the record's key
//
// Conditions are expressions over the input struct (expression.hpp). A record that lacks a field
// a condition or the shard key needs goes to the stage's dead-letter log naming the field, and
// the stage goes on.
#pragma once

#include "expression.hpp"
#include "field_path.hpp"

#include <troupe/stage.hpp>

#include <optional>
#include <string>
#include <vector>

namespace troupe {

class copier : public stage {
public:
  explicit copier(const params& p);
  void process(context& ctx, const record& r) override;

private:
  std::vector<std::string> ports_;
};

class merger : public stage {
public:
  explicit merger(const params&) {}
  void process(context& ctx, const record& r) override { ctx.forward("out", r); }
};

class filter : public stage {
public:
  explicit filter(const params& p);
  void process(context& ctx, const record& r) override;

private:
  expression where_;
  bool rejected_ = false;
  bool dead_letter_unmatched_ = false;
};

class splitter : public stage {
public:
  explicit splitter(const params& p);
  void process(context& ctx, const record& r) override;

private:
  struct route {
    std::string port;
    expression when;
  };
  std::vector<route> routes_;
  bool all_ = false;
  std::optional<std::string> default_;
  std::vector<const std::string*> targets_; // of the record in hand
};

class sharder : public stage {
public:
  explicit sharder(const params& p);
  void process(context& ctx, const record& r) override;

private:
  std::vector<std::string> shards_; // shard_0 .. shard_<n-1>
  std::optional<field_path> key_;
};

void register_routing_stages(registry& reg);

} // namespace troupe
