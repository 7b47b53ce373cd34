// The admin endpoint's operations on stored records: peek at an edge, put dead letters back on
// their stage's input or purge them. Changes go to the writer as one delta (admin_atom): the
// records appended and the dead letters removed commit together or not at all.
#include "admin/op_json.hpp"

#include "codec/codec.hpp"

#include "envelope.capnp.h"

#include <troupe/json.hpp>

#include <capnp/dynamic.h>
#include <capnp/serialize.h>

#include <algorithm>
#include <cstring>

namespace troupe {

using json = nlohmann::ordered_json;

namespace {

// A record's payload as JSON through the edge's struct (`enc`, made once per request); null when
// the edge carries none or it does not encode.
json payload_of(const edge_payload* p, json_encoder* enc, schema::Envelope::Reader env) {
  if (!p || !enc)
    return nullptr;
  try {
    std::string out;
    if (enc->encode(env.getPayload().getAs<capnp::DynamicStruct>(p->schema), out))
      return nullptr;
    return json::parse(out);
  } catch (const std::exception&) {
    return nullptr;
  } catch (const kj::Exception&) {
    return nullptr;
  }
}

std::string text_of(capnp::Data::Reader d) {
  return {reinterpret_cast<const char*>(d.begin()), d.size()};
}

} // namespace

op_result peek_edge(admin_state& s, const std::string& edge, std::optional<uint32_t> partition,
                    std::optional<uint64_t> from, size_t max) {
  auto e = s.db->find_edge(edge);
  if (!e) {
    std::string known;
    for (const auto& spec : s.db->layout().edges)
      known += (known.empty() ? "" : ", ") + spec.name;
    return op_failure(404, "the app has no edge '" + edge + "' (its edges: " + known + ")");
  }
  uint32_t parts = std::max<uint32_t>(1, s.db->layout().edges[*e].partitions);
  if (partition && *partition >= parts)
    return op_failure(404, "edge '" + edge + "' has " + std::to_string(parts) + " partition" +
                          (parts == 1 ? "" : "s") + ", no partition " + std::to_string(*partition));
  auto reader = s.db->reader();
  if (auto err = reader->refresh())
    return op_failure(500, describe(err));
  json records = json::array();
  json partitions = json::array();
  envelope_decoder dec;
  const edge_payload* payload = nullptr;
  std::optional<json_encoder> enc;
  if (auto p = s.app->edge_payloads.find(edge); p != s.app->edge_payloads.end()) {
    payload = &p->second;
    enc.emplace(payload->schema);
  }
  for (uint32_t p = partition.value_or(0); p < (partition ? *partition + 1 : parts); ++p) {
    auto info = reader->partition(*e, p);
    if (!info)
      return op_failure(500, describe(info.error()));
    partitions.push_back({{"partition", p}, {"tail", info->tail}, {"head", info->head}});
    if (from && *from < info->tail && partition)
      return op_failure(409, "record " + std::to_string(*from) + " of partition " + std::to_string(p) +
                            " of edge '" + edge + "' is no longer stored: it keeps " +
                            std::to_string(info->tail) + " to " + std::to_string(info->head) +
                            " (edges." + edge + ".retention)");
    if (records.size() >= max)
      continue;
    auto read = reader->read(*e, p, from.value_or(info->tail), max - records.size(),
                             [&](uint64_t seq, std::string_view bytes) {
                               json r{{"partition", p}, {"seq", seq}};
                               if (auto err = dec.decode(bytes)) {
                                 r["error"] = describe(err);
                               } else {
                                 auto env = dec.root();
                                 r["id"] = std::string(env.getId().getOrigin().cStr()) + "/" +
                                           std::to_string(env.getId().getSeq());
                                 r["key"] = env.hasKey() ? json(text_of(env.getKey())) : json(nullptr);
                                 r["event_time"] = env.getEventTime();
                                 r["source_position"] = env.getSourcePosition();
                                 r["attempt"] = env.getAttempt();
                                 r["payload"] = payload_of(payload, enc ? &*enc : nullptr, env);
                               }
                               records.push_back(std::move(r));
                               return true;
                             });
    if (!read)
      return op_failure(500, describe(read.error()));
  }
  return op_answer(200, json{{"edge", edge}, {"partitions", partitions}, {"records", records}});
}

op_result requeue_dead_letters(admin_state& s, const std::string& stage, std::vector<uint64_t> ids,
                               bool all, bool retry) {
  auto id = s.db->find_stage(stage);
  const stage_config* cfg = nullptr;
  for (const auto& c : s.app->stages)
    if (c.name == stage)
      cfg = &c;
  if (!id || !cfg)
    return op_failure(404, "the app has no stage '" + stage + "'");
  if (retry) {
    const auto* m = s.metrics->stage(stage);
    bool running = m && !m->given_up.load() &&
                   std::any_of(m->workers.begin(), m->workers.end(), [](const auto& w) {
                     auto st = w->run_state();
                     return st != worker_run_state::finished && st != worker_run_state::given_up;
                   });
    if (!running)
      return op_failure(409, "stage '" + stage + "' has finished (or was given up): records put "
                          "back on its input would not be read in this run. Purge them, or run "
                          "the app again once its input has more to give");
  }
  auto reader = s.db->reader();
  if (auto err = reader->refresh())
    return op_failure(500, describe(err));
  auto entries = reader->dead_letters(*id);
  if (!entries)
    return op_failure(500, describe(entries.error()));
  std::map<uint64_t, const dead_letter_entry*> by_id;
  for (const auto& entry : *entries)
    by_id[entry.seq] = &entry;
  if (all) {
    ids.clear();
    for (const auto& [seq, entry] : by_id)
      ids.push_back(seq);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<uint64_t> missing;
  for (auto i : ids)
    if (!by_id.count(i))
      missing.push_back(i);
  if (!missing.empty())
    return op_answer(404, json{{"error", "stage '" + stage + "' has no dead letter numbered " +
                                        std::to_string(missing.front()) +
                                        (missing.size() > 1 ? " (and " + std::to_string(missing.size() - 1) + " more)" : "")},
                            {"missing", missing}});
  auto delta = std::make_shared<step_delta>();
  delta->stage = *id;
  delta->remove_dead = ids;
  for (auto i : ids) {
    if (!retry)
      break;
    const auto& bytes = by_id[i]->bytes;
    auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), bytes.data(), words.size() * sizeof(capnp::word));
    capnp::FlatArrayMessageReader msg{words.asPtr()};
    auto dl = msg.getRoot<schema::DeadLetter>();
    std::string input = dl.getInput();
    auto record = dl.getRecord();
    std::string_view rec{reinterpret_cast<const char*>(record.begin()), record.size()};
    auto edge = s.db->find_edge(input);
    bool reads = std::find(cfg->inputs.begin(), cfg->inputs.end(), input) != cfg->inputs.end();
    if (!edge || !reads || check_framing(rec))
      return op_failure(409, "dead letter " + std::to_string(i) + " of stage '" + stage +
                            "' holds the raw input of " + input + " (at " +
                            std::to_string(dl.getInputSeq()) + "), not a record of an edge the "
                            "stage reads: it cannot be put back. Fix it where it came from, or "
                            "purge it");
    uint32_t parts = std::max<uint32_t>(1, s.db->layout().edges[*edge].partitions);
    delta->add_output(*edge, std::min(dl.getPartition(), parts - 1), rec);
  }
  if (auto err = s.commit(delta))
    return op_failure(code_of(*err) == errc::not_found ? 404 : 500, describe(*err));
  return op_answer(200, json{{"stage", stage}, {retry ? "retried" : "purged", ids.size()}, {"ids", ids}});
}

} // namespace troupe
