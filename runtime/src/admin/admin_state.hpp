// What the admin endpoint reads and drives: the app, the store (a reader per request), the
// workers' counters, the supervision tree's root, and a sampler that turns counters into rates
// and remembers when each partition's head passed a position (the age of the oldest unconsumed
// record: the store keeps no append times).
#pragma once

#include "config/app_config.hpp"
#include "observe/metrics.hpp"
#include "store/store.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

// Rates over the sampler's last window (about a second), per worker and for the node.
struct admin_rates {
  double commits = 0, flushes = 0;
  std::map<std::string, std::pair<double, double>> workers; // "<stage>/<w>" -> (in/s, out/s)
};

struct admin_state {
  const app_config* app = nullptr;
  store* db = nullptr;
  std::shared_ptr<store> owner; // keeps the store open while the endpoint runs
  std::shared_ptr<node_metrics> metrics;
  caf::actor_system* sys = nullptr;
  int64_t started_ms = 0;

  void set_actors(caf::actor root, caf::actor writer);
  caf::actor root() const;
  caf::actor writer() const;
  // Commits an operator's delta through the writer (admin_atom); the writer's error, if any.
  std::optional<caf::error> commit(const std::shared_ptr<step_delta>& delta) const;
  // Worker `index` of `stage` as it runs now (asked of the supervisors); invalid while it is down.
  caf::actor worker_actor(const std::string& stage, uint32_t index) const;

  // The sampler: called about once a second (the server's own thread).
  void sample(int64_t now_ms);
  admin_rates rates() const;
  // How long ago the head of (edge, partition) first passed `position` (the age of the record at
  // `position`), as far as the samples reach back; nullopt when no record is that old.
  std::optional<int64_t> age_ms(edge_id edge, partition_id p, uint64_t position, int64_t now_ms) const;

private:
  struct sample_point {
    int64_t at_ms = 0;
    uint64_t commits = 0, flushes = 0;
    std::map<std::string, std::pair<uint64_t, uint64_t>> workers;
    std::vector<std::vector<uint64_t>> heads; // [edge][partition]
  };
  mutable std::mutex mutex_;
  caf::actor root_, writer_;
  std::deque<sample_point> samples_; // oldest first, at most max_samples
  static constexpr size_t max_samples = 3600;
};

// The views the routes serve, as text (JSON unless said otherwise). Each reads the store
// through a reader of its own.
std::string status_json(admin_state& s);
std::string ps_json(admin_state& s);
std::string graph_dot(const app_config& app);
std::string prometheus_text(admin_state& s);

// What the alert rules look at, per stage.
struct stage_figure {
  std::string stage;
  bool has_inputs = false, paused = false, given_up = false;
  uint64_t lag = 0, dead_letters = 0, restarts = 0;
  uint64_t dead_letters_this_run = 0; // of dead_letters (the store's), those of this run
  std::optional<int64_t> oldest_ms;
  int64_t last_step_ms = 0; // the latest of its workers' committed steps; 0: none
  std::string last_error;
};
std::vector<stage_figure> stage_figures(admin_state& s, int64_t now_ms);

// What an operation answers: an HTTP status and its JSON body.
struct op_result {
  int status = 200;
  std::string body;
};
// Up to `max` records of an edge from `from` (default: the oldest stored) in one partition or in
// each in turn, decoded, with their payloads as JSON through the edge's struct.
op_result peek_edge(admin_state& s, const std::string& edge, std::optional<uint32_t> partition,
                    std::optional<uint64_t> from, size_t max);
// Rewinds the cursors of `stage` on its inputs to `from` in every partition (one, with
// `partition`) whose cursor is past it: the stage is paused, its steps in flight commit, the
// cursors move in one transaction, its workers read them again, and it goes on (paused again if
// it was). A position no longer stored is an error (retention); so is a finished stage, a source
// or a work queue.
op_result replay_stage(admin_state& s, const std::string& stage, uint64_t from,
                       std::optional<uint32_t> partition);
// Dead letters of `stage` (`ids`, or all): put back on the input they were read from (retry: the
// Envelope as it was, to the same partition; its stage must still be running) or deleted (purge),
// in one transaction. Ids of the others do not change.
op_result requeue_dead_letters(admin_state& s, const std::string& stage, std::vector<uint64_t> ids,
                               bool all, bool retry);

} // namespace troupe
