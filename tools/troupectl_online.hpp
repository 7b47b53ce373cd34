// troupectl's commands against a running node, through its admin endpoint (runtime/ADMIN_API.md):
// status, ps, top, graph, metrics, pause, resume, kill.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace troupe::ctl {

constexpr int exit_unreachable = 3, exit_refused = 4;

struct online_options {
  std::string address; // HOST:PORT
  std::string token;   // sent as a bearer token when not empty
  bool json = false;
};

// Where the node of an app listens: its admin.address, or, for port 0, the address the node
// wrote to <data_dir>/admin.json. Empty with `why` set when there is none.
std::string node_address(const std::string& configured_host, unsigned configured_port,
                         const std::string& data_dir, std::string& why);

int online_status(const online_options& o);
int online_ps(const online_options& o);
// ps every `interval_ms`, sorted by "lag" or "rate", `iterations` times (0: until interrupted).
int online_top(const online_options& o, const std::string& sort, unsigned interval_ms,
               unsigned iterations);
int online_graph(const online_options& o);
int online_metrics(const online_options& o);
int online_pause(const online_options& o, const std::string& stage, bool pause);
// Records of an edge: `n` from `from` (default: the oldest stored), of one partition or of each.
int online_peek(const online_options& o, const std::string& edge, std::optional<uint32_t> partition,
                std::optional<uint64_t> from, unsigned n);
// Dead letters of a stage (`ids`, or all) put back on its input (retry) or deleted (purge).
int online_requeue(const online_options& o, const std::string& stage,
                   const std::vector<uint64_t>& ids, bool all, bool retry);
// Rewinds the stage's cursors to `from` (in one partition, or each): it and what is downstream
// see those records again.
int online_replay(const online_options& o, const std::string& stage, uint64_t from,
                  std::optional<uint32_t> partition);
// `actor` is "<stage>/<worker>", or a stage with one worker.
int online_kill(const online_options& o, const std::string& actor);

} // namespace troupe::ctl
