// One worker of a stage: the actor that runs the stage's steps.
//
// A step reads a batch from the worker's committed cursors (or asks a source to produce), runs
// the stage's code, and sends everything the step wrote to the node's writer as one delta; the
// next step starts only after that delta committed. So the worker's in-memory cursors always
// equal its committed ones, and a restarted worker (which first waits for the writer to commit
// whatever its predecessor sent) resumes exactly after the last committed step.
//
// Failures: an exception from stage code abandons the step (nothing of it is sent), and the step
// is retried after a growing delay with the records' attempt count raised. After max_attempts
// the batch is retried record by record; a record that still throws goes to the stage's
// dead-letter log with the error, and the worker goes on. Failures outside the records (open()
// throws, a store error, a source that keeps throwing) end the actor with an error for its
// supervisor to handle.
//
// Workers: a stage with N workers splits each input edge by sequence number (worker w takes
// seq % N == w); each worker has its own cursor, "<stage>/<w>", and its own keyed state.
#pragma once

#include "config/app_config.hpp"
#include "store/store.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace troupe {

// Stages the node supervisor gave up on in this run. Their consumers stop once they consumed
// what there is, without marking themselves done (a later run picks up where they stopped).
class failed_stages {
public:
  void add(stage_id s) {
    std::lock_guard<std::mutex> guard{mutex_};
    failed_.insert(s);
  }
  bool contains(stage_id s) const {
    std::lock_guard<std::mutex> guard{mutex_};
    return failed_.count(s) > 0;
  }

private:
  mutable std::mutex mutex_;
  std::set<stage_id> failed_;
};

// What every worker of a node shares. Outlives all workers.
struct node_context {
  store* db = nullptr;
  std::shared_ptr<store> owner; // keeps db open while any worker runs
  caf::actor writer;
  const app_config* app = nullptr;
  std::shared_ptr<failed_stages> failed = std::make_shared<failed_stages>();
};

struct worker_spec {
  const stage_config* config = nullptr;
  stage_id stage = 0;
  uint32_t worker = 0;
  std::vector<edge_id> inputs;
  std::vector<std::string> input_names;
  std::map<std::string, edge_id, std::less<>> ports; // output port -> edge
  std::vector<edge_id> outputs;                       // distinct output edges
  std::vector<uint64_t> output_caps;                  // max_records of each output edge
  std::vector<std::vector<stage_id>> output_consumers; // stages reading each output edge
  std::vector<std::pair<stage_id, uint32_t>> upstream; // producers of the inputs: (stage, workers)
};

// The consumer group name of a stage worker.
std::string group_name(std::string_view stage, uint32_t worker);

// Spawns the worker from its supervisor (detached when the stage type is blocking).
caf::actor spawn_stage_worker(caf::event_based_actor* parent,
                              std::shared_ptr<const node_context> node, worker_spec spec);

} // namespace troupe
