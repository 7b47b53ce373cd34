// One node: opens the store, starts the writer, builds the supervision tree
// (node supervisor -> a supervisor per stage -> the stage's workers) and runs until every stage
// finished (all finite sources drained and everything downstream consumed) or until stopped.
#pragma once

#include "config/app_config.hpp"
#include "store/lmdb_api.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <string>

namespace troupe {

struct node_outcome {
  int exit_code = 0;   // 0: drained or stopped in order; 1: failed (see message)
  std::string message;
  uint64_t commits = 0, flushes = 0; // the store's, over the run (store::stats)
};

// What a test may change about how a node runs.
struct node_options {
  std::shared_ptr<lmdb_api> lmdb; // the store's LMDB calls (null: LMDB itself; tests fail them)
};

// Runs `app` on this node. `on_started` receives the node supervisor once it runs: sending it
// stop_atom stops the node in order (each stage finishes and commits its step in flight).
node_outcome run_node(caf::actor_system& sys, const app_config& app,
                      const std::function<void(caf::actor)>& on_started = {},
                      const node_options& options = {});

} // namespace troupe
