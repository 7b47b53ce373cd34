// troupectl replay: a stage reads its inputs again from an earlier position. The stage's workers
// keep their positions in memory while they run, so the cursors cannot just be written: the
// stage is paused until every worker holds (it saw the pause) with no step in flight, the cursors
// move in one writer transaction, each worker reads them again (reload_atom), and the stage goes
// on. What it emits again are new records (new ids): the stages downstream see them as such.
#include "admin/op_json.hpp"

#include "engine/stage_actor.hpp"
#include "writer/writer.hpp"

#include <caf/all.hpp>

#include <thread>

namespace troupe {

using json = nlohmann::ordered_json;

namespace {

struct rewind {
  std::string edge;
  edge_id e;
  partition_id p;
  uint64_t was, to, bytes;
};

// Waits (polling, within a deadline) until every worker of `m` holds with nothing in flight; an
// idle worker is woken so that it looks at the pause.
bool wait_until_held(admin_state& s, const stage_metrics& m, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    bool held = true;
    for (uint32_t w = 0; w < m.workers.size(); ++w) {
      const auto& wm = *m.workers[w];
      if (wm.holding.load() && wm.in_flight.load() == 0)
        continue;
      held = false;
      if (auto a = s.worker_actor(m.name, w))
        caf::anon_send(a, wake_atom::value);
    }
    if (held)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

} // namespace

op_result replay_stage(admin_state& s, const std::string& stage, uint64_t from,
                       std::optional<uint32_t> partition) {
  const stage_config* cfg = nullptr;
  for (const auto& c : s.app->stages)
    if (c.name == stage)
      cfg = &c;
  auto* m = s.metrics->stage(stage);
  if (!cfg || !m)
    return op_failure(404, "the app has no stage '" + stage + "'");
  if (cfg->inputs.empty())
    return op_failure(409, "stage '" + stage + "' is a source: it has no input to read again");
  if (cfg->type_info && cfg->type_info->leases)
    return op_failure(409, "stage '" + stage + "' is a work queue: its items are leased, not read "
                        "by a cursor alone, and cannot be replayed (yet)");
  for (const auto& w : m->workers) {
    auto st = w->run_state();
    if (m->given_up.load() || st == worker_run_state::finished || st == worker_run_state::given_up)
      return op_failure(409, "stage '" + stage + "' has finished (or was given up) in this run: "
                          "replay applies to a running stage");
  }
  // Where each partition's cursor goes, checked against what is stored.
  auto reader = s.db->reader();
  if (auto err = reader->refresh())
    return op_failure(500, describe(err));
  std::vector<rewind> moves;
  for (const auto& in : cfg->inputs) {
    auto e = *s.db->find_edge(in);
    uint32_t parts = std::max<uint32_t>(1, s.db->layout().edges[e].partitions);
    if (partition && *partition >= parts)
      return op_failure(404, "edge '" + in + "' has no partition " + std::to_string(*partition));
    for (uint32_t p = partition.value_or(0); p < (partition ? *partition + 1 : parts); ++p) {
      auto info = reader->partition(e, p);
      auto cur = reader->cursor(e, stage, p);
      if (!info || !cur)
        return op_failure(500, describe(!info ? info.error() : cur.error()));
      uint64_t at = *cur ? (*cur)->next : info->tail;
      if (from >= at)
        continue; // nothing to read again there
      if (from < info->tail)
        return op_failure(409, "record " + std::to_string(from) + " of edge '" + in + "' (partition " +
                              std::to_string(p) + ") is no longer stored: it keeps " +
                              std::to_string(info->tail) + " to " + std::to_string(info->head) +
                              " (edges." + in + ".retention); replay from " +
                              std::to_string(info->tail) + " or later");
      uint64_t bytes = info->bytes_tail;
      auto read = reader->read(e, p, info->tail, from - info->tail, [&](uint64_t, std::string_view b) {
        bytes += b.size();
        return true;
      });
      if (!read)
        return op_failure(500, describe(read.error()));
      moves.push_back({in, e, p, at, from, bytes});
    }
  }
  reader.reset();
  json rewound = json::array();
  uint64_t records = 0;
  for (const auto& mv : moves) {
    rewound.push_back({{"edge", mv.edge}, {"partition", mv.p}, {"from", mv.was}, {"to", mv.to}});
    records += mv.was - mv.to;
  }
  if (moves.empty())
    return op_answer(200, json{{"stage", stage}, {"records", 0}, {"rewound", rewound}});

  bool was_paused = m->paused.exchange(true);
  auto restore = [&] {
    if (!was_paused)
      m->paused = false;
  };
  if (!wait_until_held(s, *m, std::chrono::seconds(30))) {
    restore();
    return op_failure(503, "stage '" + stage + "' did not settle within 30 s (a step that does not "
                        "end, or a worker being restarted); nothing was rewound");
  }
  auto delta = std::make_shared<step_delta>();
  delta->stage = *s.db->find_stage(stage);
  for (const auto& mv : moves)
    delta->cursors.push_back({mv.e, *s.db->find_group(mv.e, stage), mv.p, mv.to, mv.bytes});
  if (auto failed = s.commit(delta)) {
    restore();
    return op_failure(500, "the cursors could not be moved: " + describe(*failed));
  }
  // Each worker reads its cursors again. One that cannot (it has a step in flight after all) is
  // restarted instead, and reads them at its start; one being restarted reads them anyway.
  caf::scoped_actor self{*s.sys};
  for (uint32_t w = 0; w < m->workers.size(); ++w)
    if (auto a = s.worker_actor(stage, w)) {
      bool reloaded = false;
      self->request(a, std::chrono::seconds(10), reload_atom::value)
        .receive([&](bool ok) { reloaded = ok; }, [](caf::error&) {});
      if (!reloaded)
        self->send_exit(a, make_error(errc::stage_failed, stage + "/" + std::to_string(w) +
                                                            " restarted to read rewound cursors"));
    }
  restore();
  return op_answer(200, json{{"stage", stage}, {"records", records}, {"rewound", rewound}});
}

} // namespace troupe
