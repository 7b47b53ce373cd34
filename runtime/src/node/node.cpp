#include "node/node.hpp"

#include "admin/admin_server.hpp"
#include "admin/monitor.hpp"
#include "base/log.hpp"
#include "codec/codec.hpp"
#include "engine/crash_blame.hpp"
#include "engine/stage_actor.hpp"
#include "net/link_hub.hpp"
#include "store/store.hpp"
#include "supervision/supervisor.hpp"
#include "writer/writer.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <random>
#include <map>
#include <set>

namespace troupe {

namespace {

struct stage_ref {
  stage_id id;
  std::vector<edge_id> inputs, outputs;
};

// Logs what the supervisors report. When the node gives a stage up, its consumers are told, so
// they stop once they consumed what there is instead of waiting for input that cannot come, and
// so are its producers, which stop instead of waiting on a full log nobody drains.
// The metrics count restarts and give-ups: children are "<stage>/<worker>" (a stage's
// supervisor restarting a worker) or "stage <name>" (the node's restarting a whole stage).
caf::behavior supervision_log(caf::event_based_actor*, std::shared_ptr<const node_context> ctx,
                              std::map<std::string, stage_ref> stages) {
  return {
    [=](restart_atom, const std::string& sup, const std::string& child, int64_t delay_ms,
        const std::string& reason) {
      log_event(log_level::warn, sup,
                "restarting " + child + " in " + std::to_string(delay_ms) + " ms after: " + reason);
      if (auto* w = ctx->metrics->worker(child)) {
        w->restarts.fetch_add(1);
        w->set_state(worker_run_state::restarting);
        w->set_error(reason);
      } else if (child.rfind("stage ", 0) == 0) {
        if (auto* s = ctx->metrics->stage(child.substr(6)))
          s->restarts.fetch_add(1);
      }
    },
    [=](gave_up_atom, const std::string& sup, const std::string& child,
        const std::string& reason) {
      log_event(log_level::error, sup,
                child + " is given up and stays stopped (the node runs on): " + reason);
      if (child.rfind("stage ", 0) == 0)
        if (auto* s = ctx->metrics->stage(child.substr(6))) {
          s->given_up = true;
          for (auto& w : s->workers)
            w->set_state(worker_run_state::given_up);
        }
      if (auto i = stages.find(child); i != stages.end()) {
        ctx->failed->add(i->second.id);
        caf::anon_send(ctx->writer, wake_atom::value, i->second.outputs, true);
        caf::anon_send(ctx->writer, wake_atom::value, i->second.inputs, false);
      }
    },
    [](escalate_atom, const std::string& sup, const std::string& child, const std::string& reason) {
      log_event(log_level::error, sup,
                child + " is not restarted again; its supervisor stops and reports to the node: " +
                  reason);
    },
  };
}

std::vector<worker_spec> worker_specs(const app_config& app, const store& db, size_t index) {
  const auto& cfg = app.stages[index];
  const auto& layout = db.layout();
  worker_spec base;
  base.config = &cfg;
  base.stage = static_cast<stage_id>(*db.find_stage(cfg.name));
  base.partitions = layout.stages[base.stage].partitions;
  for (const auto& e : layout.edges)
    base.edge_partitions.push_back(e.partitions);
  for (const auto& in : cfg.inputs) {
    auto e = *db.find_edge(in);
    base.inputs.push_back(e);
    base.input_names.push_back(in);
    base.input_groups.push_back(*db.find_group(e, cfg.name));
  }
  std::set<edge_id> outs;
  for (const auto& [port, edge] : cfg.outputs) {
    auto e = *db.find_edge(edge);
    base.ports.emplace(port, e);
    if (outs.insert(e).second) {
      base.outputs.push_back(e);
      std::vector<stage_id> consumers;
      for (const auto& other : app.stages)
        if (std::find(other.inputs.begin(), other.inputs.end(), edge) != other.inputs.end())
          consumers.push_back(*db.find_stage(other.name));
      base.output_consumers.push_back(std::move(consumers));
    }
  }
  std::set<std::string> producers;
  for (const auto& in : cfg.inputs)
    for (const auto& other : app.stages)
      for (const auto& [port, edge] : other.outputs)
        if (edge == in && producers.insert(other.name).second) {
          base.upstream.push_back(*db.find_stage(other.name));
          base.upstream_partitions.push_back(other.partition_subset); // empty: all
        }
  bool leasing = cfg.type_info && cfg.type_info->leases && !cfg.inputs.empty();
  if (leasing)
    base.leases = make_lease_table(cfg, base);
  std::vector<worker_spec> specs;
  for (uint32_t w = 0; w < cfg.workers; ++w) {
    specs.push_back(base);
    specs.back().worker = w;
    if (!cfg.inputs.empty() && !leasing && !cfg.partition_subset.empty()) {
      // A stage spread over nodes (or a link carrying part of an edge): its workers divide
      // this node's share of the partitions by the same rule.
      for (auto i : owned_partitions(w, cfg.workers,
                                     static_cast<uint32_t>(cfg.partition_subset.size())))
        specs.back().owned.push_back(cfg.partition_subset[i]);
    } else if (!cfg.inputs.empty()) {
      specs.back().owned = owned_partitions(leasing ? 0 : w, leasing ? 1 : cfg.workers,
                                            base.partitions);
    }
  }
  return specs;
}

} // namespace

namespace {

// A stage whose stored state was made with other settings (its type or its own keys) resumes
// from that state with the new ones: say so, once, and remember the new settings. Changing
// `workers` or the wiring is not a change of settings.
void warn_of_changed_settings(const app_config& app, store& db) {
  auto reader = db.reader();
  if (reader->refresh())
    return;
  for (const auto& cfg : app.stages) {
    auto key = "stage_settings/" + cfg.name;
    auto stored = reader->meta(key);
    if (!stored)
      continue;
    if (*stored && **stored == cfg.settings)
      continue;
    if (*stored)
      log_event(log_level::warn, "stage " + cfg.name,
                "its settings changed since its stored state was made (then: " + **stored +
                  "; now: " + cfg.settings + "): what it already processed, or finished, keeps "
                  "the old settings' results. To apply the new ones to everything, clear the "
                  "app's data (troupe reset " + app.file + ") and run again");
    if (auto err = db.put_meta(key, cfg.settings))
      log_event(log_level::warn, "node", "cannot record the settings of stage " + cfg.name + ": " +
                                           describe(err));
  }
}

// Whether every partition of every stage that this node runs is done (the app finished here).
bool all_stages_done(const app_config& app, store& db) {
  auto reader = db.reader();
  if (reader->refresh())
    return false;
  for (const auto& cfg : app.stages) {
    auto id = *db.find_stage(cfg.name);
    std::vector<uint32_t> parts = cfg.partition_subset;
    if (parts.empty())
      for (uint32_t p = 0; p < std::max<uint32_t>(db.layout().stages[id].partitions, 1); ++p)
        parts.push_back(p);
    for (auto p : parts) {
      auto done = reader->state(id, state_scope::partition, p, state_space::runtime, "done");
      if (!done || !*done)
        return false;
    }
  }
  return true;
}

} // namespace

node_outcome run_node(caf::actor_system& sys, const app_config& app,
                      const std::function<void(caf::actor)>& on_started,
                      const node_options& node_opts) {
  store_options opts;
  opts.dir = app.data_dir;
  opts.map_size = app.map_size;
  opts.mode = app.mode;
  opts.lmdb = node_opts.lmdb;
  auto opened = store::open(opts, layout_of(app));
  if (!opened)
    return {1, "cannot open the store in " + app.data_dir + ": " + describe(opened.error())};
  // Shared with every worker: a worker that outlives the node's shutdown (one a killed stage
  // supervisor left behind) keeps the store open until it is gone.
  std::shared_ptr<store> db = std::move(*opened);
  log_event(log_level::info, "node",
            "app " + app.name + ": " + std::to_string(app.stages.size()) + " stages, data in " +
              app.data_dir + ", durability " +
              (app.mode == durability::sync ? "sync" : "process"));

  auto metrics = std::make_shared<node_metrics>();
  metrics->started_ms = now_ms();
  for (const auto& cfg : app.stages) {
    auto s = std::make_unique<stage_metrics>();
    s->name = cfg.name;
    for (uint32_t w = 0; w < cfg.workers; ++w)
      s->workers.push_back(std::make_unique<worker_metrics>());
    metrics->stages.push_back(std::move(s));
  }
  // What troupectl, the dashboard and the alert rules see; the monitor samples it every second.
  auto admin = std::make_shared<admin_state>();
  admin->app = &app;
  admin->db = db.get();
  admin->owner = db;
  admin->metrics = metrics;
  admin->sys = &sys;
  admin->started_ms = metrics->started_ms;
  std::unique_ptr<admin_server> admin_http;
  if (app.admin.enabled) {
    auto started = admin_server::start(admin);
    if (!started)
      return {1, describe(started.error())};
    admin_http = std::move(*started);
  }

  // A node of a multi-node app listens for its peers before any stage runs.
  std::shared_ptr<net::link_hub> links;
  if (!app.node.empty()) {
    // This store's incarnation, made once and committed before any link sends: a peer holding
    // records of another one knows this node's data was reset (link_stages.cpp).
    uint64_t epoch = 0;
    if (auto reader = db->reader(); !reader->refresh())
      if (auto stored = reader->meta("link_epoch"); stored && *stored)
        epoch = std::strtoull((*stored)->c_str(), nullptr, 10);
    if (epoch == 0) {
      epoch = (uint64_t{std::random_device{}()} << 32 | std::random_device{}()) | 1;
      if (auto err = db->put_meta("link_epoch", std::to_string(epoch)))
        return {1, "cannot record the store's link epoch: " + describe(err)};
    }
    auto started = net::link_hub::start(sys, app, epoch);
    if (auto* why = std::get_if<std::string>(&started))
      return {1, *why};
    links = std::get<std::shared_ptr<net::link_hub>>(started);
  }
  auto writer = spawn_writer(sys, *db, app.flush_interval, app.stall_timeout);
  caf::scoped_actor self{sys}; // waits for the tree below; workers report fatal failures to it
  auto ctx = std::make_shared<node_context>();
  ctx->node = caf::actor{self};
  ctx->db = db.get();
  ctx->owner = db;
  ctx->writer = writer;
  ctx->app = &app;
  detail::install_crash_handlers();
  ctx->blamed = detail::collect_blame(app.data_dir);
  ctx->run_id = std::random_device{}() | (uint64_t{std::random_device{}()} << 32) | 1;
  ctx->metrics = metrics;
  // Whether an earlier run finished the whole app: every partition of every stage is done.
  bool finished_before = !app.stages.empty() && all_stages_done(app, *db);
  if (auto reader = db->reader(); !reader->refresh())
    if (auto clean = reader->meta("clean_stop"); clean && *clean)
      ctx->clean_run = std::strtoull((*clean)->c_str(), nullptr, 10);
  warn_of_changed_settings(app, *db);
  std::map<std::string, stage_ref> refs;
  for (size_t i = 0; i < app.stages.size(); ++i) {
    auto specs = worker_specs(app, *db, i);
    refs["stage " + app.stages[i].name] = {specs.front().stage, specs.front().inputs,
                                           specs.front().outputs};
  }
  auto events = sys.spawn(supervision_log, std::shared_ptr<const node_context>{ctx}, refs);

  std::vector<child_spec> stages;
  for (size_t i = 0; i < app.stages.size(); ++i) {
    const auto& cfg = app.stages[i];
    auto specs = worker_specs(app, *db, i);
    stages.push_back({"stage " + cfg.name, [ctx, specs, &cfg, events](caf::event_based_actor* self) {
                        std::vector<child_spec> workers;
                        for (const auto& spec : specs)
                          workers.push_back(
                            {cfg.name + "/" + std::to_string(spec.worker),
                             [ctx, spec](caf::event_based_actor* sup) {
                               return spawn_stage_worker(sup, ctx, spec);
                             }});
                        supervisor_options so;
                        so.name = "stage " + cfg.name;
                        so.policy = cfg.supervision;
                        so.exhausted = on_exhausted::escalate;
                        so.observer = events;
                        return spawn_supervisor(self, so, std::move(workers));
                      }});
  }
  supervisor_options root_opts;
  root_opts.name = "node";
  root_opts.policy = app.node_supervision;
  root_opts.exhausted = on_exhausted::give_up; // a failing stage never takes the node down
  root_opts.observer = events;
  // As OTP does for supervisor children (shutdown => infinity): a stage supervisor is never
  // killed, because a killed supervisor exits at once while its workers may still be inside a
  // step, and a restarted stage would then run beside them. It goes down when its workers have.
  root_opts.shutdown_timeout = std::chrono::hours(24 * 365);
  auto root = spawn_supervisor(sys, root_opts, std::move(stages));
  admin->set_actors(root, writer);
  auto monitor = std::make_unique<node_monitor>(admin);

  node_outcome outcome;
  self->monitor(root);
  self->monitor(writer);
  if (on_started)
    on_started(root);
  bool writer_down = false, root_down = false;
  while (!root_down) {
    self->receive(
      [&](caf::down_msg& dm) {
        if (dm.source == writer.address()) {
          // Without the writer no step can commit: stop every stage at once. Nothing is lost;
          // the next run resumes from the last commit.
          writer_down = true;
          outcome = {1, "the store's writer failed: " + describe(dm.reason)};
          self->send_exit(root, caf::exit_reason::kill);
        } else if (dm.source == root.address()) {
          root_down = true;
          if (outcome.exit_code == 0 && dm.reason && dm.reason != caf::exit_reason::user_shutdown)
            outcome = {1, describe(dm.reason)};
        }
      },
      [&](fatal_atom, std::string& what) {
        // Damage in the store: nothing more may be read from it. The other stages finish the
        // steps in flight (they used no damaged data) and the node exits with the message.
        if (outcome.exit_code == 0) {
          outcome = {1, what};
          self->send(root, stop_atom::value);
        }
      });
  }
  if (!writer_down) {
    // Every stage is down: let the writer commit what it holds, flush, and exit.
    self->send(writer, shutdown_atom::value);
    self->receive([](caf::down_msg&) {});
  }
  // The events actor holds the node context, and with it the store: wait until it is gone, so
  // that the store is closed (and its lock released) when run_node returns.
  self->monitor(events);
  self->send_exit(events, caf::exit_reason::user_shutdown);
  self->receive([](caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
  if (auto reader = db->reader(); !reader->refresh()) {
    for (const auto& cfg : app.stages)
      if (auto n = reader->dead_letter_count(*db->find_stage(cfg.name)); n && *n > 0)
        log_event(log_level::warn, "node",
                  "stage " + cfg.name + " holds " + std::to_string(*n) +
                    (*n == 1 ? " dead letter" : " dead letters"));
  }
  if (links) {
    // Finished: the nodes sending to this one may still need an answer to the end of their
    // edges (one that died before it committed the end sends it again).
    if (outcome.exit_code == 0 && all_stages_done(app, *db))
      for (const auto& missing : links->await_senders_done())
        log_event(log_level::warn, "links",
                  missing + " did not confirm its end within links.linger; it has sent "
                            "everything, so this node stops");
    links->stop();
    links.reset();
  }
  // The endpoint reads the store: it goes before the store closes.
  monitor.reset();
  admin_http.reset();
  admin.reset();
  // The process did not die: the crash markers this run left are stops, not deaths.
  if (auto err = db->put_meta("clean_stop", std::to_string(ctx->run_id)))
    log_event(log_level::warn, "node", "cannot record the orderly stop: " + describe(err));
  outcome.commits = db->stats().commits;
  outcome.flushes = db->stats().flushes;
  db.reset();
  if (outcome.exit_code == 0 && finished_before)
    log_event(log_level::info, "node",
              "app " + app.name + " had already finished in an earlier run: nothing was left to "
              "do (to run it afresh, clear its data: troupe reset " + app.file + ")");
  else if (outcome.exit_code == 0)
    log_event(log_level::info, "node", "app " + app.name + " stopped; everything is committed");
  else
    log_event(log_level::error, "node", "app " + app.name + " failed: " + outcome.message);
  return outcome;
}

} // namespace troupe
