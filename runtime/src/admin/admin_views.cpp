// The admin endpoint's views: status, the supervision tree with each actor's counters (ps) and
// the topology (DOT). runtime/ADMIN_API.md documents every field.
#include "admin/admin_figures.hpp"

#include "base/error.hpp"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

namespace troupe {

using json = nlohmann::ordered_json;
using namespace detail;

namespace {

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0)
    return "localhost";
  return buf;
}

// A stage's state from its workers': given up, paused, restarting (one is down), finished (all
// are), else running.
std::string stage_state(const stage_metrics& m) {
  if (m.given_up.load())
    return "given_up";
  if (m.paused.load())
    return "paused";
  bool all_finished = !m.workers.empty(), starting = false;
  for (const auto& w : m.workers) {
    auto st = w->run_state();
    if (st == worker_run_state::failed || st == worker_run_state::restarting)
      return "restarting";
    starting = starting || st == worker_run_state::starting;
    all_finished = all_finished && st == worker_run_state::finished;
  }
  return all_finished ? "finished" : starting ? "starting" : "running";
}

json error_or_null(const std::string& e) { return e.empty() ? json(nullptr) : json(e); }

} // namespace

std::string status_json(admin_state& s) {
  auto now = wall_ms();
  auto rates = s.rates();
  auto stats = s.db->stats();
  auto map = map_of(*s.db);
  std::error_code ec;
  auto data_bytes = std::filesystem::file_size(std::filesystem::path(s.app->data_dir) / "data.mdb", ec);
  json j;
  j["api"] = 1;
  j["node"] = hostname() + ":" + std::to_string(::getpid());
  j["app"] = s.app->name;
  j["app_file"] = s.app->file;
  j["pid"] = ::getpid();
  j["uptime_s"] = (now - s.started_ms) / 1000.0;
  j["durability"] = s.app->mode == durability::sync ? "sync" : "process";
  j["data_dir"] = s.app->data_dir;
  j["data_bytes"] = ec ? 0 : data_bytes;
  j["map_size_bytes"] = map.size;
  j["map_used_bytes"] = map.used;
  j["commits"] = stats.commits;
  j["fsyncs"] = stats.flushes;
  j["commits_per_s"] = rates.commits;
  j["fsyncs_per_s"] = rates.flushes;
  j["stages"] = s.app->stages.size();
  return dump(j);
}

std::string ps_json(admin_state& s) {
  auto now = wall_ms();
  auto rates = s.rates();
  auto reader = s.db->reader();
  bool readable = !reader->refresh();
  json stages = json::array();
  json tree_children = json::array();
  for (const auto& cfg : s.app->stages) {
    const auto* m = s.metrics->stage(cfg.name);
    if (!m)
      continue;
    json workers = json::array();
    uint64_t in = 0, out = 0, restarts = m->restarts.load(), steps = 0;
    double in_rate = 0, out_rate = 0;
    std::string last_error;
    int64_t last_error_at = 0;
    for (size_t w = 0; w < m->workers.size(); ++w) {
      const auto& wm = *m->workers[w];
      auto name = cfg.name + "/" + std::to_string(w);
      auto r = rates.workers.count(name) ? rates.workers.at(name) : std::pair<double, double>{};
      auto err = wm.last_error();
      if (!err.empty() && wm.last_error_ms() >= last_error_at) {
        last_error = err;
        last_error_at = wm.last_error_ms();
      }
      in += wm.records_in.load();
      out += wm.records_out.load();
      steps += wm.steps.load();
      restarts += wm.restarts.load();
      in_rate += r.first;
      out_rate += r.second;
      json wj;
      wj["name"] = name;
      wj["kind"] = "worker";
      wj["state"] = to_string(wm.run_state());
      wj["restarts"] = wm.restarts.load();
      wj["last_error"] = error_or_null(err);
      wj["records_in"] = wm.records_in.load();
      wj["records_out"] = wm.records_out.load();
      wj["in_per_s"] = r.first;
      wj["out_per_s"] = r.second;
      wj["steps"] = wm.steps.load();
      wj["dead_letters_this_run"] = wm.dead_letters.load();
      wj["step_p50_us"] = wm.latency.quantile(0.5);
      wj["step_p99_us"] = wm.latency.quantile(0.99);
      workers.push_back(std::move(wj));
    }
    auto lag = readable ? lag_of(s, *reader, cfg, now) : stage_lag{};
    json sj;
    sj["name"] = cfg.name;
    sj["type"] = cfg.type;
    sj["state"] = stage_state(*m);
    sj["workers"] = m->workers.size();
    sj["paused"] = m->paused.load();
    sj["restarts"] = restarts;
    sj["last_error"] = error_or_null(last_error);
    sj["records_in"] = in;
    sj["records_out"] = out;
    sj["in_per_s"] = in_rate;
    sj["out_per_s"] = out_rate;
    sj["steps"] = steps;
    sj["lag"] = lag.records;
    sj["lag_by_edge"] = lag.by_edge;
    sj["oldest_unconsumed_ms"] = lag.oldest_ms ? json(*lag.oldest_ms) : json(nullptr);
    sj["dead_letters"] = readable ? dead_letters_of(s, *reader, cfg.name) : 0;
    sj["inputs"] = cfg.inputs;
    json outputs = json::object();
    for (const auto& [port, edge] : cfg.outputs)
      outputs[port] = edge;
    sj["outputs"] = std::move(outputs);
    stages.push_back(sj);
    json sup;
    sup["name"] = "stage " + cfg.name;
    sup["kind"] = "supervisor";
    sup["state"] = sj["state"];
    sup["restarts"] = m->restarts.load();
    sup["children"] = std::move(workers);
    tree_children.push_back(std::move(sup));
  }
  json j;
  j["api"] = 1;
  j["app"] = s.app->name;
  j["tree"] = {{"name", "node"}, {"kind", "supervisor"}, {"state", "running"},
               {"children", std::move(tree_children)}};
  j["stages"] = std::move(stages);
  return dump(j);
}

std::string graph_dot(const app_config& app) {
  auto quoted = [](const std::string& s) {
    std::string out = "\"";
    for (char c : s)
      out += c == '\n' ? std::string{"\\n"}
             : c == '"' || c == '\\' ? std::string{'\\', c} : std::string{c};
    return out + "\"";
  };
  std::ostringstream dot;
  dot << "digraph " << quoted(app.name) << " {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n";
  for (const auto& st : app.stages)
    dot << "  " << quoted(st.name) << " [label=" << quoted(st.name + "\n" + st.type +
                                                             (st.workers > 1 ? " x" + std::to_string(st.workers) : ""))
        << "];\n";
  for (const auto& producer : app.stages)
    for (const auto& [port, edge] : producer.outputs)
      for (const auto& consumer : app.stages)
        if (std::find(consumer.inputs.begin(), consumer.inputs.end(), edge) != consumer.inputs.end())
          dot << "  " << quoted(producer.name) << " -> " << quoted(consumer.name)
              << " [label=" << quoted(port == "out" ? edge : port + ": " + edge) << "];\n";
  dot << "}\n";
  return dot.str();
}

} // namespace troupe
