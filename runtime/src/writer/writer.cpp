#include "writer/writer.hpp"

#include "writer/room_watch.hpp"

#include "base/log.hpp"
#include "store/store.hpp"

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
using room_atom = caf::atom_constant<caf::atom("room")>;

// Where LMDB mapped the data file into this process.
struct mapped_range {
  void* start = nullptr;
  size_t size = 0;
};

struct waiting {
  step_delta_ptr delta; // null for a barrier
  caf::response_promise promise;
  uint64_t incarnation = 0; // for a barrier: the answer
  caf::strong_actor_ptr sender; // who sent the step (woken when there is room again)
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
  std::map<std::pair<stage_id, uint32_t>, uint64_t> incarnations; // current one per worker
  std::map<std::pair<stage_id, uint32_t>, uint64_t> expected;     // next step, per worker
  room_watch room{std::chrono::seconds{60}}; // set by spawn_writer
  // Workers whose steps wait for room (a full or nearly full map): woken as soon as consumers
  // committed or the pressure is off, so they send their steps again without waiting out their
  // backoff.
  std::set<caf::strong_actor_ptr> room_waiters;
  bool room_check_scheduled = false;
  bool committed_since_check = false; // something committed since the last room check
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

using worker_key = std::pair<stage_id, uint32_t>;

// A delta from a worker that has been replaced (a restart happened while it was still running)
// must not commit: its successor already read the cursors. Workers are fenced by incarnation.
bool is_stale(const writer_state& st, const step_delta& d) {
  auto i = st.incarnations.find({d.stage, d.worker});
  return i == st.incarnations.end() || i->second != d.incarnation;
}

caf::error out_of_order(const step_delta& d) {
  return make_error(errc::out_of_order,
                    "step " + std::to_string(d.step) + " refused: an earlier step was refused");
}

// Measures how full the map is (store::update_pressure); a failure is logged, the last
// measurement stands.
void measure(store& db) {
  if (auto err = db.update_pressure())
    log_event(log_level::error, "writer", "measuring the map failed: " + describe(err));
}

void wake_room_waiters(self_ptr self) {
  auto& st = self->state;
  for (const auto& w : st.room_waiters)
    self->send(caf::actor_cast<caf::actor>(w), wake_atom::value);
  st.room_waiters.clear();
}

// Steps were refused for room. Room may come without any further commit: the pages the last
// commits freed become usable after one more, and the measurement that admits growing steps is
// taken again. Soon, not at the next tick, or a map at its limit stalls for an interval each time.
void schedule_room_check(self_ptr self) {
  auto& st = self->state;
  if (st.room_check_scheduled)
    return;
  st.room_check_scheduled = true;
  self->delayed_send(self, std::chrono::milliseconds{20}, room_atom::value);
}

void room_check(self_ptr self) {
  auto& st = self->state;
  st.room_check_scheduled = false;
  if (st.room_waiters.empty())
    return;
  auto& db = *st.db;
  bool was = db.under_pressure();
  auto budget = db.growth_budget();
  if (st.committed_since_check) {
    st.committed_since_check = false;
    if (auto err = db.recycle_freed())
      log_event(log_level::error, "writer", "making freed room usable failed: " + describe(err));
  }
  measure(db);
  // Wake the waiters only when something changed, or a stage waiting on a consumer that holds no
  // room would be woken, refused and checked again in a loop.
  if (!db.under_pressure() || (was && db.growth_budget() > budget))
    wake_room_waiters(self);
}

void flush(self_ptr self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  if (st.queue.empty())
    return;
  auto queue = std::move(st.queue);
  st.queue.clear();
  std::vector<caf::error> results(queue.size());
  std::vector<size_t> applied; // queue indexes of the deltas in the transaction
  std::map<worker_key, uint64_t> next = st.expected; // the step each worker may commit next
  st.batch.clear();
  for (size_t i = 0; i < queue.size(); ++i) {
    auto& d = queue[i].delta;
    if (!d)
      continue; // a barrier
    if (is_stale(st, *d)) {
      results[i] = make_error(errc::stopped, "a step of a replaced worker was refused");
      continue;
    }
    auto& expect = next[{d->stage, d->worker}];
    if (d->step != expect) {
      results[i] = out_of_order(*d);
      continue;
    }
    // Near a full map intake waits, and so does a step that adds more than it consumes once the
    // room measured last is spent (their worker's later steps are refused as out of order). The
    // others still commit, to make room.
    if (st.db->under_pressure() && !st.db->admit_under_pressure(*d)) {
      results[i] = store::pressure_refusal();
      continue;
    }
    ++expect;
    if (d->empty())
      continue; // a step that wrote nothing
    st.batch.push_back(d.get());
    applied.push_back(i);
  }
  st.appended.clear();
  st.consumed.clear();
  std::vector<edge_id> extra_wakes;
  auto note_wakes = [&](const step_delta& d) {
    extra_wakes.insert(extra_wakes.end(), d.wake.begin(), d.wake.end());
  };
  auto err = st.batch.empty() ? caf::error{} : st.db->apply(st.batch, &st.appended, &st.consumed);
  if (!err) {
    st.expected = std::move(next);
    for (auto* d : st.batch)
      note_wakes(*d);
  } else if ((is_waitable(err) && code_of(err) != errc::store_full) || st.batch.size() == 1) {
    for (auto i : applied)
      results[i] = err;
    // Steps queued behind a refused one must wait for it: refuse them too.
    for (size_t i = 0; i < queue.size(); ++i)
      if (queue[i].delta && !results[i])
        results[i] = out_of_order(*queue[i].delta);
  } else {
    // One bad step must not fail the others, and in a full map a smaller transaction may still
    // fit: apply them one by one, each worker's in order.
    std::set<worker_key> refused;
    std::vector<edge_id> appended, consumed;
    for (size_t i = 0; i < queue.size(); ++i) {
      auto& d = queue[i].delta;
      if (!d || results[i])
        continue;
      worker_key w{d->stage, d->worker};
      if (refused.count(w)) {
        results[i] = out_of_order(*d);
        continue;
      }
      if (!d->empty()) {
        std::vector<const step_delta*> one{d.get()};
        results[i] = st.db->apply(one, &appended, &consumed);
      }
      if (results[i]) {
        refused.insert(w);
        continue;
      }
      ++st.expected[w];
      note_wakes(*d);
      st.appended.insert(st.appended.end(), appended.begin(), appended.end());
      st.consumed.insert(st.consumed.end(), consumed.begin(), consumed.end());
    }
  }
  // Everything needed from the deltas is read: once answered, their stages reuse them.
  st.batch.clear();
  // Near a full map, what consumers freed may be room enough already: measure again now rather
  // than at the next tick, and let the waiting workers try at once.
  if (!st.consumed.empty() && (st.db->under_pressure() || !st.room_waiters.empty())) {
    if (st.db->under_pressure())
      measure(*st.db);
    wake_room_waiters(self);
  } else if (st.db->measure_due()) {
    measure(*st.db); // fast intake: measure before it fills the map
  }
  st.room.observe(*st.db);
  for (size_t i = 0; i < queue.size(); ++i) {
    if (!queue[i].delta) {
      queue[i].promise.deliver(queue[i].incarnation); // answered once all before it is settled
    } else if (results[i]) {
      auto c = code_of(results[i]);
      if (c == errc::store_full || c == errc::store_pressure) {
        st.room.refused(*queue[i].delta);
        schedule_room_check(self);
      }
      if (is_waitable(results[i]) || c == errc::out_of_order)
        if (queue[i].sender)
          st.room_waiters.insert(queue[i].sender);
      queue[i].promise.deliver(results[i]);
    } else {
      if (!queue[i].delta->empty()) {
        st.room.committed();
        st.committed_since_check = true;
      }
      queue[i].promise.deliver(caf::ok_atom::value);
    }
  }
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

caf::behavior writer(self_ptr self, store* db, std::chrono::milliseconds interval,
                     std::chrono::milliseconds stall_limit) {
  self->state.room = room_watch{stall_limit};
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
      self->state.queue.push_back({delta, rp, 0, self->current_sender()});
      schedule_flush(self);
      return caf::delegated<caf::ok_atom>{};
    },
    [=](barrier_atom, stage_id stage, uint32_t worker) -> caf::result<uint64_t> {
      // From here on only the new incarnation's steps commit: its predecessor's steps still
      // queued are refused as stale by the flush that answers the barrier (they never commit;
      // the new worker reads what was committed before them).
      auto incarnation = ++self->state.incarnations[{stage, worker}];
      self->state.expected[{stage, worker}] = 1;
      auto rp = self->make_response_promise();
      self->state.queue.push_back({nullptr, rp, incarnation, nullptr});
      schedule_flush(self);
      return caf::delegated<uint64_t>{};
    },
    [=](watch_atom, edge_id e, bool on_append, const caf::actor& a) {
      auto& m = on_append ? self->state.append_watchers : self->state.consume_watchers;
      m[e].push_back(a);
      self->monitor(a);
    },
    [=](admin_atom, const step_delta_ptr& delta) -> caf::result<caf::ok_atom> {
      flush(self);
      std::vector<const step_delta*> one{delta.get()};
      std::vector<edge_id> appended, consumed;
      if (auto err = self->state.db->apply(one, &appended, &consumed))
        return err;
      std::set<caf::actor> woken;
      wake(self, self->state.append_watchers, appended, woken);
      woken.clear();
      wake(self, self->state.consume_watchers, consumed, woken);
      return caf::ok_atom::value;
    },
    [=](flush_atom) { flush(self); },
    [=](room_atom) { room_check(self); },
    [=](wake_atom, const std::vector<edge_id>& edges, bool consumers) {
      // A stage failed for good: its consumers (or producers) re-check what they wait for.
      std::set<caf::actor> woken;
      wake(self, consumers ? self->state.append_watchers : self->state.consume_watchers, edges,
           woken);
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
        if (auto err = db.sync()) {
          log_event(log_level::error, "writer", describe(err));
          self->quit(err); // sticky: the node stops
          return;
        }
      measure(db);
      if (!db.under_pressure())
        wake_room_waiters(self);
      if (auto err = self->state.room.at_tick(db)) {
        log_event(log_level::error, "writer", describe(err));
        self->quit(err); // the node stops: waiting cannot end
        return;
      }
      if (auto trimmed = db.trim_all(); !trimmed)
        log_event(log_level::error, "writer", "trimming failed: " + describe(trimmed.error()));
      drop_mapped_pages(self->state);
      self->delayed_send(self, self->state.interval, tick_atom::value);
    },
  };
}

} // namespace

caf::actor spawn_writer(caf::actor_system& sys, store& db,
                        std::chrono::milliseconds flush_interval,
                        std::chrono::milliseconds stall_limit) {
  return sys.spawn<caf::detached>(writer, &db, flush_interval, stall_limit);
}

} // namespace troupe
