// troupectl: look inside a node and operate it.
//
// A running node, through its admin endpoint (runtime/ADMIN_API.md), found by --app FILE (the
// address in its admin:, or the one the node wrote to <data_dir>/admin.json) or --address:
//
//   troupectl --app FILE status                node, app, uptime, durability, data and map size,
//                                              commits/s and fsyncs/s
//   troupectl --app FILE ps                    the supervision tree: each stage and worker with
//                                              its state, restarts, records in/out, rate, lag
//                                              (records and age of the oldest), dead letters,
//                                              last error
//   troupectl --app FILE top [--sort lag|rate] ps, refreshed every --interval ms
//   troupectl --app FILE graph                 the topology, as Graphviz DOT
//   troupectl --app FILE metrics               what /metrics serves (Prometheus text)
//   troupectl --app FILE pause|resume STAGE    stop starting steps / start again
//   troupectl --app FILE kill STAGE/N          kill a worker (its supervisor restarts it)
//   troupectl --app FILE peek EDGE [--from SEQ] [--partition P] [-n N]
//                                              records of an edge, decoded, payloads as JSON
//   troupectl --app FILE replay STAGE --from SEQ [--partition P]
//                                              rewind the stage's cursors: it and everything
//                                              downstream see those records again
//   troupectl --app FILE dlq retry|purge STAGE [IDS...|--all]
//                                              put dead letters back on the stage's input, or
//                                              delete them (numbers stay stable)
//   --token T (or $TROUPE_TOKEN)               the admin token, for what changes anything
//
// A stopped node's data dir, read-only (LMDB's MDB_RDONLY; a node that has the dir open is told
// about, not disturbed):
//
//   troupectl --data DIR status                the edges: partitions, records stored, and each
//                                              consumer group's consumed count and lag; the
//                                              stages' dead-letter counts
//                                              (a scheduled app's data dir: its schedule.json,
//                                              the run under way and the runs that ended)
//   troupectl --data DIR ps                    each stage: consumed, lag, dead letters
//   troupectl --data DIR peek EDGE [--from SEQ] [--partition P] [-n N]
//                                              its records, as the online peek shows them
//   troupectl [--data DIR] dlq list [STAGE]    dead letters of one stage, or of every stage
//   troupectl [--data DIR] dlq show STAGE ID   one dead letter in full, with its record
//   --app FILE                                 the app: its data dir (unless --data), and its
//                                              edges' structs, so that records show as JSON
//
// --json: JSON instead of tables (one object per line).
// Exit codes: 0 ok; 1 failed (the store cannot be read: see `troupe check`; or the node failed
// the request); 2 no such store, stage, actor or dead letter; 3 no node answers; 4 refused (the
// admin token is missing or wrong); 64 bad command line.
#include "troupectl_online.hpp"
#include "troupectl_store.hpp"

#include "builtin_stages.hpp"
#include "config/config_values.hpp"
#include "net/node_view.hpp"
#include "config/app_config.hpp"

#include <troupe/json.hpp>

#include "envelope.capnp.h"

#include <capnp/serialize.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

using namespace troupe::ctl;


// The length of the UTF-8 sequence at s[at], or 0 when the bytes there are not one (overlong
// forms, surrogates and code points past U+10FFFF are not).
size_t utf8_length(std::string_view s, size_t at) {
  auto b = [&](size_t i) { return static_cast<unsigned char>(s[at + i]); };
  auto cont = [&](size_t i) { return at + i < s.size() && (b(i) & 0xC0) == 0x80; };
  unsigned char c = b(0);
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2) || (c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F))
      return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3) || (c == 0xF0 && b(1) < 0x90) || (c == 0xF4 && b(1) > 0x8F))
      return 0;
    return 4;
  }
  return 0;
}

// A JSON string, escaped as RFC 8259 wants. A byte that is not part of valid UTF-8 (a malformed
// line's raw input can hold any) becomes U+FFFD, so that every line printed is valid JSON.
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (size_t at = 0; at < s.size();) {
    auto n = utf8_length(s, at);
    unsigned char c = static_cast<unsigned char>(s[at]);
    if (n == 0) {
      out += "\xEF\xBF\xBD"; // U+FFFD
      ++at;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.append(s.data() + at, n);
    }
    at += n;
  }
  return out + "\"";
}

std::string time_text(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// `status` of a scheduled app's data dir: what its schedule.json (tools/troupe_schedule.cpp)
// says. With --json, the file itself, on one line.
int print_schedule(const std::string& dir, bool as_json) {
  auto path = (fs::path(dir) / "schedule.json").string();
  std::ifstream in(path);
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("runs")) {
    std::cerr << "troupectl: " << path << " is not a schedule's record\n";
    return exit_failed;
  }
  if (as_json) {
    std::cout << j.dump() << "\n";
    return exit_ok;
  }
  std::cout << "schedule in " << dir << " (since " << time_text(j.value("since", int64_t{0}))
            << ")\n";
  if (auto& r = j["running"]; r.is_object())
    std::cout << "  under way: run " << r.value("id", "") << " (attempt "
              << r.value("attempts", 0) + 1 << ", process " << r.value("pid", 0) << ")\n";
  else
    std::cout << "  no run under way\n";
  for (const auto& run : j["runs"])
    std::cout << "  run " << run.value("id", "") << "  " << run.value("status", "")
              << "  due " << run.value("due", "") << "  ended "
              << time_text(run.value("ended", int64_t{0}))
              << (run.value("why", "").empty() ? "" : "  " + run.value("why", "")) << "\n";
  std::cout << "each run's store: " << (fs::path(dir) / "runs" / "<id>").string()
            << " (troupectl --data it status)\n";
  return exit_ok;
}

// The structs of the app's edges, when troupectl was given the app (--app): a dead letter's
// record is then shown with its payload as JSON.
std::map<std::string, capnp::StructSchema> edge_structs;

// The payload of an Envelope read from `edge`, as JSON; nullopt without the app or a struct.
std::optional<std::string> payload_json(troupe::schema::Envelope::Reader env, const std::string& edge) {
  auto s = edge_structs.find(edge);
  if (s == edge_structs.end())
    return std::nullopt;
  try {
    std::string out;
    troupe::json_encoder enc{s->second};
    if (enc.encode(env.getPayload().getAs<capnp::DynamicStruct>(s->second), out))
      return std::nullopt;
    return out;
  } catch (const kj::Exception&) {
    return std::nullopt;
  }
}

// What the record of a dead letter is: a source's raw input as text, else an Envelope (with its
// payload as JSON in `payload`, when the app says what the edge carries).
// Calls fn(envelope) when `bytes` decode as an Envelope (copied to aligned words first); false
// when they do not (a source's raw input, or damage).
template <class F>
bool with_envelope(std::string_view bytes, F&& fn) {
  if (bytes.size() < 8 || bytes.size() % 8 != 0)
    return false;
  auto words = kj::heapArray<capnp::word>(bytes.size() / 8);
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  try {
    capnp::FlatArrayMessageReader msg{words.asPtr()};
    fn(msg.getRoot<troupe::schema::Envelope>());
    return true;
  } catch (const kj::Exception&) {
    return false;
  }
}

std::string key_of(troupe::schema::Envelope::Reader env) {
  return {reinterpret_cast<const char*>(env.getKey().begin()), env.getKey().size()};
}

std::string describe_record(const std::string& bytes, const std::string& edge = {},
                            std::optional<std::string>* payload = nullptr,
                            bool* raw = nullptr) {
  std::string what;
  bool envelope = with_envelope(bytes, [&](troupe::schema::Envelope::Reader env) {
    auto id = env.getId();
    if (payload)
      *payload = payload_json(env, edge);
    what = "an Envelope of " + std::to_string(bytes.size()) + " bytes: id " +
           id.getOrigin().cStr() + "/" + std::to_string(id.getSeq()) +
           (env.hasKey() ? ", key " + json_string(key_of(env)) : ", no key");
  });
  if (raw)
    *raw = !envelope;
  return envelope ? what : "raw input: " + json_string(bytes);
}


void print(const dead_letter& d, bool json, bool full) {
  auto line = d.source_position ? d.source_position : 0;
  std::optional<std::string> payload;
  bool raw = false;
  auto record = describe_record(d.record, d.input, &payload, &raw);
  if (json) {
    if (raw) // the raw input itself, not a description quoting it
      record = d.record;
    std::cout << "{\"stage\":" << json_string(d.stage) << ",\"id\":" << d.id << ",\"error\":"
              << json_string(d.error) << ",\"attempts\":" << d.attempts << ",\"failed_at\":"
              << json_string(time_text(d.failed_at)) << ",\"input\":" << json_string(d.input)
              << ",\"partition\":" << d.partition << ",\"position\":" << d.input_seq
              << ",\"source_line\":" << line << ",\"record\":" << json_string(record);
    if (raw)
      std::cout << ",\"raw\":true";
    if (payload)
      std::cout << ",\"payload\":" << *payload;
    std::cout << "}\n";
    return;
  }
  std::cout << d.stage << " #" << d.id << "  " << time_text(d.failed_at) << "  " << d.input;
  if (d.partition)
    std::cout << " (partition " << d.partition << ")";
  std::cout << " at " << d.input_seq;
  if (line && line != d.input_seq)
    std::cout << ", line " << line;
  std::cout << "  attempts " << d.attempts << "\n  " << d.error << "\n";
  if (full) {
    std::cout << "  record: " << record << "\n";
    if (payload)
      std::cout << "  payload: " << *payload << "\n";
  }
}

// peek on a stopped node: the records as the online peek shows them (payloads as JSON with --app).
int print_records(offline_store& store, const std::string& edge, std::optional<uint32_t> partition,
                  std::optional<uint64_t> from, unsigned n, bool json) {
  std::string problem;
  size_t shown = 0;
  bool found = store.records(edge, partition, from.value_or(0), n,
                             [&](uint32_t p, uint64_t seq, std::string_view bytes) {
    ++shown;
    std::string id, key, payload = "null";
    bool keyed = false;
    int64_t event_time = 0;
    uint64_t source_position = 0;
    uint32_t attempt = 0;
    bool decoded = with_envelope(bytes, [&](troupe::schema::Envelope::Reader env) {
      id = std::string(env.getId().getOrigin().cStr()) + "/" + std::to_string(env.getId().getSeq());
      keyed = env.hasKey();
      key = key_of(env);
      event_time = env.getEventTime();
      source_position = env.getSourcePosition();
      attempt = env.getAttempt();
      if (auto j = payload_json(env, edge))
        payload = *j;
    });
    if (json) {
      std::cout << "{\"partition\":" << p << ",\"seq\":" << seq;
      if (!decoded)
        std::cout << ",\"error\":\"the record does not decode\"}\n";
      else
        std::cout << ",\"id\":" << json_string(id) << ",\"key\":" << (keyed ? json_string(key) : "null")
                  << ",\"event_time\":" << event_time << ",\"source_position\":" << source_position
                  << ",\"attempt\":" << attempt << ",\"payload\":" << payload << "}\n";
    } else {
      std::cout << "p" << p << " #" << seq << "  ";
      if (!decoded)
        std::cout << "cannot be decoded\n";
      else
        std::cout << id << (keyed ? "  key " + json_string(key) : "") << "  " << payload << "\n";
    }
  }, problem);
  if (!found) {
    std::cerr << "troupectl: the store has no edge '" << edge << "'\n";
    return exit_not_found;
  }
  if (!json)
    std::cout << shown << " record" << (shown == 1 ? "" : "s") << "\n";
  if (!problem.empty()) {
    std::cerr << "troupectl: " << problem << "\n";
    return exit_failed;
  }
  return exit_ok;
}

// ps on a stopped node: no actors run, so per stage what the store says: what it consumed of its
// inputs, what it has yet to, and its dead letters.
int print_stages(offline_store& store, bool json) {
  std::string problem;
  auto edges = store.edges(problem);
  if (!json)
    std::printf("%-24s %-8s %10s %10s %8s  %s\n", "STAGE", "STATE", "CONSUMED", "LAG", "DEAD", "INPUTS");
  for (const auto& stage : store.stages_with_dead_letters()) {
    uint64_t consumed = 0, lag = 0;
    std::string inputs;
    for (const auto& [name, e] : edges)
      if (e.consumed.count(stage)) {
        consumed += e.consumed.at(stage);
        lag += e.lag.at(stage);
        inputs += (inputs.empty() ? "" : ",") + name;
      }
    auto dead = store.dead_letter_count(stage);
    if (json)
      std::cout << "{\"name\":" << json_string(stage) << ",\"state\":\"stopped\",\"consumed\":"
                << consumed << ",\"lag\":" << lag << ",\"dead_letters\":" << dead
                << ",\"inputs\":" << json_string(inputs) << "}\n";
    else
      std::printf("%-24s %-8s %10llu %10llu %8llu  %s\n", stage.c_str(), "stopped",
                  static_cast<unsigned long long>(consumed), static_cast<unsigned long long>(lag),
                  static_cast<unsigned long long>(dead), inputs.empty() ? "-" : inputs.c_str());
  }
  if (!problem.empty()) {
    std::cerr << "troupectl: " << problem << "\n";
    return exit_failed;
  }
  return exit_ok;
}

int print_status(offline_store& store, const std::string& dir, bool json) {
  std::string problem;
  auto edges = store.edges(problem);
  std::error_code ec;
  auto size = fs::file_size(fs::path(dir) / "data.mdb", ec);
  std::vector<std::pair<std::string, uint64_t>> dead;
  for (const auto& s : store.stages_with_dead_letters())
    dead.emplace_back(s, store.dead_letter_count(s));
  if (json) {
    std::cout << "{\"data_dir\":" << json_string(dir) << ",\"data_bytes\":" << size << ",\"edges\":{";
    bool first = true;
    for (const auto& [name, e] : edges) {
      std::cout << (first ? "" : ",") << json_string(name) << ":{\"partitions\":" << e.partitions
                << ",\"appended\":" << e.appended << ",\"stored\":" << e.stored << ",\"groups\":{";
      bool g1 = true;
      for (const auto& [group, consumed] : e.consumed) {
        std::cout << (g1 ? "" : ",") << json_string(group) << ":{\"consumed\":" << consumed
                  << ",\"lag\":" << e.lag.at(group) << "}";
        g1 = false;
      }
      std::cout << "}}";
      first = false;
    }
    std::cout << "},\"dead_letters\":{";
    first = true;
    for (const auto& [s, n] : dead) {
      std::cout << (first ? "" : ",") << json_string(s) << ":" << n;
      first = false;
    }
    std::cout << "}}\n";
  } else {
    std::cout << "data dir " << dir << " (data.mdb " << size << " bytes)\n";
    for (const auto& [name, e] : edges) {
      std::cout << "edge " << name << ": " << e.partitions << " partition"
                << (e.partitions == 1 ? "" : "s") << ", " << e.appended << " records appended, "
                << e.stored << " stored\n";
      for (const auto& [group, consumed] : e.consumed)
        std::cout << "  read by " << group << ": " << consumed << " consumed, " << e.lag.at(group)
                  << " to go\n";
    }
    for (const auto& [s, n] : dead)
      if (n > 0)
        std::cout << "stage " << s << ": " << n << " dead letter" << (n == 1 ? "" : "s") << "\n";
  }
  if (!problem.empty()) {
    std::cerr << "troupectl: " << problem << "\n";
    return exit_failed;
  }
  return exit_ok;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App cli{"troupectl: look inside a troupe node and operate it (a running node through its "
               "admin endpoint; a stopped node's data dir with --data)"};
  cli.set_version_flag("--version", "troupectl " TROUPE_VERSION);
  std::string data, app_file, address, token, node;
  bool json = false;
  cli.add_option("--data", data, "a stopped node's data dir, read-only");
  cli.add_option("--app", app_file,
                 "the app's YAML file: where its node listens, its data dir (unless --data), and "
                 "the structs of its edges, to show records as JSON");
  cli.add_option("--node", node, "with --app of an app with nodes: which node");
  cli.add_option("--address", address, "a running node's admin endpoint, HOST:PORT");
  cli.add_option("--token", token, "the admin token (default: $TROUPE_TOKEN)");
  cli.add_flag("--json", json, "JSON instead of tables");
  cli.require_subcommand(1);
  cli.fallthrough(); // --json, --app, ... also after the command
  auto* status = cli.add_subcommand("status", "the node (running), or where the edges and "
                                              "consumer groups stand (--data)");
  auto* ps = cli.add_subcommand("ps", "the supervision tree, with each actor's counters");
  auto* top = cli.add_subcommand("top", "ps, refreshed");
  std::string sort = "lag";
  unsigned interval = 1000, iterations = 0;
  top->add_option("--sort", sort, "lag or rate")->check(CLI::IsMember({"lag", "rate"}));
  top->add_option("--interval", interval, "milliseconds between refreshes")->check(CLI::Range(100u, 3600000u));
  top->add_option("-n,--iterations", iterations, "refreshes before it exits (0: until interrupted)");
  auto* graph = cli.add_subcommand("graph", "the topology as Graphviz DOT");
  auto* metrics = cli.add_subcommand("metrics", "the node's /metrics (Prometheus text)");
  std::string target;
  auto* pause = cli.add_subcommand("pause", "stop starting steps in STAGE (steps in flight commit)");
  pause->add_option("stage", target, "the stage")->required();
  auto* resume = cli.add_subcommand("resume", "let a paused STAGE go on");
  resume->add_option("stage", target, "the stage")->required();
  auto* kill = cli.add_subcommand("kill", "kill a worker, STAGE/N; its supervisor restarts it");
  kill->add_option("actor", target, "the worker, e.g. price/0")->required();
  auto* peek = cli.add_subcommand("peek", "records of an edge, decoded to JSON");
  std::string edge;
  std::optional<uint64_t> from;
  std::optional<uint32_t> partition;
  unsigned count = 10;
  peek->add_option("edge", edge, "the edge")->required();
  peek->add_option("--from", from, "the first sequence number (default: the oldest stored)");
  peek->add_option("--partition", partition, "one partition (default: each in turn)");
  peek->add_option("-n", count, "how many records (at most 10000)")->check(CLI::Range(1u, 10000u));
  auto* replay = cli.add_subcommand("replay", "rewind a stage's cursors: it and everything "
                                              "downstream see those records again");
  uint64_t replay_from = 0;
  replay->add_option("stage", target, "the stage")->required();
  replay->add_option("--from", replay_from, "the sequence number to read again from")->required();
  replay->add_option("--partition", partition, "one partition (default: every one)");
  auto* dlq = cli.add_subcommand("dlq", "dead letters");
  dlq->require_subcommand(1);
  dlq->fallthrough();
  std::string stage;
  uint64_t id = 0;
  std::vector<uint64_t> ids;
  bool all = false;
  auto* retry = dlq->add_subcommand("retry", "put dead letters back on their stage's input "
                                             "(a running node)");
  auto* purge = dlq->add_subcommand("purge", "delete dead letters (a running node)");
  for (auto* c : {retry, purge}) {
    c->add_option("stage", stage, "the stage")->required();
    c->add_option("ids", ids, "their numbers (from dlq list)");
    c->add_flag("--all", all, "every dead letter of the stage");
  }
  auto* list = dlq->add_subcommand("list", "the dead letters of STAGE, or of every stage");
  list->add_option("stage", stage, "a stage");
  auto* show = dlq->add_subcommand("show", "one dead letter in full");
  show->add_option("stage", stage, "its stage")->required();
  show->add_option("id", id, "its number (from dlq list)")->required();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    cli.exit(e);
    return exit_usage;
  }
  bool online = (!dlq->parsed() && data.empty()) || retry->parsed() || purge->parsed();
  if ((retry->parsed() || purge->parsed()) && ids.empty() != all) {
    std::cerr << "troupectl: name the dead letters (their numbers, from dlq list) or give --all\n";
    return exit_usage;
  }
  if (online && !data.empty()) {
    std::cerr << "troupectl: dlq retry and purge change a running node: give --app or --address, "
                 "not --data\n";
    return exit_usage;
  }
  if (data.empty() && app_file.empty() && address.empty()) {
    std::cerr << "troupectl: give --app FILE or --address HOST:PORT (a running node), or --data "
                 "DIR (a stopped node's data dir)\n";
    return exit_usage;
  }
  if (!data.empty() && !(status->parsed() || ps->parsed() || dlq->parsed() || peek->parsed())) {
    std::cerr << "troupectl: with --data (a stopped node) status, ps, peek and dlq work; for a "
                 "running node give --app or --address\n";
    return exit_usage;
  }
  troupe::registry reg;
  std::optional<troupe::load_result> loaded;
  if (!app_file.empty()) {
    troupe::register_builtin_stages(reg);
    loaded = troupe::load_app(app_file, reg, data);
    for (const auto& issue : loaded->issues)
      std::cerr << issue.to_string() << "\n";
    if (loaded->errors())
      return 2;
    std::vector<std::string> names;
    for (const auto& n : loaded->app->nodes)
      names.push_back(n.name);
    if (names.empty() != node.empty() ||
        (!node.empty() && std::find(names.begin(), names.end(), node) == names.end())) {
      if (names.empty())
        std::cerr << "troupectl: --node " << node << ": app " << loaded->app->name
                  << " declares no nodes\n";
      else
        std::cerr << "troupectl: app " << loaded->app->name << " runs on nodes "
                  << troupe::detail::join(names) << ": say which with --node NAME"
                  << (node.empty() ? "" : troupe::detail::suggest(node, names)) << "\n";
      return exit_usage;
    }
    if (!node.empty()) { // that node's data dir and admin address
      auto view = troupe::net::node_view(*loaded->app, node, reg);
      if (data.empty())
        loaded->app->data_dir = view.data_dir;
      loaded->app->admin = view.admin;
    }
    data = loaded->app->data_dir;
    for (const auto& [edge, p] : loaded->app->edge_payloads)
      edge_structs.emplace(edge, p.schema);
  }
  if (online) {
    online_options o;
    o.json = json;
    o.token = token;
    if (o.token.empty())
      if (const char* t = std::getenv("TROUPE_TOKEN"))
        o.token = t;
    o.address = address;
    if (o.address.empty()) {
      const auto& admin = loaded->app->admin;
      std::string why;
      o.address = node_address(admin.host, admin.port, data, why);
      if (o.address.empty()) {
        std::cerr << "troupectl: " << why << "\n";
        return exit_unreachable;
      }
    }
    if (status->parsed())
      return online_status(o);
    if (ps->parsed())
      return online_ps(o);
    if (top->parsed())
      return online_top(o, sort, interval, iterations);
    if (graph->parsed())
      return online_graph(o);
    if (metrics->parsed())
      return online_metrics(o);
    if (peek->parsed())
      return online_peek(o, edge, partition, from, count);
    if (replay->parsed())
      return online_replay(o, target, replay_from, partition);
    if (retry->parsed() || purge->parsed())
      return online_requeue(o, stage, ids, all, retry->parsed());
    if (pause->parsed() || resume->parsed())
      return online_pause(o, target, pause->parsed());
    return online_kill(o, target);
  }
  if (status->parsed() && fs::exists(fs::path(data) / "schedule.json") &&
      !fs::exists(fs::path(data) / "data.mdb"))
    return print_schedule(data, json);
  std::string why;
  int code = exit_ok;
  auto store = offline_store::open(data, why, code);
  if (!store) {
    std::cerr << "troupectl: " << why << "\n";
    return code;
  }
  if (status->parsed())
    return print_status(*store, data, json);
  if (peek->parsed())
    return print_records(*store, edge, partition, from, count, json);
  if (ps->parsed())
    return print_stages(*store, json);
  std::vector<std::string> stages = stage.empty() ? store->stages_with_dead_letters()
                                                  : std::vector<std::string>{stage};
  std::vector<dead_letter> found;
  std::string problem;
  for (const auto& s : stages)
    if (!store->dead_letters(s, show->parsed() ? std::optional<uint64_t>(id) : std::nullopt, found,
                             problem)) {
      std::cerr << "troupectl: the store in " << data << " has no stage '" << s << "'";
      auto known = store->stages_with_dead_letters();
      std::string all;
      for (const auto& k : known)
        all += (all.empty() ? "" : ", ") + k;
      std::cerr << " (its stages: " << (all.empty() ? "none" : all) << ")\n";
      return exit_not_found;
    }
  for (const auto& d : found)
    print(d, json, show->parsed());
  if (!problem.empty()) {
    std::cerr << "troupectl: " << problem << "\n";
    return exit_failed;
  }
  if (show->parsed() && found.empty()) {
    std::cerr << "troupectl: stage '" << stage << "' has no dead letter " << id << "\n";
    return exit_not_found;
  }
  if (!json && !show->parsed())
    std::cout << found.size() << " dead letter" << (found.size() == 1 ? "" : "s") << "\n";
  return exit_ok;
}
