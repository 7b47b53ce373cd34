// The public stage API (troupe/stage.hpp) on top of step_impl.
#include "engine/step_impl.hpp"

#include "base/endian.hpp"
#include "base/log.hpp"
#include "store/format.hpp"

#include <troupe/partition.hpp>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <capnp/dynamic.h>
#include <xxhash.h>

#include <chrono>
#include <cstring>
#include <new>
#include <algorithm>
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
using detail::view;
} // namespace

std::string_view record::origin() const {
  return view(env(impl_).getId().getOrigin());
}
uint64_t record::seq() const {
  return env(impl_).getId().getSeq();
}
bool record::has_key() const {
  return env(impl_).hasKey();
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


// -- record_builder -----------------------------------------------------------------------------

record_builder& record_builder::key(std::string_view k) {
  step_->pending_envelope().setKey(
    kj::arrayPtr(reinterpret_cast<const kj::byte*>(k.data()), k.size()));
  return *this;
}
record_builder& record_builder::no_key() {
  step_->pending_envelope().disownKey(); // the pointer is null again: no key
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
  step_->add_header(name, value);
  return *this;
}
std::string_view record_builder::origin() const {
  return step_->pending_origin();
}
uint64_t record_builder::seq() const {
  return step_->pending_seq();
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
std::vector<std::pair<std::string, std::string>> state_store::scan(std::string_view after,
                                                                  size_t max) const {
  return step_->scan_state(internal(scope_), index_, after, max);
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
  step_->check_keyed_state();
  return state_store{*step_, state_store::scope::partition, step_->current_partition()};
}
state_store context::state(const record& r) {
  step_->check_keyed_state();
  return state_store{*step_, state_store::scope::partition, r.partition()};
}
state_store context::worker_state() {
  return state_store{*step_, state_store::scope::worker, step_->worker};
}
state_store context::partition_state(uint32_t partition) {
  const auto& owned = step_->owned;
  if (!step_->has_inputs || std::find(owned.begin(), owned.end(), partition) == owned.end())
    throw std::invalid_argument("stage '" + step_->stage_name + "' worker " +
                                std::to_string(step_->worker) + " does not own partition " +
                                std::to_string(partition));
  step_->check_keyed_state();
  return state_store{*step_, state_store::scope::partition, partition};
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

record context::restore(std::string_view input, std::string_view bytes) {
  auto& r = step_->restored;
  step_->restored_decoder.reset();
  step_->restored_input.assign(input.data(), input.size());
  r = detail::record_impl{};
  r.bytes = bytes;
  r.input = &step_->restored_input;
  r.decoder = &step_->restored_decoder;
  r.step = step_;
  return record{r};
}

void context::dead_letter(const record& r, std::string_view reason) {
  auto facts = r.impl_->describe_for_dead_letter(); // also for a record that does not decode
  log_event(log_level::warn, "stage " + step_->stage_name,
            r.impl_->where(facts) + " goes to the dead-letter log: " + std::string{reason});
  step_->flush_pending();
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

void context::on_commit(std::function<void()> done) {
  if (done)
    step_->commit_hooks.push_back(std::move(done));
}

std::function<void()> context::waker() const {
  return [addr = step_->self] {
    if (auto worker = caf::actor_cast<caf::actor>(addr))
      caf::anon_send(worker, detail::poke_atom::value);
  };
}

void context::wake_at(int64_t at_ms) {
  auto at = std::max<int64_t>(1, at_ms);
  auto& w = step_->wake_request;
  w = w == 0 ? at : std::min(w, at);
}

void context::take_only(size_t n) {
  if (step_->leasing)
    throw std::logic_error("take_only: stage '" + step_->stage_name +
                           "' leases its items; it cannot leave some of a batch unread");
  step_->take_limit = std::min(step_->take_limit, n);
}

int64_t context::now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {
std::string who(const detail::step_impl& step) { // as the worker's own log lines name it
  return "stage " + step.stage_name +
         (step.workers > 1 ? "/" + std::to_string(step.worker) : std::string{});
}
} // namespace

void context::log_info(std::string_view message) const {
  log_event(log_level::info, who(*step_), std::string{message});
}
void context::log_warn(std::string_view message) const {
  log_event(log_level::warn, who(*step_), std::string{message});
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

bool stage::drained(context&) { return true; }

int64_t stage::priority(const record&) { return 0; }

void stage::on_timer(context&, int64_t) {}

void stage::process(context&, const record&) {
  throw std::logic_error("stage overrides neither process nor process_batch");
}

void stage::process_batch(context& ctx, const batch& records) {
  for (size_t i = 0; i < records.size(); ++i)
    process(ctx, records[i]);
}

} // namespace troupe
