// `admin:`: where the node serves its admin endpoint (runtime/src/admin) and who may use it.
//
//   admin:
//     address: 127.0.0.1:9090   # HOST:PORT; default 127.0.0.1:0 (a free port)
//     token: ${TROUPE_TOKEN}    # a bearer token every request that changes anything must carry
//     read: open                # open (the default) or token: reading needs the token too
//     enabled: true             # false: no endpoint at all
#include "config/app_loader.hpp"
#include "config/config_values.hpp"

#include <set>

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
      if (auto a = parse_host_port(*text)) {
        cfg.host = a->host;
        cfg.port = a->port;
      } else {
        r_.expected(v, "admin.address", "HOST:PORT with a port from 0 (a free one) to 65535, "
                                        "such as 127.0.0.1:9090");
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

namespace troupe::detail {

// `alerts:`, a list of rules:
//
//   alerts:
//     - name: backlog
//       kind: lag            # lag | lag_age | dead_letters | restarts | given_up | stalled
//       above: 10000         # lag: records; lag_age: a duration; dead_letters, restarts: a count
//       within: 1m           # restarts: counted within this window
//       after: 2m            # stalled: input waiting and no step for this long
//       for: 30s             # the condition holds this long before the alert fires
//       stages: [price]      # default: every stage
//       run: [notify, '{alert}']
void app_loader::read_alerts(const YAML::Node& alerts) {
  if (!alerts.IsDefined() || alerts.IsNull())
    return;
  if (!alerts.IsSequence()) {
    r_.expected(alerts, "alerts", "a list of alert rules");
    return;
  }
  using K = alert_rule::kind;
  std::set<std::string> names;
  for (size_t i = 0; i < alerts.size(); ++i) {
    auto n = alerts[i];
    auto field = index("alerts", i);
    if (!open_map(r_, n, field))
      continue;
    check_keys(r_, n, field, {"name", "kind", "above", "within", "after", "for", "stages", "run"});
    alert_rule rule;
    rule.line = line_of(n.Mark());
    if (auto v = n["name"]; !v.IsDefined())
      r_.at(n, field, "an alert needs a name");
    else if (auto name = read_name(r_, v, field + ".name", "an alert name")) {
      rule.name = *name;
      if (!names.insert(*name).second)
        r_.at(v, field + ".name", "alert '" + *name + "' is given twice");
    }
    auto kind = n["kind"];
    if (!kind.IsDefined()) {
      r_.at(n, field, "an alert needs a kind: lag, lag_age, dead_letters, restarts, given_up or stalled");
      continue;
    }
    auto k = read_enum<K>(r_, kind, field + ".kind",
                          {{"lag", K::lag}, {"lag_age", K::lag_age}, {"dead_letters", K::dead_letters},
                           {"restarts", K::restarts}, {"given_up", K::given_up}, {"stalled", K::stalled}});
    if (!k)
      continue;
    rule.what = *k;
    auto only = [&](const char* key, bool allowed, const char* what) {
      if (n[key].IsDefined() && !allowed)
        r_.at(n[key], field + "." + key, std::string("'") + key + "' is for " + what +
                                           "; a " + kind.Scalar() + " alert has none");
    };
    only("within", rule.what == K::restarts || rule.what == K::dead_letters,
         "restarts and dead_letters alerts");
    only("after", rule.what == K::stalled, "stalled alerts");
    only("above", rule.what != K::given_up && rule.what != K::stalled, "lag, lag_age, dead_letters and restarts alerts");
    if (auto v = n["above"]; v.IsDefined() && rule.what != K::given_up && rule.what != K::stalled) {
      if (rule.what == K::lag_age) {
        if (auto d = read_duration(r_, v, field + ".above", false))
          rule.above = static_cast<double>(d->count());
      } else if (auto x = read_uint(r_, v, field + ".above", 0, uint64_t{1} << 53)) {
        rule.above = static_cast<double>(*x);
      }
    } else if (rule.what == K::lag || rule.what == K::lag_age) {
      r_.at(n, field, std::string("a ") + kind.Scalar() + " alert needs 'above' (" +
                        (rule.what == K::lag ? "a number of records" : "a duration such as 5m") + ")");
    } else if (rule.what == K::restarts) {
      rule.above = 2; // three restarts within the window
    }
    if (auto v = n["within"]; v.IsDefined() && (rule.what == K::restarts || rule.what == K::dead_letters))
      if (auto d = read_duration(r_, v, field + ".within", true))
        rule.window = *d;
    if (auto v = n["after"]; v.IsDefined() && rule.what == K::stalled) {
      if (auto d = read_duration(r_, v, field + ".after", true))
        rule.window = *d;
    } else if (rule.what == K::stalled) {
      r_.at(n, field, "a stalled alert needs 'after' (a duration such as 2m: input waiting and no "
                      "step for that long)");
    }
    if (auto v = n["for"]; v.IsDefined())
      if (auto d = read_duration(r_, v, field + ".for", false))
        rule.hold = *d;
    auto list = [&](const char* key, std::vector<std::string>& out) {
      auto v = n[key];
      if (!v.IsDefined())
        return;
      if (!v.IsSequence() || v.size() == 0) {
        r_.expected(v, field + "." + key, "a non-empty list");
        return;
      }
      for (size_t j = 0; j < v.size(); ++j)
        if (auto s = read_string(r_, v[j], index(field + "." + key, j)))
          out.push_back(*s);
    };
    list("stages", rule.stages);
    list("run", rule.run);
    for (size_t j = 0; j < rule.stages.size(); ++j) {
      bool known = false;
      std::vector<std::string> all;
      for (const auto& s : stages_) {
        all.push_back(s.cfg.name);
        known = known || s.cfg.name == rule.stages[j];
      }
      if (!known)
        r_.at(n["stages"][j], index(field + ".stages", j),
              "no stage is named '" + rule.stages[j] + "'" + suggest(rule.stages[j], all));
    }
    app_.alerts.push_back(std::move(rule));
  }
}

} // namespace troupe::detail

namespace troupe::detail {

// `log: {level: info, format: json}`.
void app_loader::read_log(const YAML::Node& log) {
  if (!open_map(r_, log, "log"))
    return;
  check_keys(r_, log, "log", {"level", "format"});
  if (auto v = log["level"]; v.IsDefined())
    app_.log_threshold = read_enum<log_level>(r_, v, "log.level",
                                              {{"debug", log_level::debug}, {"info", log_level::info},
                                               {"warn", log_level::warn}, {"error", log_level::error}});
  if (auto v = log["format"]; v.IsDefined())
    app_.log_style = read_enum<log_format>(r_, v, "log.format",
                                           {{"text", log_format::text}, {"json", log_format::json}});
}

} // namespace troupe::detail
