// The public stage API (troupe/stage.hpp) on top of step_impl.
#include "engine/step_impl.hpp"

#include "base/log.hpp"

#include <capnp/dynamic.h>

#include <cstring>
#include <new>
#include <stdexcept>

namespace troupe {

using detail::record_impl;
using detail::step_impl;

// -- record -------------------------------------------------------------------------------------

namespace {
schema::Envelope::Reader env(const record_impl* r) {
  return r->decoder->root();
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
uint64_t record::position() const {
  return impl_->position;
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
  std::vector<std::pair<std::string, std::string>> headers;

  void open() {
    message = new (storage) capnp::MallocMessageBuilder(
      kj::arrayPtr(scratch.get(), scratch_words));
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
  dead_reasons.clear();
  current = nullptr;
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
  for (auto& [key, value] : overlay)
    delta->state.push_back({state_space::user, key, value});
  overlay.clear();
  if (next_id != first_id) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i)
      bytes[i] = static_cast<char>((next_id >> (8 * i)) & 0xff);
    delta->state.push_back({state_space::runtime, "next_id", std::move(bytes)});
  }
}

edge_id step_impl::port(std::string_view name) const {
  auto i = ports.find(name);
  if (i == ports.end())
    throw std::invalid_argument("stage '" + stage_name + "' emitted to output port '" +
                                std::string{name} + "', which the app does not connect");
  return i->second;
}

void step_impl::start_output(edge_id e) {
  flush_pending();
  out->open();
  out->edge = e;
  auto env = out->message->initRoot<schema::Envelope>();
  if (current) {
    auto in = current->decoder->root();
    env.setKey(in.getKey());
    env.setEventTime(in.getEventTime());
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

void step_impl::flush_pending() {
  if (!out->message)
    return;
  auto env = out->message->getRoot<schema::Envelope>();
  auto id = env.initId();
  id.setOrigin(origin);
  id.setSeq(next_id++);
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
  if (delta->arena.size() - start > max_record_bytes) {
    auto size = delta->arena.size() - start;
    delta->arena.resize(start);
    out->close();
    throw std::invalid_argument("an emitted record of " + std::to_string(size) +
                                " bytes exceeds the limit of " +
                                std::to_string(max_record_bytes));
  }
  delta->outputs.push_back(
    {out->edge, start, static_cast<uint32_t>(delta->arena.size() - start)});
  out->close();
}

void step_impl::discard_pending() {
  out->close();
}

std::optional<std::string> step_impl::committed_state(std::string_view key) const {
  return reader->state(stage, worker, state_space::user, key);
}

std::string make_dead_letter(std::string_view stage, std::string_view error, uint32_t attempts,
                             std::string_view input, uint64_t input_seq,
                             std::string_view record) {
  capnp::MallocMessageBuilder mb;
  auto dl = mb.initRoot<schema::DeadLetter>();
  dl.setStage(kj::StringPtr(std::string{stage}.c_str()));
  dl.setError(kj::StringPtr(std::string{error}.c_str()));
  dl.setAttempts(attempts);
  dl.setFailedAt(now_ms());
  dl.setInput(kj::StringPtr(std::string{input}.c_str()));
  dl.setInputSeq(input_seq);
  dl.setRecord(kj::arrayPtr(reinterpret_cast<const kj::byte*>(record.data()), record.size()));
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
record_builder& record_builder::header(std::string_view name, std::string_view value) {
  step_->pending_message(); // checks the builder is still live
  step_->out->headers.emplace_back(name, value);
  return *this;
}
capnp::AnyPointer::Builder record_builder::payload_any() {
  return step_->pending_envelope().getPayload();
}

// -- state_store --------------------------------------------------------------------------------

std::optional<std::string> state_store::get(std::string_view key) const {
  auto i = step_->overlay.find(key);
  if (i != step_->overlay.end())
    return i->second;
  return step_->committed_state(key);
}
namespace {
// LMDB keys are at most 511 bytes; the store prefixes 5 bytes (worker, space).
constexpr size_t max_state_key = 500;
void check_key(std::string_view key) {
  if (key.empty() || key.size() > max_state_key)
    throw std::invalid_argument("a state key must have 1 to " + std::to_string(max_state_key) +
                                " bytes, not " + std::to_string(key.size()));
}
} // namespace

void state_store::put(std::string_view key, std::string_view value) {
  check_key(key);
  step_->overlay[std::string{key}] = std::string{value};
}
void state_store::erase(std::string_view key) {
  check_key(key);
  step_->overlay[std::string{key}] = std::nullopt;
}
std::optional<uint64_t> state_store::get_u64(std::string_view key) const {
  auto v = get(key);
  if (!v || v->size() != 8)
    return std::nullopt;
  uint64_t x = 0;
  for (int i = 7; i >= 0; --i)
    x = (x << 8) | static_cast<unsigned char>((*v)[i]);
  return x;
}
void state_store::put_u64(std::string_view key, uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  put(key, bytes);
}

// -- context ------------------------------------------------------------------------------------

record_builder context::emit(std::string_view port) {
  auto e = step_->port(port);
  step_->start_output(e);
  step_->pending_port = port;
  auto p = step_->port_payloads.find(port);
  step_->pending_payload = p == step_->port_payloads.end() ? nullptr : &p->second;
  return record_builder{*step_};
}

void context::forward(std::string_view port, const record& r) {
  auto e = step_->port(port);
  check_forward(port, r);
  step_->flush_pending();
  step_->delta->add_output(e, r.bytes());
}

void context::dead_letter(const record& r, std::string_view reason) {
  log_event(log_level::warn, "stage " + step_->stage_name,
            "record " + std::to_string(r.position()) + " of " + std::string{r.input()} +
              " goes to the dead-letter log: " + std::string{reason});
  step_->flush_pending();
  step_->delta->dead.push_back({detail::make_dead_letter(
    step_->stage_name, reason, r.attempt(), r.input(), r.position(), r.bytes())});
}

void context::dead_letter_raw(std::string_view what, uint64_t position, std::string_view raw,
                              std::string_view reason) {
  log_event(log_level::warn, "stage " + step_->stage_name,
            std::string{what} + " at " + std::to_string(position) +
              " goes to the dead-letter log: " + std::string{reason});
  step_->flush_pending();
  step_->delta->dead.push_back(
    {detail::make_dead_letter(step_->stage_name, reason, 0, what, position, raw)});
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
