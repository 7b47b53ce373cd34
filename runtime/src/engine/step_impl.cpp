// What stands behind the stage API during a step (step_impl.hpp): beginning, finishing and
// abandoning a step, building outputs and picking their partitions, reading state through the
// overlays of the step and of the steps in flight, and dead letters.
#include "engine/step_impl.hpp"

#include "base/endian.hpp"
#include "store/format.hpp"

#include <troupe/partition.hpp>

#include <capnp/dynamic.h>

#include <new>
#include <stdexcept>

namespace troupe {

namespace detail {

// One output being built. Its message lives in a reusable, zeroed first segment; the builder's
// destructor zeroes what it used, so the next output starts clean without an allocation.
struct step_impl::pending {
  static constexpr size_t scratch_words = 2048;
  std::unique_ptr<capnp::word[]> scratch{new capnp::word[scratch_words]()};
  alignas(capnp::MallocMessageBuilder) unsigned char storage[sizeof(capnp::MallocMessageBuilder)];
  capnp::MallocMessageBuilder* message = nullptr;
  schema::Envelope::Builder envelope{nullptr}; // its root, valid while `message` is
  edge_id edge = 0;
  partition_id id_partition = 0; // whose counter numbers the record
  std::vector<std::pair<std::string, std::string>> headers;

  void open() {
    message = new (storage) capnp::MallocMessageBuilder(kj::arrayPtr(scratch.get(), scratch_words));
  }
  void close() {
    if (message) {
      message->~MallocMessageBuilder();
      message = nullptr;
    }
    headers.clear();
  }
  ~pending() { close(); }
};

step_impl::step_impl() : out(std::make_unique<pending>()) {}
step_impl::~step_impl() = default;

void step_impl::begin(step_delta& d) {
  out->close();
  delta = &d;
  delta->clear();
  delta->stage = stage;
  delta->worker = worker;
  overlay.clear();
  commit_hooks.clear();
  wake_request = 0;
  take_limit = SIZE_MAX;
  current = nullptr;
  store_error = caf::error{};
  first_id = next_id;
}

void step_impl::abandon() {
  out->close();
  if (delta)
    delta->clear();
  overlay.clear();
  commit_hooks.clear();
  wake_request = 0;
  take_limit = SIZE_MAX;
  next_id = first_id;
  current = nullptr;
}

void step_impl::finish() {
  flush_pending();
  for (auto& [key, value] : overlay) {
    // The overlay key is the store's state key: scope, index (BE), space, then the user's key.
    auto scope = static_cast<state_scope>(key[0]);
    uint32_t index = get_be32(key.data() + 1);
    delta->state.push_back(
      {scope, index, state_space::user, key.substr(store_format::state_key_prefix), value});
  }
  if (leasing) {
    if (next_id[0] != first_id[0])
      delta->state.push_back({state_scope::worker, worker, state_space::runtime, "next_id",
                              le64_bytes(next_id[0])});
    return;
  }
  for (auto p : owned)
    if (next_id[p] != first_id[p])
      delta->state.push_back({state_scope::partition, p, state_space::runtime, "next_id",
                              le64_bytes(next_id[p])});
}

edge_id step_impl::port(std::string_view name) const {
  auto i = ports.find(name);
  if (i == ports.end())
    throw std::invalid_argument("stage '" + stage_name + "' emitted to output port '" +
                                std::string{name} + "', which the app does not connect");
  return i->second;
}

partition_id step_impl::current_partition() const {
  if (!has_inputs)
    return 0;
  if (!current)
    throw std::logic_error("stage '" + stage_name + "': state() needs a record in hand (it is "
                           "the state of that record's partition); in open(), close() or before "
                           "taking a record, use worker_state()");
  return current->partition;
}

void step_impl::check_keyed_state() const {
  if (leasing)
    throw std::logic_error("stage '" + stage_name + "' leases its items (any worker may take any "
                           "item), so it has no keyed state: use worker_state()");
}

void step_impl::start_output(edge_id e) {
  flush_pending();
  out->open();
  out->edge = e;
  // A leasing stage's workers share every partition: each numbers its records itself (slot 0).
  out->id_partition = leasing ? 0 : current ? current->partition : owned.front();
  auto env = out->envelope = out->message->initRoot<schema::Envelope>();
  if (current) {
    auto in = current->envelope();
    if (in.hasKey())
      env.setKey(in.getKey());
    env.setEventTime(in.getEventTime());
    env.setSourcePosition(in.getSourcePosition());
  }
}

capnp::MessageBuilder& step_impl::pending_message() {
  if (!out->message)
    throw std::logic_error("record_builder used after the next emit or after the step");
  return *out->message;
}

schema::Envelope::Builder step_impl::pending_envelope() {
  pending_message(); // checks the builder is still live
  return out->envelope;
}

namespace {
// An empty key is a key (it hashes like any other); only a record without one goes by its id.
partition_id output_partition(schema::Envelope::Reader env, uint64_t seq, uint32_t partitions) {
  if (partitions <= 1)
    return 0;
  return env.hasKey() ? partition_of(view(env.getKey()), partitions)
                      : partition_of_keyless(seq, partitions);
}
} // namespace

std::string_view step_impl::pending_origin() const {
  if (!out->message)
    throw std::logic_error("record_builder used after the next emit or after the step");
  return origins[out->id_partition];
}

uint64_t step_impl::pending_seq() const {
  if (!out->message)
    throw std::logic_error("record_builder used after the next emit or after the step");
  return next_id[out->id_partition]; // flush_pending numbers it so
}

void step_impl::flush_pending() {
  if (!out->message)
    return;
  auto env = out->envelope;
  auto id = env.initId();
  auto p = out->id_partition;
  auto seq = next_id[p]++;
  id.setOrigin(origins[p]);
  id.setSeq(seq);
  if (!out->headers.empty()) {
    auto list = env.initHeaders(static_cast<unsigned>(out->headers.size()));
    for (unsigned i = 0; i < list.size(); ++i) {
      list[i].setName(out->headers[i].first);
      const auto& v = out->headers[i].second;
      list[i].setValue(kj::arrayPtr(reinterpret_cast<const kj::byte*>(v.data()), v.size()));
    }
  }
  auto start = delta->arena.size();
  append_flat(*out->message, delta->arena);
  auto size = delta->arena.size() - start;
  if (size > max_record_bytes) {
    delta->arena.resize(start);
    out->close();
    throw std::invalid_argument("an emitted record of " + std::to_string(size) +
                                " bytes exceeds the limit of " + std::to_string(max_record_bytes));
  }
  auto part = output_partition(env.asReader(), seq, edge_partitions[out->edge]);
  delta->outputs.push_back({out->edge, part, start, static_cast<uint32_t>(size)});
  out->close();
}

void step_impl::add_forward(edge_id e, const record_impl& r) {
  flush_pending();
  partition_id part = 0;
  if (edge_partitions[e] > 1) { // only then is its key needed (and the record decoded)
    auto env = r.envelope();
    part = output_partition(env, env.getId().getSeq(), edge_partitions[e]);
  }
  auto start = delta->arena.size();
  delta->arena.append(r.bytes);
  delta->outputs.push_back({e, part, start, static_cast<uint32_t>(r.bytes.size())});
}

void step_impl::add_header(std::string_view name, std::string_view value) {
  pending_message(); // checks the builder is still live
  out->headers.emplace_back(name, value);
}

void step_impl::discard_pending() {
  out->close();
}

std::optional<std::string> step_impl::read_state(state_scope scope, uint32_t index,
                                                 std::string_view key) const {
  store_format::state_key(scratch_key, scope, index, state_space::user, key);
  if (auto i = overlay.find(scratch_key); i != overlay.end())
    return i->second;
  if (in_flight)
    for (auto o = in_flight->rbegin(); o != in_flight->rend(); ++o)
      if (auto i = o->find(scratch_key); i != o->end())
        return i->second;
  auto v = reader->state(stage, scope, index, state_space::user, key);
  if (!v) {
    if (!store_error)
      store_error = v.error();
    throw store_failure(v.error());
  }
  return std::move(*v);
}

// Committed keys merged with the overlays of the steps in flight (oldest first) and of this
// step: the committed scan asks for enough keys that erasures in the overlays cannot leave fewer
// than `max`, and overlay keys past the last committed key read are left for the next call.
std::vector<std::pair<std::string, std::string>>
step_impl::scan_state(state_scope scope, uint32_t index, std::string_view after,
                      size_t max) const {
  std::string prefix;
  store_format::state_key(prefix, scope, index, state_space::user, {});
  std::string from = prefix + std::string{after};
  std::map<std::string, std::optional<std::string>, std::less<>> pending; // user key -> value
  auto take = [&](const state_overlay& o) {
    for (auto i = o.upper_bound(from); i != o.end() && i->first.compare(0, prefix.size(), prefix) == 0; ++i)
      pending[i->first.substr(prefix.size())] = i->second;
  };
  if (in_flight)
    for (const auto& o : *in_flight)
      take(o);
  take(overlay);
  std::map<std::string, std::string, std::less<>> merged;
  size_t want = max + pending.size();
  if (auto err = reader->scan_state(
        stage, scope, index, state_space::user,
        [&](std::string_view k, std::string_view v) { merged.emplace(k, v); }, after, want)) {
    if (!store_error)
      store_error = err;
    throw store_failure(err);
  }
  std::optional<std::string> limit; // keys past it were not read from the store
  if (merged.size() >= want && !merged.empty())
    limit = merged.rbegin()->first;
  for (auto& [k, v] : pending) {
    if (limit && k > *limit)
      break;
    if (v)
      merged[k] = *v;
    else
      merged.erase(k);
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [k, v] : merged) {
    if (out.size() >= max)
      break;
    out.emplace_back(k, std::move(v));
  }
  return out;
}

std::string record_impl::where(const facts& f) const {
  auto text = "record " + std::to_string(position) + " of " + *input;
  if (partition > 0 || step->partitions > 1)
    text += " (partition " + std::to_string(partition) + ")";
  if (!f.decodes)
    text += " (which does not decode)";
  else if (f.source_position > 0)
    text += " from line " + std::to_string(f.source_position) + " of " + f.origin + "'s input";
  return text;
}

std::string make_dead_letter(const dead_letter_info& info) {
  capnp::MallocMessageBuilder mb;
  auto dl = mb.initRoot<schema::DeadLetter>();
  auto text = [](std::string_view v) { return capnp::Text::Reader(v.data(), v.size()); };
  dl.setStage(text(info.stage));
  dl.setError(text(info.error));
  dl.setAttempts(info.attempts);
  dl.setFailedAt(now_ms());
  dl.setInput(text(info.input));
  dl.setPartition(info.partition);
  dl.setInputSeq(info.input_seq);
  dl.setSourcePosition(info.source_position);
  dl.setRecord(kj::arrayPtr(reinterpret_cast<const kj::byte*>(info.record.data()), info.record.size()));
  std::string out;
  append_flat(mb, out);
  return out;
}

} // namespace detail

} // namespace troupe
