#include "deadlines.hpp"

#include "state_bytes.hpp"

namespace troupe::deadlines {

namespace {
std::string state_key(int64_t at, std::string_view key) {
  std::string k(1, 'd');
  state_bytes::put_ordered_i64(k, at);
  k.append(key.data(), key.size());
  return k;
}
} // namespace

void move(context& ctx, state_store& st, std::string_view key, int64_t& current, int64_t at) {
  if (current == at)
    return;
  if (current != 0)
    st.erase(state_key(current, key));
  current = at;
  if (at != 0) {
    st.put(state_key(at, key), "");
    ctx.wake_at(at);
  }
}

std::vector<entry> due(const state_store& st, int64_t until, size_t max) {
  std::vector<entry> out;
  for (auto& [k, v] : st.scan("d", max)) {
    if (k.size() < 9 || k[0] != 'd')
      break;
    auto at = state_bytes::get_ordered_i64(k, 1);
    if (at > until)
      break;
    auto key = k.substr(9);
    out.push_back({std::move(k), at, std::move(key)});
  }
  return out;
}

void arm(context& ctx) {
  for (auto p : ctx.partitions()) {
    auto first = due(ctx.partition_state(p), INT64_MAX, 1);
    if (!first.empty())
      ctx.wake_at(first[0].at);
  }
}

} // namespace troupe::deadlines
