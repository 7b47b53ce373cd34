// `admin:`: where the node serves its admin endpoint (runtime/src/admin) and who may use it.
//
//   admin:
//     address: 127.0.0.1:9090   # HOST:PORT; default 127.0.0.1:0 (a free port)
//     token: ${TROUPE_TOKEN}    # a bearer token every request that changes anything must carry
//     read: open                # open (the default) or token: reading needs the token too
//     enabled: true             # false: no endpoint at all
#include "config/app_loader.hpp"

namespace troupe::detail {

namespace {

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

} // namespace

void app_loader::read_admin(const YAML::Node& admin) {
  if (!open_map(r_, admin, "admin"))
    return;
  check_keys(r_, admin, "admin", {"address", "token", "read", "enabled"});
  auto& cfg = app_.admin;
  if (auto v = admin["enabled"]; v.IsDefined())
    if (auto on = read_enum<bool>(r_, v, "admin.enabled", {{"true", true}, {"false", false}}))
      cfg.enabled = *on;
  if (auto v = admin["address"]; v.IsDefined()) {
    if (auto text = read_string(r_, v, "admin.address", "an address HOST:PORT")) {
      auto colon = text->rfind(':');
      std::string host = colon == std::string::npos ? "" : text->substr(0, colon);
      std::string port = colon == std::string::npos ? "" : text->substr(colon + 1);
      if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2); // [::1]:9090
      char* end = nullptr;
      unsigned long n = port.empty() ? 70000 : std::strtoul(port.c_str(), &end, 10);
      if (host.empty() || port.empty() || *end != '\0' || n > 65535)
        r_.expected(v, "admin.address", "HOST:PORT with a port from 0 (a free one) to 65535, "
                                        "such as 127.0.0.1:9090");
      else {
        cfg.host = host;
        cfg.port = static_cast<uint16_t>(n);
      }
    }
  }
  if (auto v = admin["token"]; v.IsDefined())
    if (auto token = read_string(r_, v, "admin.token", "a token"))
      cfg.token = *token;
  if (auto v = admin["read"]; v.IsDefined())
    if (auto needs = read_enum<bool>(r_, v, "admin.read", {{"open", false}, {"token", true}}))
      cfg.read_needs_token = *needs;
  if (cfg.read_needs_token && cfg.token.empty())
    r_.at(admin["read"], "admin.read", "'read: token' needs a token (admin.token) to check");
  if (cfg.enabled && !is_loopback(cfg.host) && cfg.token.empty())
    r_.warn(admin["address"].Mark(), "admin.address",
            "the admin endpoint listens beyond this machine (" + cfg.host +
              ") without a token: anyone who reaches it can pause, replay and purge");
}

} // namespace troupe::detail
