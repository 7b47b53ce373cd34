#include "admin/admin_state.hpp"

#include "writer/writer.hpp"

#include <caf/all.hpp>

#include <algorithm>

namespace troupe {

void admin_state::set_actors(caf::actor root, caf::actor writer) {
  std::lock_guard<std::mutex> lock{mutex_};
  root_ = std::move(root);
  writer_ = std::move(writer);
}

namespace {

// The child named `name` of supervisor `sup`, or an invalid actor.
caf::actor child_of(caf::actor_system& sys, const caf::actor& sup, const std::string& name) {
  caf::actor found;
  if (!sup)
    return found;
  caf::scoped_actor self{sys};
  self->request(sup, std::chrono::seconds(5), caf::get_atom::value, name)
    .receive([&](caf::actor& a) { found = std::move(a); }, [](caf::error&) {});
  return found;
}

} // namespace

std::optional<caf::error> admin_state::commit(const std::shared_ptr<step_delta>& delta) const {
  caf::scoped_actor self{*sys};
  std::optional<caf::error> failed;
  self->request(writer(), std::chrono::seconds(60), admin_atom::value, delta)
    .receive([](caf::ok_atom) {}, [&](caf::error& err) { failed = err; });
  return failed;
}

caf::actor admin_state::worker_actor(const std::string& stage, uint32_t index) const {
  auto sup = child_of(*sys, root(), "stage " + stage);
  return child_of(*sys, sup, stage + "/" + std::to_string(index));
}

caf::actor admin_state::writer() const {
  std::lock_guard<std::mutex> lock{mutex_};
  return writer_;
}

caf::actor admin_state::root() const {
  std::lock_guard<std::mutex> lock{mutex_};
  return root_;
}

void admin_state::sample(int64_t now_ms) {
  sample_point p;
  p.at_ms = now_ms;
  auto stats = db->stats();
  p.commits = stats.commits;
  p.flushes = stats.flushes;
  for (const auto& st : metrics->stages)
    for (size_t w = 0; w < st->workers.size(); ++w)
      p.workers[st->name + "/" + std::to_string(w)] = {st->workers[w]->records_in.load(),
                                                       st->workers[w]->records_out.load()};
  auto reader = db->reader();
  if (!reader->refresh()) {
    const auto& edges = db->layout().edges;
    p.heads.resize(edges.size());
    for (edge_id e = 0; e < edges.size(); ++e)
      for (partition_id part = 0; part < std::max<uint32_t>(1, edges[e].partitions); ++part) {
        auto info = reader->partition(e, part);
        p.heads[e].push_back(info ? info->head : 0);
      }
  }
  std::lock_guard<std::mutex> lock{mutex_};
  samples_.push_back(std::move(p));
  while (samples_.size() > max_samples)
    samples_.pop_front();
}

admin_rates admin_state::rates() const {
  std::lock_guard<std::mutex> lock{mutex_};
  admin_rates r;
  if (samples_.size() < 2)
    return r;
  const auto& a = samples_[samples_.size() - 2];
  const auto& b = samples_.back();
  double secs = std::max<int64_t>(1, b.at_ms - a.at_ms) / 1000.0;
  r.commits = (b.commits - a.commits) / secs;
  r.flushes = (b.flushes - a.flushes) / secs;
  for (const auto& [name, now] : b.workers) {
    auto before = a.workers.find(name);
    if (before == a.workers.end())
      continue;
    r.workers[name] = {(now.first - before->second.first) / secs,
                       (now.second - before->second.second) / secs};
  }
  return r;
}

std::optional<int64_t> admin_state::age_ms(edge_id edge, partition_id p, uint64_t position,
                                           int64_t now_ms) const {
  std::lock_guard<std::mutex> lock{mutex_};
  auto head_at = [&](const sample_point& s) -> uint64_t {
    return edge < s.heads.size() && p < s.heads[edge].size() ? s.heads[edge][p] : 0;
  };
  // Heads only grow: the first sample whose head is past `position` saw the record first.
  auto first = std::partition_point(samples_.begin(), samples_.end(),
                                    [&](const sample_point& s) { return head_at(s) <= position; });
  if (first == samples_.end())
    return std::nullopt; // appended since the last sample: younger than a second
  return std::max<int64_t>(0, now_ms - first->at_ms);
}

} // namespace troupe
