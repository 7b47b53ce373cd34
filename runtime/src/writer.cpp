#include "writer.hpp"

#include "log.hpp"
#include "store.hpp"

#include <caf/all.hpp>

#include <sys/mman.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <algorithm>
#include <map>
#include <set>

namespace troupe {

namespace {

using flush_atom = caf::atom_constant<caf::atom("flush")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

// Where LMDB mapped the data file into this process.
struct mapped_range {
  void* start = nullptr;
  size_t size = 0;
};

struct waiting {
  step_delta_ptr delta; // null for a barrier
  caf::response_promise promise;
};

struct writer_state {
  store* db = nullptr;
  std::chrono::milliseconds interval{1000};
  std::vector<waiting> queue;
  bool flush_scheduled = false;
  std::map<edge_id, std::vector<caf::actor>> append_watchers;
  std::map<edge_id, std::vector<caf::actor>> consume_watchers;
  // Reused across flushes.
  std::vector<const step_delta*> batch;
  std::vector<edge_id> appended, consumed;
  mapped_range map; // the data file's map, found on first use
  static const char* name;
};
const char* writer_state::name = "troupe.writer";

using self_ptr = caf::stateful_actor<writer_state>*;

void schedule_flush(self_ptr self) {
  if (!self->state.flush_scheduled) {
    self->state.flush_scheduled = true;
    self->send(self, flush_atom::value);
  }
}

void wake(self_ptr self, const std::map<edge_id, std::vector<caf::actor>>& watchers,
          const std::vector<edge_id>& edges, std::set<caf::actor>& woken) {
  for (auto e : edges) {
    auto i = watchers.find(e);
    if (i == watchers.end())
      continue;
    for (const auto& a : i->second)
      if (woken.insert(a).second)
        self->send(a, wake_atom::value);
  }
}

void flush(self_ptr self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  if (st.queue.empty())
    return;
  auto queue = std::move(st.queue);
  st.queue.clear();
  st.batch.clear();
  std::vector<edge_id> extra_wakes;
  for (auto& w : queue)
    if (w.delta && !w.delta->empty())
      st.batch.push_back(w.delta.get());
  caf::error err;
  st.appended.clear();
  st.consumed.clear();
  if (!st.batch.empty())
    err = st.db->apply(st.batch, &st.appended, &st.consumed);
  // Read everything needed from the deltas first: once answered, their stages reuse them.
  if (!err)
    for (auto* d : st.batch)
      extra_wakes.insert(extra_wakes.end(), d->wake.begin(), d->wake.end());
  st.batch.clear();
  for (auto& w : queue) {
    if (err)
      w.promise.deliver(err);
    else
      w.promise.deliver(caf::ok_atom::value);
  }
  if (err)
    return;
  std::set<caf::actor> woken;
  wake(self, st.append_watchers, st.appended, woken);
  wake(self, st.append_watchers, extra_wakes, woken);
  woken.clear();
  wake(self, st.consume_watchers, st.consumed, woken);
}

// Pages of the data file that readers touched stay mapped into the process, and count as its
// resident memory, until the kernel needs them back; with a large backlog that is most of the
// file. The map is read-only (writes go through pwrite), so dropping the mappings loses nothing:
// the next read faults the page back in from the page cache. LMDB does not tell where its map
// is (mdb_env_info reports it only with MDB_FIXEDMAP), so find it in /proc/self/maps.
mapped_range find_map(const std::string& data_file) {
  std::ifstream maps{"/proc/self/maps"};
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos || line.compare(slash, std::string::npos, data_file) != 0)
      continue;
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && hi > lo)
      return {reinterpret_cast<void*>(lo), static_cast<size_t>(hi - lo)};
  }
  return {};
}

void drop_mapped_pages(writer_state& st) {
  if (!st.map.start)
    st.map = find_map(std::filesystem::absolute(st.db->options().dir + "/data.mdb").lexically_normal().string());
  if (st.map.start)
    ::madvise(st.map.start, st.map.size, MADV_DONTNEED);
}

caf::behavior writer(self_ptr self, store* db, std::chrono::milliseconds interval) {
  self->state.db = db;
  self->state.interval = interval;
  self->delayed_send(self, interval, tick_atom::value);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto drop = [&](std::map<edge_id, std::vector<caf::actor>>& m) {
      for (auto& [e, actors] : m)
        actors.erase(std::remove_if(actors.begin(), actors.end(),
                                    [&](const caf::actor& a) { return a.address() == dm.source; }),
                     actors.end());
    };
    drop(self->state.append_watchers);
    drop(self->state.consume_watchers);
  });
  return {
    [=](commit_atom, const step_delta_ptr& delta) -> caf::result<caf::ok_atom> {
      auto rp = self->make_response_promise();
      self->state.queue.push_back({delta, rp});
      schedule_flush(self);
      return caf::delegated<caf::ok_atom>{};
    },
    [=](barrier_atom) -> caf::result<caf::ok_atom> {
      auto rp = self->make_response_promise();
      self->state.queue.push_back({nullptr, rp});
      schedule_flush(self);
      return caf::delegated<caf::ok_atom>{};
    },
    [=](watch_atom, edge_id e, bool on_append, const caf::actor& a) {
      auto& m = on_append ? self->state.append_watchers : self->state.consume_watchers;
      m[e].push_back(a);
      self->monitor(a);
    },
    [=](flush_atom) { flush(self); },
    [=](wake_atom, const std::vector<edge_id>& edges) { // a producer failed: consumers re-check
      std::set<caf::actor> woken;
      wake(self, self->state.append_watchers, edges, woken);
    },
    [=](shutdown_atom) {
      flush(self); // steps sent before the shutdown still commit
      if (auto err = self->state.db->sync())
        log_event(log_level::error, "writer", "final flush to disk failed: " + describe(err));
      self->quit();
    },
    [=](tick_atom) {
      auto& db = *self->state.db;
      if (db.options().mode == durability::process)
        if (auto err = db.sync())
          log_event(log_level::error, "writer", "flushing to disk failed: " + describe(err));
      if (auto trimmed = db.trim_all(); !trimmed)
        log_event(log_level::error, "writer", "trimming failed: " + describe(trimmed.error()));
      drop_mapped_pages(self->state);
      self->delayed_send(self, self->state.interval, tick_atom::value);
    },
  };
}

} // namespace

caf::actor spawn_writer(caf::actor_system& sys, store& db,
                        std::chrono::milliseconds flush_interval) {
  return sys.spawn<caf::detached>(writer, &db, flush_interval);
}

} // namespace troupe
