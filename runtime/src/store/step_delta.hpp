// Everything one step writes, gathered in memory by the stage's actor and applied by the node's
// writer in one LMDB transaction (together with other stages' steps: group commit).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

using edge_id = uint32_t;
using stage_id = uint32_t;
using partition_id = uint32_t;

// Keyed state has two spaces: what the stage's code sees, and the engine's own bookkeeping (a
// partition's done flag, the next record id), so they can never collide.
enum class state_space : uint8_t { runtime = 0, user = 1 };

// Whose state it is. A partition's state moves with the partition when a stage is rescaled (a
// key's state is in one place whatever the worker count); a worker's state stays with the
// worker index (a sink's file length, a source's position).
enum class state_scope : uint8_t { partition = 0, worker = 1 };

struct step_delta {
  // Output records in emission order; their bytes live back to back in `arena`.
  struct output {
    edge_id edge;
    partition_id partition;
    uint64_t offset;
    uint32_t size;
  };
  struct state_write {
    state_scope scope;
    uint32_t index; // the partition or the worker
    state_space space;
    std::string key;
    std::optional<std::string> value; // nullopt erases
  };
  // The consuming stage's cursor in one partition of an edge. `group` indexes the edge's
  // consumer groups (edge_spec::groups); `bytes` counts the record bytes before `next`, so the
  // store knows how many unconsumed bytes an edge holds.
  struct cursor_move {
    edge_id edge;
    uint32_t group;
    partition_id partition;
    uint64_t next; // first sequence number not yet consumed
    uint64_t bytes;
  };
  struct dead_letter {
    std::string bytes; // a DeadLetter message
  };

  stage_id stage = 0;
  uint32_t worker = 0;
  uint64_t incarnation = 0; // the writer refuses deltas of replaced worker incarnations
  uint64_t step = 0;        // per incarnation, from 1: the writer commits a worker's steps in order
  std::string arena;
  std::vector<output> outputs;
  std::vector<state_write> state;
  std::vector<cursor_move> cursors;
  std::vector<dead_letter> dead;
  // Dead letters of `stage` to delete, by number (an operator's retry or purge); the delta fails
  // with errc::not_found, and nothing of it applies, when one is not there.
  std::vector<uint64_t> remove_dead;
  // Edges whose consumers should be woken even without new records (the producer finished).
  std::vector<edge_id> wake;

  void add_output(edge_id e, partition_id p, std::string_view bytes) {
    outputs.push_back({e, p, arena.size(), static_cast<uint32_t>(bytes.size())});
    arena.append(bytes);
  }
  std::string_view output_bytes(const output& o) const {
    return std::string_view{arena}.substr(o.offset, o.size);
  }
  bool empty() const {
    return outputs.empty() && state.empty() && cursors.empty() && dead.empty() &&
           remove_dead.empty() && wake.empty();
  }
  void clear() {
    arena.clear();
    outputs.clear();
    state.clear();
    cursors.clear();
    dead.clear();
    remove_dead.clear();
    wake.clear();
  }
};

using step_delta_ptr = std::shared_ptr<step_delta>;

} // namespace troupe
