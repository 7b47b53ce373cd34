// The admin endpoint's views: status, the supervision tree with each actor's counters (ps), the
// topology (DOT) and the Prometheus text. runtime/ADMIN_API.md documents every field.
#include "admin/admin_state.hpp"

#include "base/error.hpp"

#include <lmdb.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

namespace troupe {

using json = nlohmann::ordered_json;

namespace {

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0)
    return "localhost";
  return buf;
}

struct map_use {
  uint64_t size = 0, used = 0;
};

map_use map_of(store& db) {
  MDB_envinfo info{};
  MDB_stat st{};
  map_use m;
  if (mdb_env_info(db.env(), &info) == 0 && mdb_env_stat(db.env(), &st) == 0) {
    m.size = info.me_mapsize;
    m.used = (info.me_last_pgno + 1) * uint64_t{st.ms_psize};
  }
  return m;
}

// What a stage has yet to consume: records, and the age of the oldest of them.
struct stage_lag {
  uint64_t records = 0;
  std::optional<int64_t> oldest_ms;
  std::map<std::string, uint64_t> by_edge;
};

stage_lag lag_of(admin_state& s, store_reader& r, const stage_config& cfg, int64_t now) {
  stage_lag lag;
  for (const auto& in : cfg.inputs) {
    auto e = s.db->find_edge(in);
    if (!e)
      continue;
    lag.by_edge[in] += 0; // every input is listed, a drained one with 0
    uint32_t parts = std::max<uint32_t>(1, s.db->layout().edges[*e].partitions);
    for (partition_id p = 0; p < parts; ++p) {
      auto info = r.partition(*e, p);
      auto cur = r.cursor(*e, cfg.name, p);
      if (!info || !cur)
        continue;
      uint64_t next = *cur ? (*cur)->next : info->tail;
      if (info->head <= next)
        continue;
      lag.records += info->head - next;
      lag.by_edge[in] += info->head - next;
      if (auto age = s.age_ms(*e, p, next, now); age && (!lag.oldest_ms || *age > *lag.oldest_ms))
        lag.oldest_ms = age;
    }
  }
  return lag;
}

uint64_t dead_letters_of(admin_state& s, store_reader& r, const std::string& stage) {
  auto id = s.db->find_stage(stage);
  if (!id)
    return 0;
  auto n = r.dead_letter_count(*id);
  return n ? *n : 0;
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

std::vector<stage_figure> stage_figures(admin_state& s, int64_t now) {
  std::vector<stage_figure> out;
  auto reader = s.db->reader();
  bool readable = !reader->refresh();
  for (const auto& cfg : s.app->stages) {
    const auto* m = s.metrics->stage(cfg.name);
    if (!m)
      continue;
    stage_figure f;
    f.stage = cfg.name;
    f.has_inputs = !cfg.inputs.empty();
    f.paused = m->paused.load();
    f.given_up = m->given_up.load();
    f.restarts = m->restarts.load();
    int64_t error_at = -1;
    for (const auto& w : m->workers) {
      f.restarts += w->restarts.load();
      f.last_step_ms = std::max(f.last_step_ms, w->last_step_ms.load());
      if (auto e = w->last_error(); !e.empty() && w->last_error_ms() > error_at) {
        f.last_error = e;
        error_at = w->last_error_ms();
      }
    }
    if (readable) {
      auto lag = lag_of(s, *reader, cfg, now);
      f.lag = lag.records;
      f.oldest_ms = lag.oldest_ms;
      f.dead_letters = dead_letters_of(s, *reader, cfg.name);
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::string graph_dot(const app_config& app) {
  auto quoted = [](const std::string& s) {
    std::string out = "\"";
    for (char c : s)
      out += c == '"' || c == '\\' ? std::string{'\\', c} : std::string{c};
    return out + "\"";
  };
  std::ostringstream dot;
  dot << "digraph " << quoted(app.name) << " {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n";
  for (const auto& st : app.stages)
    dot << "  " << quoted(st.name) << " [label=" << quoted(st.name + "\\n" + st.type +
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

std::string prometheus_text(admin_state& s) {
  auto now = wall_ms();
  std::ostringstream out;
  auto label = [](const std::string& v) {
    std::string o;
    for (char c : v)
      o += c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : std::string{c};
    return o;
  };
  auto family = [&](const char* name, const char* type, const char* help) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  auto stats = s.db->stats();
  auto map = map_of(*s.db);
  family("troupe_uptime_seconds", "gauge", "Seconds since the node started.");
  out << "troupe_uptime_seconds " << (now - s.started_ms) / 1000.0 << "\n";
  family("troupe_commits_total", "counter", "Write transactions the store committed.");
  out << "troupe_commits_total " << stats.commits << "\n";
  family("troupe_fsyncs_total", "counter", "Flushes of the store to disk.");
  out << "troupe_fsyncs_total " << stats.flushes << "\n";
  family("troupe_map_size_bytes", "gauge", "The LMDB map size: the most the data dir can hold.");
  out << "troupe_map_size_bytes " << map.size << "\n";
  family("troupe_map_used_bytes", "gauge", "Bytes of the map in use.");
  out << "troupe_map_used_bytes " << map.used << "\n";

  struct row {
    std::string stage, worker;
    const worker_metrics* m;
  };
  std::vector<row> rows;
  for (const auto& st : s.metrics->stages)
    for (size_t w = 0; w < st->workers.size(); ++w)
      rows.push_back({st->name, std::to_string(w), st->workers[w].get()});
  auto per_worker = [&](const char* name, const char* type, const char* help, auto get) {
    family(name, type, help);
    for (const auto& r : rows)
      out << name << "{stage=\"" << label(r.stage) << "\",worker=\"" << r.worker << "\"} "
          << get(*r.m) << "\n";
  };
  per_worker("troupe_records_in_total", "counter", "Records a worker consumed (committed).",
             [](const worker_metrics& m) { return m.records_in.load(); });
  per_worker("troupe_records_out_total", "counter", "Records a worker emitted (committed).",
             [](const worker_metrics& m) { return m.records_out.load(); });
  per_worker("troupe_steps_total", "counter", "Steps (transactions) a worker committed.",
             [](const worker_metrics& m) { return m.steps.load(); });
  per_worker("troupe_dead_letters_total", "counter", "Records a worker dead-lettered in this run.",
             [](const worker_metrics& m) { return m.dead_letters.load(); });
  per_worker("troupe_restarts_total", "counter", "Restarts of a worker by its supervisor.",
             [](const worker_metrics& m) { return m.restarts.load(); });
  family("troupe_step_seconds", "histogram", "From the start of a step to its commit.");
  for (const auto& r : rows) {
    std::string labels = "stage=\"" + label(r.stage) + "\",worker=\"" + r.worker + "\"";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < latency_histogram::buckets - 1; ++i) {
      cumulative += r.m->latency.bucket(i);
      out << "troupe_step_seconds_bucket{" << labels << ",le=\""
          << latency_histogram::upper_bound(i) / 1e6 << "\"} " << cumulative << "\n";
    }
    out << "troupe_step_seconds_bucket{" << labels << ",le=\"+Inf\"} " << r.m->latency.count() << "\n";
    out << "troupe_step_seconds_sum{" << labels << "} " << r.m->latency.sum_micros() / 1e6 << "\n";
    out << "troupe_step_seconds_count{" << labels << "} " << r.m->latency.count() << "\n";
  }

  auto reader = s.db->reader();
  if (reader->refresh())
    return out.str();
  family("troupe_lag_records", "gauge", "Records on a stage's input edges it has yet to consume.");
  std::vector<std::pair<std::string, stage_lag>> lags;
  for (const auto& cfg : s.app->stages)
    if (!cfg.inputs.empty())
      lags.emplace_back(cfg.name, lag_of(s, *reader, cfg, now));
  for (const auto& [stage, lag] : lags)
    for (const auto& [edge, n] : lag.by_edge)
      out << "troupe_lag_records{stage=\"" << label(stage) << "\",edge=\"" << label(edge) << "\"} "
          << n << "\n";
  family("troupe_lag_oldest_seconds", "gauge",
         "Age of the oldest record a stage has yet to consume (0 when none).");
  for (const auto& [stage, lag] : lags)
    out << "troupe_lag_oldest_seconds{stage=\"" << label(stage) << "\"} "
        << (lag.oldest_ms ? *lag.oldest_ms / 1000.0 : 0.0) << "\n";
  family("troupe_dead_letters", "gauge", "Records in a stage's dead-letter log.");
  for (const auto& cfg : s.app->stages)
    out << "troupe_dead_letters{stage=\"" << label(cfg.name) << "\"} "
        << dead_letters_of(s, *reader, cfg.name) << "\n";
  family("troupe_stage_paused", "gauge", "1 while an operator has paused the stage.");
  for (const auto& st : s.metrics->stages)
    out << "troupe_stage_paused{stage=\"" << label(st->name) << "\"} " << (st->paused.load() ? 1 : 0)
        << "\n";
  family("troupe_stage_given_up", "gauge", "1 once the node gave the stage up.");
  for (const auto& st : s.metrics->stages)
    out << "troupe_stage_given_up{stage=\"" << label(st->name) << "\"} "
        << (st->given_up.load() ? 1 : 0) << "\n";
  return out.str();
}

} // namespace troupe
