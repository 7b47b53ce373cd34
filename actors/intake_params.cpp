#include "intake_params.hpp"

#include <cstdlib>

namespace troupe {

std::string listen_address::text() const {
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

listen_address read_listen_address(const params& p, const std::string& fallback) {
  auto text = p.get_string("address", fallback);
  auto colon = text.rfind(':');
  listen_address a;
  a.host = colon == std::string::npos ? "" : text.substr(0, colon);
  auto digits = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2);
  char* end = nullptr;
  unsigned long n = digits.empty() ? 70000 : std::strtoul(digits.c_str(), &end, 10);
  if (a.host.empty() || digits.empty() || *end != '\0' || n > 65535)
    p.fail("address", "expected HOST:PORT with a port from 0 (a free one) to 65535, found '" +
                        text + "'");
  a.port = static_cast<int>(n);
  return a;
}

json_intake read_json_intake(const params& p, bool with_id_field) {
  json_intake in;
  auto schema = p.output_schema("out");
  if (!schema)
    p.fail("type", "this source needs the struct its output edge carries (edges.<edge>.type, "
                   "or schema.payload)");
  in.schema = *schema;
  auto unknown = p.get_string("unknown_fields", "ignore");
  if (unknown != "ignore" && unknown != "reject")
    p.fail("unknown_fields", "expected ignore or reject, found '" + unknown + "'");
  in.options.reject_unknown_fields = unknown == "reject";
  in.options.required = p.get_strings("required");
  auto path_param = [&](const char* name, std::optional<field_path>& into) {
    if (!p.has(name))
      return;
    auto text = p.get_string(name);
    try {
      into.emplace(in.schema, text);
    } catch (const std::invalid_argument& e) {
      p.fail(name, e.what());
    }
    if (auto why = key_type_error(into->type()); !why.empty())
      p.fail(name, "'" + text + "' " + why);
    in.options.required.push_back(text); // a record without it is refused
  };
  path_param("key", in.key);
  if (with_id_field)
    path_param("id_field", in.id_field);
  try {
    json_decoder check(in.schema, in.options); // checks the required paths
  } catch (const std::invalid_argument& e) {
    p.fail("required", e.what());
  }
  return in;
}

void remember_in_window(state_store state, const std::string& key, uint64_t window) {
  auto next = state.get_u64("seen_next").value_or(0);
  auto oldest = state.get_u64("seen_oldest").value_or(0);
  auto slot = [](uint64_t n) {
    auto digits = std::to_string(n);
    return "seen/" + std::string(20 - digits.size(), '0') + digits;
  };
  state.put(slot(next), key);
  ++next;
  state.put_u64("seen_next", next);
  if (next - oldest > window) {
    if (auto old = state.get(slot(oldest)))
      state.erase(*old);
    state.erase(slot(oldest));
    state.put_u64("seen_oldest", oldest + 1);
  }
}

} // namespace troupe
