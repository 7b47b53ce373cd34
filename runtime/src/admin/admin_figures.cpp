// The figures of the admin endpoint that are read from the store, and the Prometheus text.
#include "admin/admin_figures.hpp"

#include "base/error.hpp"

#include <lmdb.h>

#include <algorithm>
#include <sstream>

namespace troupe {

namespace detail {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

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

} // namespace detail

using namespace detail;

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
      f.dead_letters_this_run += w->dead_letters.load();
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
