// The public stage API (troupe/stage.hpp) on top of step_impl.
#include "engine/step_impl.hpp"

#include "base/endian.hpp"
#include "base/log.hpp"
#include "store/format.hpp"

#include <troupe/partition.hpp>

#include <capnp/dynamic.h>
#include <xxhash.h>

#include <cstring>
#include <new>
#include <stdexcept>

namespace troupe {

using detail::record_impl;
using detail::step_impl;

uint32_t partition_of(std::string_view key, uint32_t partitions) {
  if (partitions <= 1)
    return 0;
  return static_cast<uint32_t>(XXH3_64bits(key.data(), key.size()) % partitions);
}

// -- record -------------------------------------------------------------------------------------

namespace {
schema::Envelope::Reader env(const record_impl* r) {
  return r->envelope();
}
std::string_view view(capnp::Text::Reader t) {
  return {t.cStr(), t.size()};
}
std::string_view view(capnp::Data::Reader d) {
  return {reinterpret_cast<const char*>(d.begin()), d.size()};
}
} // namespace

std::string_view record::origin() const {
  return view(env(impl_).getId().getOrigin());
}
uint64_t record::seq() const {
  return env(impl_).getId().getSeq();
}
std::string_view record::key() const {
  return view(env(impl_).getKey());
}
int64_t record::event_time() const {
  return env(impl_).getEventTime();
}
uint32_t record::attempt() const {
  return env(impl_).getAttempt() + impl_->extra_attempts;
}
std::optional<std::string_view> record::header(std::string_view name) const {
  for (auto h : env(impl_).getHeaders())
    if (view(h.getName()) == name)
      return view(h.getValue());
  return std::nullopt;
}
std::string_view record::input() const {
  return *impl_->input;
}
uint32_t record::partition() const {
  return impl_->partition;
}
uint64_t record::position() const {
  return impl_->position;
}
uint64_t record::source_position() const {
  return env(impl_).getSourcePosition();
}
capnp::AnyPointer::Reader record::payload_any() const {
  return env(impl_).getPayload();
}
std::string_view record::bytes() const {
  return impl_->bytes;
}

// -- step_impl ----------------------------------------------------------------------------------

namespace detail {

// One output being built. Its message lives in a reusable, zeroed first segment; the builder's
// destructor zeroes what it used, so the next output starts clean without an allocation.
struct step_impl::pending {
  static constexpr size_t scratch_words = 2048;
  std::unique_ptr<capnp::word[]> scratch{new capnp::word[scratch_words]()};
  alignas(capnp::MallocMessageBuilder) unsigned char storage[sizeof(capnp::MallocMessageBuilder)];
  capnp::MallocMessageBuilder* message = nullptr;
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
  current = nullptr;
  store_error = caf::error{};
  first_id = next_id;
}

void step_impl::abandon() {
  out->close();
  if (delta)
    delta->clear();
  overlay.clear();
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

void step_impl::start_output(edge_id e) {
  flush_pending();
  out->open();
  out->edge = e;
  out->id_partition = current ? current->partition : owned.front();
  auto env = out->message->initRoot<schema::Envelope>();
  if (current) {
    auto in = current->envelope();
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
  return pending_message().getRoot<schema::Envelope>();
}

namespace {
partition_id output_partition(std::string_view key, uint64_t seq, uint32_t partitions) {
  if (partitions <= 1)
    return 0;
  return key.empty() ? partition_of_keyless(seq, partitions) : partition_of(key, partitions);
}
} // namespace

void step_impl::flush_pending() {
  if (!out->message)
    return;
  auto env = out->message->getRoot<schema::Envelope>();
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
  auto part = output_partition(view(env.asReader().getKey()), seq, edge_partitions[out->edge]);
  delta->outputs.push_back({out->edge, part, start, static_cast<uint32_t>(size)});
  out->close();
}

void step_impl::add_forward(edge_id e, const record_impl& r) {
  flush_pending();
  partition_id part = 0;
  if (edge_partitions[e] > 1) { // only then is its key needed (and the record decoded)
    auto env = r.envelope();
    part = output_partition(view(env.getKey()), env.getId().getSeq(), edge_partitions[e]);
  }
  auto start = delta->arena.size();
  delta->arena.append(r.bytes);
  delta->outputs.push_back({e, part, start, static_cast<uint32_t>(r.bytes.size())});
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

// -- record_builder -----------------------------------------------------------------------------

record_builder& record_builder::key(std::string_view k) {
  step_->pending_envelope().setKey(
    kj::arrayPtr(reinterpret_cast<const kj::byte*>(k.data()), k.size()));
  return *this;
}
record_builder& record_builder::event_time(int64_t ms) {
  step_->pending_envelope().setEventTime(ms);
  return *this;
}
record_builder& record_builder::source_position(uint64_t position) {
  step_->pending_envelope().setSourcePosition(position);
  return *this;
}
record_builder& record_builder::header(std::string_view name, std::string_view value) {
  step_->pending_message(); // checks the builder is still live
  step_->out->headers.emplace_back(name, value);
  return *this;
}
capnp::AnyPointer::Builder record_builder::payload_any() {
  return step_->pending_envelope().getPayload();
}

// -- state_store --------------------------------------------------------------------------------

namespace {
// LMDB keys are at most 511 bytes; the store prefixes 6 bytes (scope, index, space).
constexpr size_t max_state_key = 500;
void check_key(std::string_view key) {
  if (key.empty() || key.size() > max_state_key)
    throw std::invalid_argument("a state key must have 1 to " + std::to_string(max_state_key) +
                                " bytes, not " + std::to_string(key.size()));
}
state_scope internal(state_store::scope s) {
  return s == state_store::scope::partition ? state_scope::partition : state_scope::worker;
}
} // namespace

std::optional<std::string> state_store::get(std::string_view key) const {
  return step_->read_state(internal(scope_), index_, key);
}
void state_store::put(std::string_view key, std::string_view value) {
  check_key(key);
  store_format::state_key(step_->scratch_key, internal(scope_), index_, state_space::user, key);
  step_->overlay[step_->scratch_key] = std::string{value};
}
void state_store::erase(std::string_view key) {
  check_key(key);
  store_format::state_key(step_->scratch_key, internal(scope_), index_, state_space::user, key);
  step_->overlay[step_->scratch_key] = std::nullopt;
}
std::optional<uint64_t> state_store::get_u64(std::string_view key) const {
  auto v = get(key);
  if (!v || v->size() != 8)
    return std::nullopt;
  return get_le64(v->data());
}
void state_store::put_u64(std::string_view key, uint64_t value) {
  put(key, le64_bytes(value));
}

// -- context ------------------------------------------------------------------------------------

state_store context::state() {
  return state_store{*step_, state_store::scope::partition, step_->current_partition()};
}
state_store context::state(const record& r) {
  return state_store{*step_, state_store::scope::partition, r.partition()};
}
state_store context::worker_state() {
  return state_store{*step_, state_store::scope::worker, step_->worker};
}

record_builder context::emit(std::string_view port) {
  auto e = step_->port(port);
  step_->start_output(e);
  step_->pending_port = port;
  auto p = step_->port_payloads.find(port);
  step_->pending_payload = p == step_->port_payloads.end() ? nullptr : &p->second;
  return record_builder{*step_};
}

void context::forward(std::string_view port, const record& r) {
  check_forward(port, r);
  step_->add_forward(step_->port(port), *r.impl_);
}

void context::dead_letter(const record& r, std::string_view reason) {
  log_event(log_level::warn, "stage " + step_->stage_name,
            "record " + std::to_string(r.position()) + " of " + std::string{r.input()} +
              " goes to the dead-letter log: " + std::string{reason});
  step_->flush_pending();
  auto facts = r.impl_->describe_for_dead_letter(); // also for a record that does not decode
  detail::dead_letter_info info;
  info.stage = step_->stage_name;
  info.error = reason;
  info.attempts = facts.attempt + r.impl_->extra_attempts;
  info.input = r.input();
  info.partition = r.partition();
  info.input_seq = r.position();
  info.source_position = facts.source_position;
  info.record = r.bytes();
  step_->delta->dead.push_back({detail::make_dead_letter(info)});
}

void context::dead_letter_raw(std::string_view what, uint64_t position, std::string_view raw,
                              std::string_view reason) {
  log_event(log_level::warn, "stage " + step_->stage_name,
            std::string{what} + " at " + std::to_string(position) +
              " goes to the dead-letter log: " + std::string{reason});
  step_->flush_pending();
  detail::dead_letter_info info;
  info.stage = step_->stage_name;
  info.error = reason;
  info.input = what;
  info.input_seq = position;
  info.source_position = position;
  info.record = raw;
  step_->delta->dead.push_back({detail::make_dead_letter(info)});
}

std::string_view context::stage_name() const {
  return step_->stage_name;
}
unsigned context::worker() const {
  return step_->worker;
}
unsigned context::workers() const {
  return step_->workers;
}
std::vector<uint32_t> context::partitions() const {
  if (!step_->has_inputs)
    return {};
  return step_->owned;
}
troupe::durability context::durability() const {
  return step_->mode;
}
bool context::has_output(std::string_view port) const {
  return step_->ports.find(port) != step_->ports.end();
}

// -- batch and stage defaults ---------------------------------------------------------------------

size_t batch::size() const {
  return records_->size();
}
record batch::operator[](size_t i) const {
  const auto& r = (*records_)[i];
  r.step->current = &r;
  return record{r};
}

stage_base::~stage_base() = default;

void stage::process(context&, const record&) {
  throw std::logic_error("stage overrides neither process nor process_batch");
}

void stage::process_batch(context& ctx, const batch& records) {
  for (size_t i = 0; i < records.size(); ++i)
    process(ctx, records[i]);
}

} // namespace troupe
