// The items of a leasing stage: indexing, leases, claims, and the cursor over committed runs
// (see lease_table.hpp).
#include "engine/lease_table.hpp"

#include "base/endian.hpp"

#include <algorithm>

namespace troupe::detail {

namespace {

constexpr std::string_view run_prefix = "lease/";

std::string seconds(std::chrono::milliseconds d) {
  auto ms = d.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

} // namespace

std::string lease_run_key(uint32_t input, uint64_t first) {
  std::string key{run_prefix};
  key.push_back(static_cast<char>(input));
  append_be64(key, first);
  return key;
}

std::string lease_run_value(uint64_t end, uint64_t bytes) {
  std::string v(16, '\0');
  put_le64(v.data(), end);
  put_le64(v.data() + 8, bytes);
  return v;
}

std::vector<lease_run> lease_runs(const std::vector<lease>& items) {
  std::vector<const lease*> sorted;
  sorted.reserve(items.size());
  for (const auto& l : items)
    sorted.push_back(&l);
  std::sort(sorted.begin(), sorted.end(), [](const lease* a, const lease* b) {
    return std::tie(a->input, a->partition, a->seq) < std::tie(b->input, b->partition, b->seq);
  });
  std::vector<lease_run> runs;
  for (const auto* l : sorted) {
    if (!runs.empty() && runs.back().input == l->input && runs.back().partition == l->partition &&
        runs.back().end == l->seq) {
      runs.back().end = l->seq + 1;
      runs.back().bytes += l->size;
      continue;
    }
    runs.push_back({l->input, l->partition, l->seq, l->seq + 1, l->size});
  }
  return runs;
}

lease_table::lease_table(config cfg) : cfg_(std::move(cfg)) {
  books_.resize(cfg_.inputs.size() * cfg_.partitions);
}

caf::error lease_table::load(store_reader& reader) {
  for (uint32_t i = 0; i < cfg_.inputs.size(); ++i)
    for (partition_id p = 0; p < cfg_.partitions; ++p) {
      auto& b = book(i, p);
      auto c = reader.cursor(cfg_.inputs[i], cfg_.group, p);
      if (!c)
        return c.error();
      b.cursor = c->value_or(cursor_pos{});
      b.indexed = b.cursor.next;
      b.runs.clear();
      std::string prefix = lease_run_key(i, 0).substr(0, run_prefix.size() + 1);
      auto err = reader.scan_state(
        cfg_.stage, state_scope::partition, p, state_space::runtime,
        [&](std::string_view key, std::string_view value) {
          if (key.size() != prefix.size() + 8 || key.substr(0, prefix.size()) != prefix ||
              value.size() != 16)
            return;
          auto first = get_be64(key.data() + prefix.size());
          b.runs[first] = {get_le64(value.data()), get_le64(value.data() + 8)};
        });
      if (err)
        return err;
    }
  loaded_ = true;
  return {};
}

caf::error lease_table::sync(store_reader& reader, const priority_fn& priority,
                             std::vector<uint64_t>& heads) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (!loaded_)
    if (auto err = load(reader))
      return err;
  heads.assign(books_.size(), 0);
  for (uint32_t i = 0; i < cfg_.inputs.size(); ++i)
    for (partition_id p = 0; p < cfg_.partitions; ++p) {
      auto& b = book(i, p);
      auto info = reader.partition(cfg_.inputs[i], p);
      if (!info)
        return info.error();
      heads[i * cfg_.partitions + p] = info->head;
      if (b.indexed < info->tail) // trimmed below us: nothing there can be leased
        b.indexed = info->tail;
      if (b.indexed >= info->head)
        continue;
      // Skip committed runs while indexing: they are done.
      auto visited = reader.read(cfg_.inputs[i], p, b.indexed, info->head - b.indexed,
                                 [&](uint64_t seq, std::string_view bytes) {
        b.indexed = seq + 1;
        auto r = b.runs.upper_bound(seq);
        if (r != b.runs.begin() && seq < std::prev(r)->second.end)
          return true;
        item it;
        it.size = static_cast<uint32_t>(bytes.size());
        it.order = arrivals_++;
        std::string error;
        if (auto prio = priority(i, p, seq, bytes, error)) {
          it.priority = *prio;
        } else {
          it.dead = true;
          it.error = std::move(error);
        }
        item_key k{i, p, seq};
        queue_.insert({-it.priority, it.order, k});
        items_.emplace(k, std::move(it));
        return true;
      });
      if (!visited)
        return visited.error();
    }
  return {};
}

void lease_table::wait_again(const item_key& k, item& it) {
  it.at = holding::waiting;
  held_.erase(k);
  queue_.insert({-it.priority, it.order, k});
}

void lease_table::expire(lease_clock::time_point now) {
  for (auto h = held_.begin(); h != held_.end();) {
    auto k = *h++;
    auto& it = items_.at(k);
    if (it.at != holding::leased || it.deadline > now)
      continue;
    ++it.attempts;
    it.error = "its lease of " + seconds(cfg_.lease) + " ran out on worker " +
               std::to_string(it.worker) + " (the worker is stuck or slower than `lease`)";
    it.dead = it.attempts >= cfg_.max_attempts;
    it.due = now;
    wait_again(k, it);
  }
}

std::vector<lease> lease_table::take(uint32_t worker, size_t max,
                                     const std::vector<uint64_t>& heads,
                                     lease_clock::time_point now) {
  std::lock_guard<std::mutex> guard{mutex_};
  expire(now);
  std::vector<lease> out;
  for (auto q = queue_.begin(); q != queue_.end() && out.size() < max;) {
    const auto& k = std::get<2>(*q);
    auto& it = items_.at(k);
    if (it.due > now || k.seq >= heads[k.input * cfg_.partitions + k.partition]) {
      ++q;
      continue;
    }
    bool alone = it.dead || it.suspect;
    if (alone && !out.empty())
      break;
    it.at = holding::leased;
    it.worker = worker;
    it.deadline = now + cfg_.lease;
    held_.insert(k);
    out.push_back({k.input, k.partition, k.seq, it.size, it.attempts, it.dead, it.error});
    q = queue_.erase(q);
    if (alone)
      break;
  }
  return out;
}

bool lease_table::claim(uint32_t worker, const std::vector<lease>& items) {
  std::lock_guard<std::mutex> guard{mutex_};
  bool all = std::all_of(items.begin(), items.end(), [&](const lease& l) {
    auto i = items_.find({l.input, l.partition, l.seq});
    return i != items_.end() && i->second.at == holding::leased && i->second.worker == worker;
  });
  if (!all) {
    for (const auto& l : items) {
      item_key k{l.input, l.partition, l.seq};
      auto i = items_.find(k);
      if (i != items_.end() && i->second.at == holding::leased && i->second.worker == worker)
        wait_again(k, i->second);
    }
    return false;
  }
  for (const auto& r : lease_runs(items))
    for (auto seq = r.first; seq < r.end; ++seq) {
      auto& it = items_.at({r.input, r.partition, seq});
      it.at = holding::claimed;
      it.run = r.first;
    }
  return true;
}

void lease_table::committed(const std::vector<lease>& items) {
  std::lock_guard<std::mutex> guard{mutex_};
  for (const auto& r : lease_runs(items)) {
    book(r.input, r.partition).runs[r.first] = {r.end, r.bytes};
    for (auto seq = r.first; seq < r.end; ++seq) {
      item_key k{r.input, r.partition, seq};
      held_.erase(k);
      items_.erase(k);
    }
  }
}

void lease_table::release(uint32_t worker, const std::vector<lease>& items,
                          std::string_view error, bool blame, bool suspect,
                          lease_clock::duration retry_after) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto now = lease_clock::now();
  for (const auto& l : items) {
    item_key k{l.input, l.partition, l.seq};
    auto i = items_.find(k);
    if (i == items_.end() || i->second.at == holding::waiting || i->second.worker != worker)
      continue;
    auto& it = i->second;
    it.error = std::string{error};
    if (blame) {
      ++it.attempts;
      it.dead = it.attempts >= cfg_.max_attempts;
      it.suspect = false;
      it.due = now + retry_after;
    } else {
      it.suspect = it.suspect || suspect;
    }
    wait_again(k, it);
  }
}

caf::error lease_table::restarted(uint32_t worker, store_reader& reader) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (mover_ == worker) {
    mover_.reset();
    for (uint32_t i = 0; i < cfg_.inputs.size(); ++i)
      for (partition_id p = 0; p < cfg_.partitions; ++p) {
        auto c = reader.cursor(cfg_.inputs[i], cfg_.group, p);
        if (!c)
          return c.error();
        auto& b = book(i, p);
        b.cursor = c->value_or(cursor_pos{});
        b.runs.erase(b.runs.begin(), b.runs.lower_bound(b.cursor.next));
      }
  }
  auto now = lease_clock::now();
  for (auto h = held_.begin(); h != held_.end();) {
    auto k = *h++;
    auto& it = items_.at(k);
    if (it.worker != worker)
      continue;
    if (it.at == holding::claimed) {
      auto& b = book(k.input, k.partition);
      bool done = it.run < b.cursor.next || b.runs.count(it.run) > 0;
      if (!done) {
        auto v = reader.state(cfg_.stage, state_scope::partition, k.partition,
                              state_space::runtime, lease_run_key(k.input, it.run));
        if (!v)
          return v.error();
        if (*v && (*v)->size() == 16) {
          b.runs[it.run] = {get_le64((*v)->data()), get_le64((*v)->data() + 8)};
          done = true;
        }
      }
      if (done) {
        held_.erase(k);
        items_.erase(k);
        continue;
      }
    }
    ++it.attempts;
    it.error = "its worker " + std::to_string(worker) + " stopped while it held the item";
    it.dead = it.attempts >= cfg_.max_attempts;
    it.due = now;
    wait_again(k, it);
  }
  return {};
}

std::vector<lease_move> lease_table::take_moves(uint32_t worker) {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<lease_move> moves;
  if (mover_)
    return moves;
  for (uint32_t i = 0; i < cfg_.inputs.size(); ++i)
    for (partition_id p = 0; p < cfg_.partitions; ++p) {
      auto& b = book(i, p);
      lease_move m{i, p, b.cursor, {}};
      for (auto r = b.runs.find(m.to.next); r != b.runs.end(); r = b.runs.find(m.to.next)) {
        m.to = {r->second.end, m.to.bytes + r->second.bytes};
        m.erased.push_back(r->first);
        if (m.erased.size() >= 4096) // a bounded step; the next one goes on
          break;
      }
      if (!m.erased.empty())
        moves.push_back(std::move(m));
    }
  if (!moves.empty())
    mover_ = worker;
  return moves;
}

void lease_table::moved(const std::vector<lease_move>& moves) {
  std::lock_guard<std::mutex> guard{mutex_};
  for (const auto& m : moves) {
    auto& b = book(m.input, m.partition);
    b.cursor = m.to;
    for (auto first : m.erased)
      b.runs.erase(first);
  }
  mover_.reset();
}

lease_table::status lease_table::state() const {
  std::lock_guard<std::mutex> guard{mutex_};
  status s;
  s.waiting = queue_.size();
  s.leased = held_.size();
  s.settled = items_.empty() && !mover_ &&
              std::all_of(books_.begin(), books_.end(), [](const partition_book& b) {
                return b.runs.empty() && b.cursor.next >= b.indexed;
              });
  for (const auto& [prio, order, k] : queue_) {
    auto due = items_.at(k).due;
    if (!s.next_event || due < *s.next_event)
      s.next_event = due;
  }
  for (const auto& k : held_) {
    const auto& it = items_.at(k);
    if (it.at == holding::leased && (!s.next_event || it.deadline < *s.next_event))
      s.next_event = it.deadline;
  }
  return s;
}

} // namespace troupe::detail
