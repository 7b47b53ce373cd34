// troupe: run, check or reset an app described by one YAML file.
//
//   troupe run APP.yaml [--data-dir DIR]   run this node until the finite sources are drained
//                                          (exit 0) or until SIGINT/SIGTERM (the steps in flight
//                                          commit; exit 0); with `schedule:`, a scheduler
//                                          that starts each run as a child process
//   troupe run APP.yaml --node NAME        run one node of an app with `nodes:`
//   troupe launch APP.yaml                 run every node of such an app here, as child processes
//   troupe lint APP.yaml                   validate without running
//   troupe test APP.yaml CASES.yaml        run stages alone on given records, compare the output
//   troupe reset APP.yaml [--yes]          delete the app's store and the files its sinks own
//   --set path.to.key=value                (each command, repeatable) overrides a YAML value
//   troupe --version
//
// Exit codes: 0 ok; 1 the run failed (a stage gave up, the store failed); 2 the config is
// invalid; 64 bad command line.
#include "config/app_config.hpp"
#include "builtin_stages.hpp"
#include "base/log.hpp"
#include "config/config_values.hpp"
#include "node/node.hpp"
#include "store/store.hpp"
#include "supervision/supervisor.hpp"
#include "net/node_view.hpp"
#include "troupe_check.hpp"
#include "troupe_launch.hpp"
#include "troupe_reset.hpp"
#include "troupe_schedule.hpp"
#include "troupe_test.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <thread>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_config = 2;
constexpr int exit_usage = 64;

const std::vector<std::string> commands = {"run", "launch", "lint", "test", "check", "reset"};
// troupe run's --log-level and --log-format, empty when not given.
std::string log_level_flag, log_format_flag;
// troupe run's --scheduled-run: the id of the run this process is (a scheduler started it).
std::string scheduled_run;
// troupe run's --node: the node of a multi-node app this process runs.
std::string node_flag;

std::string plural(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Prints every issue of a loaded app (warnings too); false when any is an error.
bool reported_ok(const troupe::load_result& result, const std::string& file) {
  for (const auto& issue : result.issues)
    std::cerr << issue.to_string() << "\n";
  if (auto errors = result.errors()) {
    std::cerr << plural(errors, "problem", "problems") << " in " << file << "\n";
    return false;
  }
  return true;
}

// Loads the app, printing every issue; nullopt when any is an error.
std::optional<troupe::load_result> load(const std::string& file, troupe::registry& reg,
                                        const troupe::load_options& options) {
  troupe::register_builtin_stages(reg);
  auto result = troupe::load_app(file, reg, options);
  if (!reported_ok(result, file))
    return std::nullopt;
  return result;
}

int lint(const std::string& file, const troupe::load_options& options) {
  troupe::registry reg;
  auto loaded = load(file, reg, options);
  if (!loaded)
    return exit_config;
  const auto& app = *loaded->app;
  std::cout << file << ": ok (app " << app.name << ", " << app.stages.size() << " stages, "
            << app.edges.size() << " edges"
            << (loaded->warnings() ? ", " + plural(loaded->warnings(), "warning", "warnings") : "")
            << ")\n";
  return exit_ok;
}

// The app as each of its nodes runs it (only `node` when given), or the app itself when it has
// no nodes. nullopt (after a message) for a node it does not have.
std::optional<std::vector<troupe::app_config>> views(const troupe::app_config& whole,
                                                     troupe::registry& reg,
                                                     const std::string& node) {
  if (whole.nodes.empty()) {
    if (node.empty())
      return std::vector<troupe::app_config>{whole};
    std::cerr << "troupe: --node " << node << ": app " << whole.name << " declares no nodes\n";
    return std::nullopt;
  }
  std::vector<troupe::app_config> out;
  std::vector<std::string> names;
  for (const auto& n : whole.nodes) {
    names.push_back(n.name);
    if (node.empty() || n.name == node)
      out.push_back(troupe::net::node_view(whole, n.name, reg));
  }
  if (out.empty()) {
    std::cerr << "troupe: --node " << node << ": app " << whole.name << " has no such node"
              << troupe::detail::suggest(node, names) << "; its nodes are "
              << troupe::detail::join(names) << "\n";
    return std::nullopt;
  }
  return out;
}

// Each node's store and output files, node by node.
int reset(const std::string& file, const troupe::load_options& options, bool yes) {
  troupe::registry reg;
  auto loaded = load(file, reg, options);
  if (!loaded)
    return exit_config;
  auto nodes = views(*loaded->app, reg, node_flag);
  if (!nodes)
    return exit_usage;
  int code = exit_ok;
  for (const auto& view : *nodes) {
    if (!view.node.empty())
      std::cout << "node " << view.node << ":\n";
    code = std::max(code, troupe::cli::reset_app(view, yes));
  }
  return code;
}

// A data dir as given, or the data dir of an app file.
int check(const std::string& target, const troupe::load_options& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(target, ec))
    return troupe::cli::check_dir(target);
  if (!std::filesystem::exists(target, ec)) {
    std::cerr << "troupe check: " << target
              << ": no such file or directory (give a data dir, or an app's YAML file)\n";
    return exit_config;
  }
  troupe::registry reg;
  auto loaded = load(target, reg, options);
  if (!loaded)
    return exit_config;
  auto nodes = views(*loaded->app, reg, node_flag);
  if (!nodes)
    return exit_usage;
  int code = exit_ok;
  for (const auto& view : *nodes)
    code = std::max(code, troupe::cli::check_dir(view.data_dir));
  return code;
}

// CLI11's own message for an unknown subcommand ("The following arguments were not expected")
// does not say what the commands are.
bool unknown_command(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-')
    return false;
  std::string word = argv[1];
  if (std::find(commands.begin(), commands.end(), word) != commands.end())
    return false;
  std::cerr << "troupe: unknown command '" << word << "'" << troupe::detail::suggest(word, commands)
            << "; the commands are: " << troupe::detail::join(commands)
            << " (troupe --help says more)\n";
  return true;
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

int run(const std::string& file, const troupe::load_options& options) {
  auto signals = stop_signals();
  troupe::registry reg, next_reg; // each outlives the app loaded with it
  troupe::register_builtin_stages(reg);
  auto loaded = troupe::load_app(file, reg, options);
  if (scheduled_run.empty() && loaded.app && loaded.app->schedule) {
    // A scheduler checks the YAML as its next run will read it (TROUPE_RUN_DATE and the like
    // hold a run due now until then): loaded again with those, its warnings are that run's.
    const auto& when = *loaded.app->schedule->when;
    if (auto next = when.next_after(troupe::context::now_ms())) {
      for (const auto& [k, v] : troupe::cli::run_environment(when, *next))
        setenv(k.c_str(), v.c_str(), 1);
      troupe::register_builtin_stages(next_reg);
      loaded = troupe::load_app(file, next_reg, options);
    }
  }
  if (!reported_ok(loaded, file))
    return exit_config;
  const auto& whole = *loaded.app;
  std::vector<std::string> node_names;
  for (const auto& n : whole.nodes)
    node_names.push_back(n.name);
  if (whole.nodes.empty() && !node_flag.empty()) {
    std::cerr << "troupe: --node " << node_flag << ": app " << whole.name
              << " declares no nodes (nodes:); run it without --node\n";
    return exit_usage;
  }
  if (!whole.nodes.empty() && node_flag.empty()) {
    std::cerr << "troupe: app " << whole.name << " runs on nodes "
              << troupe::detail::join(node_names) << ": run one with --node NAME, or all of "
              << "them here with troupe launch " << file << "\n";
    return exit_usage;
  }
  if (!node_flag.empty() &&
      std::find(node_names.begin(), node_names.end(), node_flag) == node_names.end()) {
    std::cerr << "troupe: --node " << node_flag << ": app " << whole.name << " has no such node"
              << troupe::detail::suggest(node_flag, node_names) << "; its nodes are "
              << troupe::detail::join(node_names) << "\n";
    return exit_usage;
  }
  std::optional<troupe::app_config> view;
  if (!node_flag.empty()) {
    view = troupe::net::node_view(whole, node_flag, reg);
    if (!options.data_dir.empty()) // this node's own, exactly
      view->data_dir = troupe::detail::absolute_path(options.data_dir);
    troupe::set_log_node(node_flag);
  }
  const auto& app = view ? *view : whole;
  if (app.schedule && scheduled_run.empty()) {
    std::vector<std::string> args; // what every run gets from this command line
    for (const auto& o : options.overrides)
      args.insert(args.end(), {"--set", o});
    if (!log_level_flag.empty())
      args.insert(args.end(), {"--log-level", log_level_flag});
    if (!log_format_flag.empty())
      args.insert(args.end(), {"--log-format", log_format_flag});
    return troupe::cli::run_schedule(app, file, args);
  }
  if (auto l = troupe::parse_log_level(log_level_flag))
    troupe::set_log_level(*l);
  else if (app.log_threshold)
    troupe::set_log_level(*app.log_threshold);
  if (auto f = troupe::parse_log_format(log_format_flag))
    troupe::set_log_format(*f);
  else if (app.log_style)
    troupe::set_log_format(*app.log_style);

  // Before any thread starts (store.hpp says why).
  if (auto err = troupe::store::verify_if_left_open(app.data_dir)) {
    std::cerr << "troupe: cannot open the store in " << app.data_dir << ": "
              << troupe::describe(err) << "\n";
    return exit_failed;
  }
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", std::max(2u, std::thread::hardware_concurrency()));
  if (!app.node.empty()) {
    // Node links: heartbeats notice a silent peer (one stopped with SIGSTOP) within the links'
    // timeout; connections only to the addresses the app names (no automatic ones, which
    // would listen on every interface).
    cfg.load<caf::io::middleman>();
    cfg.set("middleman.heartbeat-interval", caf::timespan{app.links.timeout / 5});
    cfg.set("middleman.connection-timeout", caf::timespan{app.links.timeout});
    cfg.set("middleman.enable-automatic-connections", false);
    if (!app.links.tls_ca.empty()) {
      const auto& me = *std::find_if(app.nodes.begin(), app.nodes.end(),
                                     [&](const auto& n) { return n.name == app.node; });
      cfg.load<caf::openssl::manager>();
      cfg.set("openssl.certificate", me.certificate);
      cfg.set("openssl.key", me.key);
      cfg.set("openssl.cafile", app.links.tls_ca);
    }
  }
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
  cli.set_version_flag("--version", "troupe " TROUPE_VERSION);
  cli.require_subcommand(1);
  if (unknown_command(argc, argv))
    return exit_usage;
  std::string file;
  troupe::load_options options;
  bool yes = false;
  auto common = [&](CLI::App* cmd) {
    cmd->add_option("app", file, "the app's YAML file")->required();
    cmd->add_option("--set", options.overrides,
                    "override a value of the YAML: path.to.key=value, e.g. "
                    "stages.price.workers=4 (repeatable)")
      ->type_size(1)
      ->allow_extra_args(false);
  };
  auto* run_cmd = cli.add_subcommand("run", "run the app on this node");
  common(run_cmd);
  run_cmd->add_option("--data-dir", options.data_dir, "where the node keeps its LMDB store");
  run_cmd->add_option("--log-level", log_level_flag, "debug, info, warn or error (default: the "
                                                     "app's log.level, else $TROUPE_LOG, else info)")
    ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  run_cmd->add_option("--log-format", log_format_flag, "text or json: one JSON object per line "
                                                       "(default: log.format, else $TROUPE_LOG_FORMAT)")
    ->check(CLI::IsMember({"text", "json"}));
  run_cmd->add_option("--node", node_flag, "the node of the app's nodes: to run (each runs its "
                                           "stages; troupe launch runs them all)");
  run_cmd->add_option("--scheduled-run", scheduled_run, "(set by a schedule) this is that run")
    ->group("");
  auto* launch_cmd = cli.add_subcommand(
    "launch", "run every node of an app with nodes: here, each a child process, until all finish");
  common(launch_cmd);
  launch_cmd->add_option("--data-dir", options.data_dir,
                         "a folder for the nodes' data (each in DIR/<node>)");
  auto* lint_cmd = cli.add_subcommand("lint", "validate the app's YAML without running it");
  common(lint_cmd);
  std::string cases;
  auto* test_cmd = cli.add_subcommand(
    "test", "run stages alone on the records a cases file gives, and compare what comes out");
  common(test_cmd);
  test_cmd->add_option("cases", cases, "the cases' YAML file")->required();
  std::string check_target;
  auto* check_cmd = cli.add_subcommand(
    "check", "verify a data dir (every value's checksum, every log's chunks); read-only");
  check_cmd->add_option("target", check_target, "a data dir, or an app's YAML file (its data dir)")
    ->required();
  check_cmd->add_option("--data-dir", options.data_dir, "the data dir, with an app file");
  check_cmd->add_option("--node", node_flag, "with an app file of several nodes: only this "
                                             "node's data dir (default: each node's)");
  auto* reset_cmd = cli.add_subcommand(
    "reset", "delete the app's store and the output files its sinks own, after confirmation");
  common(reset_cmd);
  reset_cmd->add_option("--data-dir", options.data_dir, "the store to delete");
  reset_cmd->add_option("--node", node_flag, "with an app of several nodes: only this node's "
                                             "store and files (default: every node's)");
  reset_cmd->add_flag("--yes,-y", yes, "delete without asking (needed when not on a terminal)");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::Success& e) { // --help, --version
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    cli.exit(e);
    return exit_usage;
  }
  troupe::cli::default_run_environment(); // a run's sets them; elsewhere: a run due now
  if (lint_cmd->parsed())
    return lint(file, options);
  if (launch_cmd->parsed()) {
    troupe::registry reg;
    auto loaded = load(file, reg, options);
    return loaded ? troupe::cli::launch_app(*loaded->app, file, options) : exit_config;
  }
  if (test_cmd->parsed()) {
    troupe::registry reg;
    auto loaded = load(file, reg, options);
    return loaded ? troupe::cli::test_app(*loaded->app, file, cases) : exit_config;
  }
  if (reset_cmd->parsed())
    return reset(file, options, yes);
  if (check_cmd->parsed())
    return check(check_target, options);
  return run(file, options);
}
