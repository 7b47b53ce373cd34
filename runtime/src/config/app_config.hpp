// The app as its YAML file declares it, after validation. Loading never throws: every problem
// becomes a config_issue naming file, line, column and field, and all of them are reported.
#pragma once

#include "base/log.hpp"
#include "schedule/cron.hpp"
#include "store/store.hpp"

#include <troupe/stage.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace troupe {

// An error makes the app invalid; a warning is printed and the app still loads and runs.
enum class issue_severity { error, warning };

struct config_issue {
  std::string file;  // the YAML file as given; for an issue caused by --set, "--set <it>"
  int line = 0;   // 1-based; 0 when unknown
  int column = 0; // 1-based; 0 when unknown
  std::string field; // dotted path, e.g. "stages[2].batch.max_items"
  std::string message;
  issue_severity severity = issue_severity::error;
  bool from_override = false; // caused by a --set: `file` names it, so to_string omits `field`

  // "app.yaml:12:5: stages[2].batch.max_items: must be > 0"; a warning says so after the
  // position ("app.yaml:3:11: warning: stages[0].path: ..."); an override's issue is
  // "--set stages.price.wokers=4: unknown key 'wokers' (did you mean 'workers'?)".
  std::string to_string() const;
};

enum class restart_strategy { one_for_one, one_for_all, rest_for_one };

// Restart intensity and backoff, as Erlang/OTP and Akka define them.
struct supervision_config {
  restart_strategy strategy = restart_strategy::one_for_one;
  // Defaults chosen so that a child failing at every start exhausts them quickly: 5 restarts
  // take 0.1 + 0.2 + 0.4 + 0.8 + 1.6 = 3.1 s, well inside the window, so a stage that can never
  // start escalates in about 3 s and the node (same defaults) gives it up after 6 such rounds,
  // about 22 s after the first failure (jitter: +-20%). Restarts whose backoffs add up to more
  // than `within` never exhaust the window: keep max_restarts * backoff_max well below it.
  uint32_t max_restarts = 5;                    // at most this many restarts ...
  std::chrono::milliseconds within{60000};      // ... within this window, else escalate
  std::chrono::milliseconds backoff_min{100};   // first restart delay
  std::chrono::milliseconds backoff_max{5000};  // cap of the exponential growth
  double jitter = 0.2;                          // each delay is scaled by 1 +- jitter
};

struct batch_config {
  uint32_t max_items = 1024;
  std::chrono::milliseconds max_delay{0}; // wait this long for a partial batch to fill
  uint32_t in_flight = 4; // steps a worker runs ahead of its commits (pipelining)
};

struct retry_config {
  uint32_t max_attempts = 3;             // then the record goes to the dead-letter log
  std::chrono::milliseconds backoff{50}; // delay before retrying a failed step (doubles)
};

struct stage_config {
  std::string name;
  std::string type;
  const stage_type* type_info = nullptr; // resolved against the registry
  std::vector<std::string> inputs;       // edge names
  std::vector<std::pair<std::string, std::string>> outputs; // port -> edge name
  uint32_t workers = 1;
  batch_config batch;
  retry_config retry;
  supervision_config supervision;
  // A leasing stage's items (stage_type::leases): how long a worker may hold one before it
  // goes to another worker.
  std::chrono::milliseconds lease{300000};
  // On an input it has no cursor on yet: begin at the oldest record kept (false) or after the
  // newest (true: `start: latest`).
  bool start_latest = false;
  // `slow: skip`: it holds neither its inputs' producers back nor their trimming; records
  // trimmed before it read them are skipped, and it says so.
  bool slow_skip = false;
  std::shared_ptr<const params> stage_params; // the stage's own keys
  // Its type and own keys as one line ("type=reduce op=sum field=count"), keys in order: what
  // the node compares with the settings the stage's stored state was made with.
  std::string settings;
  // Absolute paths of the files the stage writes (its type's owned_paths params), as given.
  std::vector<std::string> owned_paths;
  // `node:` (one) or `nodes:` (its input partitions spread over them): where it runs, in an app
  // with `nodes:`; empty otherwise. Node i of k owns partitions [i*P/k, (i+1)*P/k) of its inputs.
  std::vector<std::string> nodes;
  // In a node's view, for a stage spread over several nodes (and a link carrying part of an
  // edge): the input partitions it owns here; empty: all of them.
  std::vector<uint32_t> partition_subset;
  int line = 0;
};

// The payload struct an edge carries: its `edges.<e>.type`, else (after a pass-through stage)
// what its inputs carry, else the app's default (schema.payload), else the struct its producer's
// type declares the port emits. See app_payload_checks.cpp.
struct edge_payload {
  capnp::StructSchema schema;
  std::string name; // as the messages name it: "orders.capnp:Order"
};

// The node's admin endpoint (HTTP; runtime/src/admin): troupectl, /metrics and the dashboard.
struct admin_config {
  bool enabled = true;
  std::string host = "127.0.0.1"; // loopback unless the YAML says otherwise
  uint16_t port = 0;              // 0: a free port, logged and written to <data_dir>/admin.json
  std::string token;              // empty: no token; else required (bearer) to change anything
  bool read_needs_token = false;  // `read: token`: reading needs it too
};

// An alert rule (`alerts:`): a condition on a stage's figures, checked every second by the node;
// when it starts to hold (for `hold`), the node logs it and runs `run` (see runtime/CONFIG.md).
struct alert_rule {
  enum class kind { lag, lag_age, dead_letters, restarts, given_up, stalled };
  std::string name;
  kind what = kind::lag;
  double above = 0;                        // records (lag), ms (lag_age), count (others)
  std::chrono::milliseconds window{60000}; // restarts: counted within; stalled: no step for
  std::chrono::milliseconds hold{0};       // the condition holds this long before it fires
  std::vector<std::string> stages;         // empty: every stage
  std::vector<std::string> run;            // a command and its arguments; empty: log only
  int line = 0;                            // where the YAML gave it, for messages
};

// `schedule:`: the app is a batch job that `troupe run` starts on a cron expression, each run a
// child process with its own store (runtime/CONFIG.md, "Schedules").
struct schedule_config {
  std::string cron;                 // as written
  std::optional<cron_schedule> when; // parsed, with its zone
  enum class missed_policy { run_once, skip };
  missed_policy missed = missed_policy::run_once; // runs due while the node was down
  std::optional<int64_t> start_ms;  // runs due since then count as missed at the first start
  int line = 0;
};

// One node of an app with `nodes:` (runtime/CONFIG.md, "Several nodes"): one process, with its
// own store, running the stages placed on it; edges between stages on different nodes are
// carried by node links over CAF's middleman (runtime/src/net).
struct node_config {
  std::string name;
  std::string host;   // its node links listen here; peers connect to it
  uint16_t port = 0;  // 1..65535: peers must know it
  std::string data_dir; // absolute; default <app data_dir>/<name>
  // Its admin endpoint; unset: the app's `admin:` host with a free port (admin.json says which).
  std::optional<std::string> admin_host;
  uint16_t admin_port = 0;
  // With links.tls: the node's certificate and private key (PEM, absolute paths): its own
  // (`certificate:`, `key:`) or links.tls's.
  std::string certificate, key;
  int line = 0;
};

// `links:`: how nodes talk to each other.
struct links_config {
  // A request to a peer (a batch, the end of an edge) that gets no answer in this time counts
  // as failed and is sent again; heartbeats notice a silent peer (SIGSTOP) within it too.
  std::chrono::milliseconds timeout{10000};
  // A node whose stages are done waits at most this long for the nodes that send it records to
  // confirm they are done too (so that a sender that died just before confirming finds it).
  std::chrono::milliseconds linger{10000};
  // `links.tls`: links over TLS (CAF's OpenSSL module); each node proves itself with a
  // certificate signed by `ca` and accepts only peers that do. Absolute paths; empty ca: no TLS.
  std::string tls_ca;
};

struct app_config {
  std::string file;     // the YAML file as given
  std::string base_dir; // its directory: relative paths resolve against it
  std::string name;
  std::string data_dir; // absolute after loading
  durability mode = durability::process;
  uint64_t map_size = uint64_t{1} << 30;
  std::chrono::milliseconds flush_interval{1000}; // at `process`: mdb_env_sync this often
  std::chrono::milliseconds stall_timeout{60000}; // steps waiting for room that cannot end: stop
  std::vector<std::string> plugins;               // resolved plugin paths
  std::vector<std::string> schema_files;           // resolved; empty when none
  std::string payload_type;                        // the default struct, as the YAML names it
  std::optional<capnp::StructSchema> payload_schema; // the default struct; nullopt when none
  // Each edge's struct by edge name; an edge without one (any struct goes) is absent.
  std::map<std::string, edge_payload, std::less<>> edge_payloads;
  supervision_config node_supervision; // how the node restarts whole stages
  admin_config admin;
  std::vector<alert_rule> alerts;
  std::optional<schedule_config> schedule;
  // `log:`; unset: TROUPE_LOG / TROUPE_LOG_FORMAT or the defaults (troupe run's flags win).
  std::optional<log_level> log_threshold;
  std::optional<log_format> log_style;
  std::vector<edge_spec> edges;        // every edge, declared or implied by a stage
  std::vector<stage_config> stages;    // in file order (rest_for_one follows it)
  // `nodes:`; empty for a one-node app. `node` names the node this config is the view of
  // (net/node_view.hpp): its stages and the links to the others; empty for the whole app.
  std::vector<node_config> nodes;
  links_config links;
  std::string node;
  // In a node's view: what must agree with the other nodes' (net/link_hub.hpp, fingerprint).
  std::map<std::string, std::string> fingerprint;
};

// Owns the parsed schema files so that payload_schema stays valid.
class schema_loader;

struct load_result {
  std::optional<app_config> app; // set when no issue is an error
  std::vector<config_issue> issues; // errors and warnings, by line
  std::shared_ptr<schema_loader> schemas; // keeps parsed schemas alive

  size_t errors() const;
  size_t warnings() const { return issues.size() - errors(); }
};

struct load_options {
  std::string data_dir; // replaces the file's data_dir when not empty
  // "path.to.key=value" (the CLI's --set), applied in order to the YAML tree before ${NAME}
  // substitution and any check; the path syntax is in runtime/CONFIG.md ("Overrides").
  std::vector<std::string> overrides;
};

// Reads and validates an app file. Plugins named in the file are loaded into `reg` first (a
// plugin that cannot be loaded is an issue).
load_result load_app(const std::string& path, registry& reg, const load_options& options);
// The same with only a data dir override (empty: the file's).
load_result load_app(const std::string& path, registry& reg,
                     const std::string& data_dir_override = "");

// Parses "1GiB", "512MiB", "4096" (bytes) and "250ms", "2s", "5m", "1h" (durations).
std::optional<uint64_t> parse_size(const std::string& text);
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);

// "orders.capnp:Order": the schema file's name and the struct's path in it, for messages.
std::string struct_name(capnp::StructSchema s);

// Loads a plugin shared library and calls its troupe_plugin_register; returns an error text.
std::optional<std::string> load_plugin(const std::string& path, registry& reg);

// The store layout an app needs on one node.
store_layout layout_of(const app_config& app);

} // namespace troupe
