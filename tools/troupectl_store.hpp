// What troupectl reads of a stopped node's data dir, read-only (MDB_RDONLY): the dead letters of
// its stages and where its edges and consumer groups stand, by the layout of
// runtime/STORE_FORMAT.md, every value checked against its checksum.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace troupe::ctl {

constexpr int exit_ok = 0, exit_failed = 1, exit_not_found = 2, exit_usage = 64;

struct dead_letter {
  std::string stage;
  uint64_t id = 0;
  std::string error, input;
  uint32_t attempts = 0, partition = 0;
  int64_t failed_at = 0;
  uint64_t input_seq = 0, source_position = 0;
  std::string record;
};

// Where one edge stands, summed over its partitions; per consumer group, what it consumed and
// what it has yet to (a group that never committed in a partition starts at its tail).
struct edge_status {
  uint32_t partitions = 0;
  uint64_t appended = 0, stored = 0;
  std::map<std::string, uint64_t> consumed, lag;
};

class offline_store {
public:
  // nullopt, with a message and an exit code, when the dir holds no readable store.
  static std::optional<offline_store> open(const std::string& dir, std::string& why, int& code);
  offline_store(offline_store&& o) noexcept;
  ~offline_store();

  std::vector<std::string> stages_with_dead_letters();
  // The stage's dead letters (all, or the one numbered `only`); false when the stage has no log.
  // A damaged entry stops the walk with `problem` set.
  bool dead_letters(const std::string& stage, std::optional<uint64_t> only,
                    std::vector<dead_letter>& out, std::string& problem);
  uint64_t dead_letter_count(const std::string& stage);
  // Every edge by name; `problem` set when a value is damaged.
  std::map<std::string, edge_status> edges(std::string& problem);
  // Calls fn(partition, seq, record) for up to `max` stored records of `edge` with seq >= `from`,
  // in partition `only` or in each partition in turn; every chunk's checksum is verified (a
  // damaged one stops the walk with `problem` set). False when the store has no such edge.
  bool records(const std::string& edge, std::optional<uint32_t> only, uint64_t from, size_t max,
               const std::function<void(uint32_t, uint64_t, std::string_view)>& fn,
               std::string& problem);

private:
  offline_store() = default;
  MDB_env* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
};

} // namespace troupe::ctl
