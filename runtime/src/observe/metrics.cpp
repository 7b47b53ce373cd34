#include "observe/metrics.hpp"

#include <chrono>
#include <cstdlib>

namespace troupe {

void latency_histogram::add(uint64_t micros) {
  size_t i = 0;
  while (i + 1 < buckets && micros >= upper_bound(i))
    ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(micros, std::memory_order_relaxed);
}

uint64_t latency_histogram::quantile(double q) const {
  std::array<uint64_t, buckets> seen;
  uint64_t total = 0;
  for (size_t i = 0; i < buckets; ++i)
    total += seen[i] = bucket(i);
  if (total == 0)
    return 0;
  auto rank = static_cast<uint64_t>(q * static_cast<double>(total));
  uint64_t below = 0;
  for (size_t i = 0; i < buckets; ++i) {
    below += seen[i];
    if (below >= rank && below > 0)
      return upper_bound(i);
  }
  return upper_bound(buckets - 1);
}

const char* to_string(worker_run_state s) {
  switch (s) {
    case worker_run_state::starting: return "starting";
    case worker_run_state::running: return "running";
    case worker_run_state::finished: return "finished";
    case worker_run_state::stopped: return "stopped";
    case worker_run_state::failed: return "failed";
    case worker_run_state::restarting: return "restarting";
    case worker_run_state::given_up: return "given_up";
  }
  return "unknown";
}

void worker_metrics::set_error(std::string what) {
  std::lock_guard<std::mutex> lock{error_mutex_};
  error_ = std::move(what);
  error_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string worker_metrics::last_error() const {
  std::lock_guard<std::mutex> lock{error_mutex_};
  return error_;
}

int64_t worker_metrics::last_error_ms() const {
  std::lock_guard<std::mutex> lock{error_mutex_};
  return error_ms_;
}

void worker_metrics::step_committed(uint64_t in, uint64_t out, uint64_t dead, uint64_t micros,
                                    int64_t now_ms) {
  records_in.fetch_add(in, std::memory_order_relaxed);
  records_out.fetch_add(out, std::memory_order_relaxed);
  dead_letters.fetch_add(dead, std::memory_order_relaxed);
  steps.fetch_add(1, std::memory_order_relaxed);
  last_step_ms.store(now_ms, std::memory_order_relaxed);
  latency.add(micros);
}

stage_metrics* node_metrics::stage(std::string_view name) const {
  for (const auto& s : stages)
    if (s->name == name)
      return s.get();
  return nullptr;
}

worker_metrics* node_metrics::worker(std::string_view stage_name, uint32_t index) const {
  auto* s = stage(stage_name);
  return s && index < s->workers.size() ? s->workers[index].get() : nullptr;
}

worker_metrics* node_metrics::worker(std::string_view child) const {
  auto slash = child.rfind('/');
  if (slash == std::string_view::npos || slash + 1 == child.size())
    return nullptr;
  char* end = nullptr;
  std::string digits{child.substr(slash + 1)};
  auto index = std::strtoul(digits.c_str(), &end, 10);
  if (*end != '\0')
    return nullptr;
  return worker(child.substr(0, slash), static_cast<uint32_t>(index));
}

} // namespace troupe
