#include "routing.hpp"

#include <troupe/partition.hpp>

#include <algorithm>

namespace troupe {

namespace {

expression parse(const params& p, const std::string& key, const std::string& text,
                 capnp::StructSchema s) {
  std::optional<expression> e;
  try {
    e.emplace(s, text);
  } catch (const expression_error& err) {
    p.fail(key, std::string(err.what()) + " in '" + text + "'");
  }
  return std::move(*e);
}

} // namespace

copier::copier(const params& p) : ports_(p.output_ports()) {}

void copier::process(context& ctx, const record& r) {
  for (const auto& port : ports_)
    ctx.forward(port, r);
}

filter::filter(const params& p)
    : where_(parse(p, "where", p.get_string("where"), input_struct(p, "a filter"))),
      rejected_([&] {
        auto ports = p.output_ports();
        return std::find(ports.begin(), ports.end(), "rejected") != ports.end();
      }()) {
  auto unmatched = p.get_string("unmatched", "drop");
  if (unmatched != "drop" && unmatched != "dead_letter")
    p.fail("unmatched", "expected drop or dead_letter, found '" + unmatched + "'");
  dead_letter_unmatched_ = unmatched == "dead_letter";
  if (dead_letter_unmatched_ && rejected_)
    p.fail("unmatched", "records that do not match go to the 'rejected' port; "
                        "'unmatched: dead_letter' would contradict it");
}

void filter::process(context& ctx, const record& r) {
  bool keep;
  try {
    keep = where_.matches(r.payload_any().getAs<capnp::AnyStruct>());
  } catch (const missing_field& e) {
    ctx.dead_letter(r, std::string("filter: ") + e.what() + ", which 'where' reads");
    return;
  }
  if (keep)
    ctx.forward("out", r);
  else if (rejected_)
    ctx.forward("rejected", r);
  else if (dead_letter_unmatched_)
    ctx.dead_letter(r, "filter: the record does not match '" + where_.text() + "'");
}

splitter::splitter(const params& p) {
  auto schema = input_struct(p, "a splitter");
  auto ports = p.output_ports();
  auto connected = [&](const std::string& port) {
    return std::find(ports.begin(), ports.end(), port) != ports.end();
  };
  auto mode = p.get_string("mode", "first");
  if (mode != "first" && mode != "all")
    p.fail("mode", "expected first or all, found '" + mode + "'");
  all_ = mode == "all";
  auto routes = p.get_map("routes");
  if (routes.empty())
    p.fail("routes", "a splitter needs routes: {<port>: <condition>, ...}");
  for (const auto& [port, text] : routes) {
    if (!connected(port))
      p.fail("routes." + port, "route '" + port + "' goes to an output port that is not "
                               "connected; add it to outputs: {" + port + ": <edge>}");
    routes_.push_back({port, parse(p, "routes." + port, text, schema)});
  }
  if (p.has("default")) {
    default_ = p.get_string("default");
    if (!connected(*default_))
      p.fail("default", "the default port '" + *default_ + "' is not connected");
    if (std::any_of(routes_.begin(), routes_.end(), [&](const route& r) { return r.port == *default_; }))
      p.fail("default", "'" + *default_ + "' is a route already; the default takes what no route matches");
  }
  for (const auto& port : ports)
    if (port != default_ &&
        std::none_of(routes_.begin(), routes_.end(), [&](const route& r) { return r.port == port; }))
      p.fail("routes", "output port '" + port + "' is connected but no route and not the default: "
                       "it would never get a record");
}

void splitter::process(context& ctx, const record& r) {
  // Every condition needed is evaluated before anything is forwarded: a record that lacks a
  // field goes whole to the dead-letter log, not to some routes and then there.
  auto payload = r.payload_any().getAs<capnp::AnyStruct>();
  auto& to = targets_; // reused: no allocation per record
  to.clear();
  for (const auto& route : routes_) {
    try {
      if (!route.when.matches(payload))
        continue;
    } catch (const missing_field& e) {
      ctx.dead_letter(r, "splitter: " + std::string(e.what()) + ", which route '" + route.port +
                             "' reads");
      return;
    }
    to.push_back(&route.port);
    if (!all_)
      break;
  }
  if (to.empty() && default_)
    to.push_back(&*default_);
  if (to.empty()) {
    ctx.dead_letter(r, "splitter: the record matches no route and the splitter has no default");
    return;
  }
  for (const auto* port : to)
    ctx.forward(*port, r);
}

sharder::sharder(const params& p) {
  auto ports = p.output_ports();
  for (size_t i = 0; i < ports.size(); ++i)
    shards_.push_back("shard_" + std::to_string(i));
  for (const auto& port : ports)
    if (std::find(shards_.begin(), shards_.end(), port) == shards_.end())
      p.fail("outputs", "a sharder's outputs are shard_0, shard_1, ... shard_<n-1>; found '" +
                          port + "' among " + std::to_string(ports.size()) + " outputs");
  if (p.has("key")) {
    auto schema = input_struct(p, "a sharder with a key field");
    try {
      key_.emplace(schema, p.get_string("key"));
    } catch (const std::invalid_argument& e) {
      p.fail("key", e.what());
    }
    if (auto why = key_type_error(key_->type()); !why.empty())
      p.fail("key", "'" + key_->text() + "' " + why);
  }
}

void sharder::process(context& ctx, const record& r) {
  std::string number; // an integer key's decimal digits; a Text key is read in place
  std::string_view key;
  if (key_) {
    auto v = key_->read(r.payload_any().getAs<capnp::AnyStruct>());
    if (!v) {
      ctx.dead_letter(r, "sharder: the record has no field '" + key_->text() + "', its shard key");
      return;
    }
    if (v->k == field_value::kind::text) {
      key = v->text;
    } else {
      number = key_bytes(*v);
      key = number;
    }
  } else if (r.has_key()) {
    key = r.key();
  } else {
    ctx.dead_letter(r, "sharder: the record has no key (set the source's key, or the sharder's "
                       "key: <field>)");
    return;
  }
  auto n = static_cast<uint32_t>(shards_.size());
  ctx.forward(shards_[n <= 1 ? 0 : partition_of(key, n)], r);
}

void register_routing_stages(registry& reg) {
  reg.add_operator<copier>("copier").any_outputs().passes_through();
  reg.add_operator<merger>("merger").passes_through();
  reg.add_operator<filter>("filter")
    .optional_outputs({"rejected"})
    .params({"where", "unmatched"})
    .passes_through();
  reg.add_operator<splitter>("splitter")
    .any_outputs()
    .params({"routes", "mode", "default"})
    .passes_through();
  reg.add_operator<sharder>("sharder").any_outputs().params({"key"}).passes_through();
}

} // namespace troupe
