// What a running node counts about itself, for its admin endpoint (runtime/src/admin): per
// worker, records in and out, steps and their latency, dead letters, restarts, state and last
// error; per stage, whether an operator paused it. Workers write their own counters (relaxed
// atomics: a reader sees each counter as of some recent moment); the supervision log writes
// restarts and give-ups; the admin threads read. Nothing here is persisted: counters start at
// zero with each run of the node (what the store holds, lag and dead letters, the admin reads
// from the store itself).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

// Step latencies in microseconds, in power-of-two buckets: bucket i counts latencies below 2^i
// µs (the last one everything longer). Quantiles are bucket bounds: within a factor of two.
class latency_histogram {
public:
  static constexpr size_t buckets = 32; // up to 2^31 µs, about 36 minutes
  void add(uint64_t micros);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum_micros() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t bucket(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  static uint64_t upper_bound(size_t i) { return uint64_t{1} << i; }
  // The upper bound of the bucket holding quantile q (0 < q <= 1); 0 when empty.
  uint64_t quantile(double q) const;

private:
  std::array<std::atomic<uint64_t>, buckets> buckets_{};
  std::atomic<uint64_t> count_{0}, sum_{0};
};

enum class worker_run_state : int {
  starting,   // spawned, loading its cursors and state
  running,    // taking steps
  finished,   // its input is drained (or it finished in an earlier run)
  stopped,    // stopped in order
  failed,     // died; its supervisor decides what follows
  restarting, // its supervisor restarts it after a backoff
  given_up,   // the node gave its stage up
};
const char* to_string(worker_run_state s);

struct worker_metrics {
  std::atomic<uint64_t> records_in{0}, records_out{0}, steps{0}, dead_letters{0}, restarts{0};
  std::atomic<int64_t> last_step_ms{0}; // wall clock of its last committed step; 0: none yet
  std::atomic<int> state{static_cast<int>(worker_run_state::starting)};
  std::atomic<uint32_t> in_flight{0}; // steps sent and not yet acknowledged
  std::atomic<bool> holding{false};   // paused: it saw the pause and starts no step
  latency_histogram latency; // from the start of a step to its commit

  void set_state(worker_run_state s) { state.store(static_cast<int>(s), std::memory_order_relaxed); }
  worker_run_state run_state() const {
    return static_cast<worker_run_state>(state.load(std::memory_order_relaxed));
  }
  void set_error(std::string what);
  std::string last_error() const;
  int64_t last_error_ms() const;

  // One committed step: the records it consumed, emitted and dead-lettered, and how long it took.
  void step_committed(uint64_t in, uint64_t out, uint64_t dead, uint64_t micros, int64_t now_ms);

private:
  mutable std::mutex error_mutex_;
  std::string error_;
  int64_t error_ms_ = 0;
};

struct stage_metrics {
  std::string name;
  std::vector<std::unique_ptr<worker_metrics>> workers;
  std::atomic<bool> paused{false};
  std::atomic<bool> given_up{false};
  std::atomic<uint64_t> restarts{0}; // of the whole stage, by the node's supervisor
};

struct node_metrics {
  int64_t started_ms = 0;
  std::vector<std::unique_ptr<stage_metrics>> stages; // in the app's order

  stage_metrics* stage(std::string_view name) const;
  worker_metrics* worker(std::string_view stage, uint32_t index) const;
  // "<stage>/<worker>", as the supervisors name workers; nullptr when it names none.
  worker_metrics* worker(std::string_view child) const;
};

} // namespace troupe
