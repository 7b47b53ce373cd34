// One worker of a stage: the actor that runs the stage's steps.
//
// A step reads a batch from the worker's partitions of its inputs (or asks a source to produce),
// runs the stage's code, and sends everything the step wrote to the node's writer as one delta.
// Steps are pipelined: the worker runs the next step while earlier ones commit (at most
// `batch.in_flight` of them), reading its own uncommitted state; the writer commits a worker's
// steps in order and refuses the successors of a step that failed, which the worker then sends
// again, in order. A restarted worker first waits until the writer has settled whatever its
// predecessor sent (committed before the barrier, or refused after it as stale), then resumes
// exactly after the last committed step.
//
// Partitions: each input edge has P partitions; worker w of N owns the contiguous range
// [w*P/N, (w+1)*P/N) and reads only those, each in order. The consumer group is the stage: its
// cursor per partition moves with the partition when N changes, as does the partition's state.
//
// Failures: an exception from stage code abandons the step (nothing of it is sent), and the step
// is retried after a growing delay with the records' attempt count raised. After max_attempts
// the batch is retried record by record; a record that still throws goes to the stage's
// dead-letter log with the error, and the worker goes on. A record that kills the whole process
// is caught the same way across restarts: before its first step after a start, a worker commits
// a marker of where it starts; a start that finds its own marker at the same place knows the last
// attempt died, and after max_attempts such deaths the batch is retried record by record under the
// same protection. Failures outside the records end the actor with an error for its supervisor:
// a permanent_error or damage in the store gives the stage (damage: the node) up at once.
#pragma once

#include "config/app_config.hpp"
#include "observe/metrics.hpp"
#include "store/store.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace troupe {

namespace detail {
class lease_table;
}

// (fatal_atom, std::string): a worker met damage in the store, or another failure that must stop
// the whole node; sent to node_context::node.
using fatal_atom = caf::atom_constant<caf::atom("fatal")>;
// (reload_atom) -> bool: a paused worker with no step in flight reads its cursors again from the
// store (an operator rewound them: troupectl replay); false when it cannot (a step is in flight,
// or it is a source or a work queue, whose positions are not cursors alone).
using reload_atom = caf::atom_constant<caf::atom("reload")>;

// Stages that produce nothing more in this run: given up by the node supervisor, or stopped
// because a stage they depend on was. Their consumers stop once they consumed what there is,
// without marking themselves done (a later run picks up where they stopped).
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
  caf::actor node; // receives fatal_atom
  const app_config* app = nullptr;
  std::shared_ptr<failed_stages> failed = std::make_shared<failed_stages>();
  // Workers ("<stage>/<worker>") whose code killed the last run with a signal; nullopt when no
  // worker is known to (then every worker inside a step counts the death). See crash_blame.hpp.
  std::optional<std::set<std::string>> blamed;
  // This run (this node process), and the last run that stopped in order (0 if none): crash
  // markers tell deaths of the process from restarts and stops with them.
  uint64_t run_id = 0;
  uint64_t clean_run = 0;
  // What the workers count about themselves, for the admin endpoint (observe/metrics.hpp).
  std::shared_ptr<node_metrics> metrics = std::make_shared<node_metrics>();
};

struct worker_spec {
  const stage_config* config = nullptr;
  stage_id stage = 0;
  uint32_t worker = 0;
  uint32_t partitions = 1;             // the stage's state partitions (its inputs'; 1 for a source)
  std::vector<partition_id> owned;     // this worker's partitions of every input
  std::vector<edge_id> inputs;
  std::vector<std::string> input_names;
  std::vector<uint32_t> input_groups;  // the stage's consumer-group index in each input
  std::map<std::string, edge_id, std::less<>> ports; // output port -> edge
  std::vector<edge_id> outputs;                       // distinct output edges
  std::vector<std::vector<stage_id>> output_consumers; // stages reading each output edge
  std::vector<stage_id> upstream;                      // producers of the inputs
  // Of each, the partitions it runs on this node (its done marks to wait for): all of them but
  // for a stage spread over several nodes.
  std::vector<std::vector<partition_id>> upstream_partitions;
  std::vector<uint32_t> edge_partitions;               // every edge's partition count, by id
  // A leasing stage's items, shared by its workers (they each own every partition); null for
  // other stages. See lease_table.hpp.
  std::shared_ptr<detail::lease_table> leases;
};

// The lease table of a leasing stage, for its worker specs.
std::shared_ptr<detail::lease_table> make_lease_table(const stage_config& cfg,
                                                      const worker_spec& spec);

// The input partitions worker `w` of `workers` owns when the inputs have `partitions`.
std::vector<partition_id> owned_partitions(uint32_t w, uint32_t workers, uint32_t partitions);

// Spawns the worker from its supervisor (detached when the stage type is blocking).
caf::actor spawn_stage_worker(caf::event_based_actor* parent,
                              std::shared_ptr<const node_context> node, worker_spec spec);

} // namespace troupe
