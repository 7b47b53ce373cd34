// What the sources that take JSON records from other programs over the network (http_source,
// tcp_source) read from their params: where to listen, and how to decode a record.
#pragma once

#include "field_path.hpp"

#include <troupe/json.hpp>
#include <troupe/stage.hpp>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

struct listen_address {
  std::string host; // without brackets
  int port = 0;     // 0: a free one
  std::string text() const; // HOST:PORT, an IPv6 host in brackets
};
// `address` (HOST:PORT, an IPv6 host in brackets; `fallback` when absent), or p.fail.
listen_address read_listen_address(const params& p, const std::string& fallback);

struct json_intake {
  capnp::StructSchema schema;   // the struct of the output edge
  json_decode_options options;  // required fields (key and id_field among them), unknown_fields
  std::optional<field_path> key, id_field;
};
// `required`, `unknown_fields`, `key` and, with `with_id_field`, `id_field`; or p.fail.
json_intake read_json_intake(const params& p, bool with_id_field);

// The bounded dedupe window of a source's ids (idempotency keys, id_field values): `key`, a state
// key the source has just put, is remembered in order ("seen/<n>" -> key), and the oldest one is
// erased once more than `window` are kept. In the source's state: a restart forgets none.
void remember_in_window(state_store state, const std::string& key, uint64_t window);

// A step's share of what server threads decoded: moves entries (each holding `records`) from
// the front of `waiting` onto `batch`, which may hold some already (a step attempt that threw),
// up to `max_items` records but at least one entry; `taken(entry)` sees each. With the lock of
// `waiting` held. Returns whether entries still wait.
template <class Entry, class Taken>
bool take_waiting(std::deque<std::shared_ptr<Entry>>& waiting, uint64_t& waiting_records,
                  std::vector<std::shared_ptr<Entry>>& batch, size_t max_items, Taken taken) {
  size_t n = 0;
  for (auto& e : batch)
    n += e->records.size();
  while (!waiting.empty()) {
    auto& front = waiting.front();
    if (!batch.empty() && n + front->records.size() > max_items)
      break;
    n += front->records.size();
    waiting_records -= front->records.size();
    taken(*front);
    batch.push_back(std::move(front));
    waiting.pop_front();
  }
  return !waiting.empty();
}

} // namespace troupe
