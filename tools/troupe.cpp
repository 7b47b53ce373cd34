// troupe: run or check an app described by one YAML file.
//
//   troupe run APP.yaml [--data-dir DIR]   run this node until the finite sources are drained
//                                          (exit 0) or until SIGINT/SIGTERM (the steps in flight
//                                          commit; exit 0)
//   troupe lint APP.yaml                   validate without running
//
// Exit codes: 0 ok; 1 the run failed (a stage gave up, the store failed); 2 the config is
// invalid; 64 bad command line.
#include "config/app_config.hpp"
#include "builtin_stages.hpp"
#include "base/log.hpp"
#include "node/node.hpp"
#include "supervision/supervisor.hpp"

#include <caf/all.hpp>

#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_config = 2;
constexpr int exit_usage = 64;

// Loads the app, printing every issue; returns nullopt when there is any.
std::optional<troupe::load_result> load(const std::string& file, troupe::registry& reg,
                                        const std::string& data_dir) {
  troupe::register_builtin_stages(reg);
  auto result = troupe::load_app(file, reg, data_dir);
  if (!result.issues.empty()) {
    for (const auto& issue : result.issues)
      std::cerr << issue.to_string() << "\n";
    std::cerr << result.issues.size() << (result.issues.size() == 1 ? " problem" : " problems")
              << " in " << file << "\n";
    return std::nullopt;
  }
  return result;
}

int lint(const std::string& file) {
  troupe::registry reg;
  auto loaded = load(file, reg, "");
  if (!loaded)
    return exit_config;
  const auto& app = *loaded->app;
  std::cout << file << ": ok (app " << app.name << ", " << app.stages.size() << " stages, "
            << app.edges.size() << " edges)\n";
  return exit_ok;
}

// SIGINT/SIGTERM are blocked from the start of main() in every thread (CAF's inherit the mask)
// and handled by one thread with sigtimedwait, so a signal at any moment means an orderly stop.
sigset_t stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

int run(const std::string& file, const std::string& data_dir) {
  auto signals = stop_signals();
  troupe::registry reg;
  auto loaded = load(file, reg, data_dir);
  if (!loaded)
    return exit_config;
  const auto& app = *loaded->app;


  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::max(2u, std::thread::hardware_concurrency()));
  caf::actor_system sys{cfg};

  std::atomic<bool> finished{false};
  caf::actor root;
  bool stop_requested = false; // a signal came before the node was up; guarded by root_mutex
  std::mutex root_mutex;
  std::thread signal_thread{[&] {
    timespec poll{0, 100 * 1000 * 1000};
    while (!finished) {
      int sig = sigtimedwait(&signals, nullptr, &poll);
      if (sig != SIGINT && sig != SIGTERM)
        continue;
      troupe::log_event(troupe::log_level::info, "node",
                        std::string{"received "} + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                          ": finishing the steps in flight");
      std::lock_guard<std::mutex> guard{root_mutex};
      stop_requested = true;
      if (root)
        caf::anon_send(root, troupe::stop_atom::value);
    }
  }};
  auto outcome = troupe::run_node(sys, app, [&](caf::actor r) {
    std::lock_guard<std::mutex> guard{root_mutex};
    root = std::move(r);
    if (stop_requested)
      caf::anon_send(root, troupe::stop_atom::value);
  });
  {
    std::lock_guard<std::mutex> guard{root_mutex};
    root = nullptr;
  }
  finished = true;
  signal_thread.join();
  if (outcome.exit_code != 0) {
    std::cerr << "troupe: " << outcome.message << "\n";
    return exit_failed;
  }
  return exit_ok;
}

} // namespace

int main(int argc, char** argv) {
  auto signals = stop_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  CLI::App cli{"troupe: run an actor pipeline described by one YAML file"};
  cli.require_subcommand(1);
  std::string file, data_dir;
  auto* run_cmd = cli.add_subcommand("run", "run the app on this node");
  run_cmd->add_option("app", file, "the app's YAML file")->required();
  run_cmd->add_option("--data-dir", data_dir, "where the node keeps its LMDB store");
  auto* lint_cmd = cli.add_subcommand("lint", "validate the app's YAML without running it");
  lint_cmd->add_option("app", file, "the app's YAML file")->required();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    cli.exit(e);
    return exit_usage;
  }
  if (lint_cmd->parsed())
    return lint(file);
  return run(file, data_dir);
}
