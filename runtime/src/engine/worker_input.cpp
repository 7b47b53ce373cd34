// A worker's inputs: the partitions it owns, reading a batch from them, and the state of the
// stages before and after it.
#include "engine/worker.hpp"

#include "base/log.hpp"

#include <xxhash.h>

#include <algorithm>
#include <utility>

namespace troupe {

std::vector<partition_id> owned_partitions(uint32_t w, uint32_t workers, uint32_t partitions) {
  std::vector<partition_id> out;
  workers = std::max<uint32_t>(workers, 1);
  uint64_t first = uint64_t{w} * partitions / workers;
  uint64_t last = uint64_t{w + 1} * partitions / workers;
  for (auto p = first; p < last; ++p)
    out.push_back(static_cast<partition_id>(p));
  return out;
}

namespace detail {

// Reads up to `max` records of the worker's partitions into st.records and st.batch_end. Pairs
// of (input, partition) take turns being read first. With `below` (isolating record by record),
// only records below those positions are read, and the first pair with one comes first whatever
// the turn, so the record picked depends only on the positions (as isolation across restarts
// needs) and newer records of other partitions cannot starve the ones being isolated.
caf::error read_batch(worker_state& st, size_t max, const std::vector<cursor_pos>* below) {
  bool fixed_order = below != nullptr;
  st.records.clear();
  st.undecodable.clear();
  st.undecodable_at.clear();
  st.batch_end = st.sent;
  const auto& owned = st.spec.owned;
  auto pairs = st.sent.size();
  for (size_t n = 0; n < pairs && st.records.size() < max; ++n) {
    auto slot = fixed_order ? n : (st.rotation + n) % pairs;
    auto input = slot / owned.size();
    auto p = owned[slot % owned.size()];
    auto edge = st.spec.inputs[input];
    const auto& name = st.spec.input_names[input];
    auto info = st.reader->partition(edge, p);
    if (!info)
      return info.error();
    auto& pos = st.batch_end[slot];
    if (pos.next < info->tail) { // trimmed below us: a group new to the edge starts at the tail
      if (pos.next > 0 && std::exchange(st.told_behind[slot], pos.next) != pos.next)
        // a `slow: skip` group left behind: told so, once per jump
        log_event(log_level::warn, st.who,
                  std::to_string(info->tail - pos.next) + " records of " + name +
                    (st.spec.edge_partitions[edge] > 1 ? " (partition " + std::to_string(p) + ")"
                                                       : "") +
                    " were trimmed before this stage read them (slow: skip: it holds nobody "
                    "back): it goes on at " + std::to_string(info->tail));
      pos = {info->tail, info->bytes_tail};
    }
    auto end = below ? std::min(info->head, (*below)[slot].next) : info->head;
    if (pos.next >= end)
      continue;
    auto visited = st.reader->read(edge, p, pos.next,
                                   std::min<uint64_t>(max - st.records.size(), end - pos.next),
                                   [&](uint64_t seq, std::string_view bytes) {
      auto idx = st.records.size() + st.undecodable.size();
      if (st.decoders.size() <= idx)
        st.decoders.push_back(std::make_unique<envelope_decoder>());
      auto& dec = *st.decoders[idx];
      pos = {seq + 1, pos.bytes + bytes.size()};
      if (auto err = check_framing(bytes)) {
        // A record that is not even framed as a message cannot be processed by anyone:
        // dead-letter it with whatever this step commits.
        log_event(log_level::warn, st.who,
                  "record " + std::to_string(seq) + " of " + name + " (partition " +
                    std::to_string(p) + ") goes to the dead-letter log: " + describe(err));
        auto why = describe(err); // info holds views: the text must outlive it
        dead_letter_info info;
        info.stage = st.spec.config->name;
        info.error = why;
        info.input = name;
        info.partition = p;
        info.input_seq = seq;
        info.record = bytes;
        st.undecodable.push_back({make_dead_letter(info)});
        st.undecodable_at.emplace_back(slot, seq);
        return true;
      }
      record_impl r;
      r.bytes = bytes;
      r.input = &name;
      r.partition = p;
      r.position = seq;
      r.end_bytes = pos.bytes;
      r.slot = static_cast<uint32_t>(slot);
      r.extra_attempts = st.failures;
      r.decoder = &dec;
      r.step = &st.step;
      st.records.push_back(r);
      return true;
    });
    if (!visited)
      return visited.error();
  }
  st.rotation = (st.rotation + 1) % std::max<size_t>(1, pairs);
  return {};
}

// Whether an output log is at its cap (backpressure), and whether it can never drain because a
// stage reading it was given up; or whether every stage reading any output was given up (what
// this stage makes would only pile up: a source that never ends would run on for nothing).
outputs output_state(worker_state& st) {
  auto result = outputs::free;
  const auto& edges = st.node->db->layout().edges;
  bool any_consumer = false, all_failed = true;
  for (const auto& consumers : st.spec.output_consumers)
    for (auto consumer : consumers) {
      any_consumer = true;
      all_failed = all_failed && st.node->failed->contains(consumer);
    }
  if (any_consumer && all_failed)
    return outputs::all_consumers_failed;
  for (size_t i = 0; i < st.spec.outputs.size(); ++i) {
    auto e = st.spec.outputs[i];
    auto b = st.node->db->backlog(e);
    const auto& spec = edges[e];
    bool full = (spec.max_records > 0 && b.records >= spec.max_records) ||
                (spec.max_bytes > 0 && b.bytes >= spec.max_bytes);
    if (!full)
      continue;
    result = outputs::full;
    for (auto consumer : st.spec.output_consumers[i])
      if (st.node->failed->contains(consumer))
        return outputs::full_and_consumer_failed;
  }
  return result;
}

// Whether every producer of this worker's inputs finished (each of its partitions done,
// persisted) or was given up in this run (failed, not persisted).
caf::expected<upstream> upstream_status(worker_state& st) {
  bool failed = false;
  const auto& stages = st.node->db->layout().stages;
  for (size_t i = 0; i < st.spec.upstream.size(); ++i) {
    auto u = st.spec.upstream[i];
    if (st.node->failed->contains(u)) {
      failed = true;
      continue;
    }
    std::vector<partition_id> all;
    const auto* parts = i < st.spec.upstream_partitions.size() &&
                            !st.spec.upstream_partitions[i].empty()
                          ? &st.spec.upstream_partitions[i]
                          : nullptr;
    if (!parts) {
      for (partition_id p = 0; p < stages[u].partitions; ++p)
        all.push_back(p);
      parts = &all;
    }
    for (auto p : *parts) {
      auto done = st.reader->state(u, state_scope::partition, p, state_space::runtime, "done");
      if (!done)
        return done.error();
      if (!*done)
        return upstream::running;
    }
  }
  return failed ? upstream::failed : upstream::done;
}

uint64_t fingerprint(const std::vector<cursor_pos>& positions) {
  std::vector<uint64_t> flat;
  flat.reserve(positions.size());
  for (const auto& p : positions)
    flat.push_back(p.next);
  return XXH3_64bits(flat.data(), flat.size() * sizeof(uint64_t));
}

// The cursor moves of the step in hand: every (input, partition) whose position it advanced.
void take_only(worker_state& st, size_t n) {
  if (n >= st.records.size())
    return;
  auto end = st.sent;
  for (size_t i = 0; i < n; ++i) {
    const auto& r = st.records[i];
    end[r.slot] = {r.position + 1, r.end_bytes};
  }
  // A record that did not decode, read past the new end, is dead-lettered when it is read again.
  size_t kept = 0;
  for (size_t i = 0; i < st.undecodable.size(); ++i) {
    auto [slot, seq] = st.undecodable_at[i];
    if (seq >= end[slot].next)
      continue;
    st.undecodable[kept] = std::move(st.undecodable[i]);
    st.undecodable_at[kept++] = st.undecodable_at[i];
  }
  st.undecodable.resize(kept);
  st.undecodable_at.resize(kept);
  st.records.resize(n);
  st.batch_end = end;
}

std::vector<step_delta::cursor_move> cursor_moves(const worker_state& st) {
  std::vector<step_delta::cursor_move> moves;
  const auto& owned = st.spec.owned;
  for (size_t slot = 0; slot < st.batch_end.size(); ++slot) {
    if (st.batch_end[slot].next == st.sent[slot].next)
      continue;
    auto input = slot / owned.size();
    moves.push_back({st.spec.inputs[input], st.spec.input_groups[input], owned[slot % owned.size()],
                     st.batch_end[slot].next, st.batch_end[slot].bytes});
  }
  return moves;
}

} // namespace detail
} // namespace troupe
