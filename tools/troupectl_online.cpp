#include "troupectl_online.hpp"

#include "troupectl_store.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <signal.h>
#include <unistd.h>

namespace troupe::ctl {

namespace {

using json = nlohmann::ordered_json; // keeps the node's key order (a payload's: the schema's)

struct answer {
  int code = exit_ok;
  std::string body;
};

// One request; a failure is printed and turned into an exit code.
answer call(const online_options& o, const std::string& method, const std::string& path,
            const std::string& body = "{}") {
  httplib::Client client{"http://" + o.address};
  client.set_connection_timeout(5);
  client.set_read_timeout(30);
  httplib::Headers headers;
  if (!o.token.empty())
    headers.emplace("Authorization", "Bearer " + o.token);
  auto res = method == "GET" ? client.Get(path.c_str(), headers)
                             : client.Post(path.c_str(), headers, body, "application/json");
  if (!res) {
    std::cerr << "troupectl: no node answers at " << o.address << " (cannot connect: "
              << httplib::to_string(res.error()) << " error); is it running?\n";
    return {exit_unreachable, {}};
  }
  if (res->status == 200)
    return {exit_ok, res->body};
  std::string why = res->body;
  try {
    why = json::parse(res->body).at("error").get<std::string>();
  } catch (const std::exception&) {
  }
  std::cerr << "troupectl: " << why << "\n";
  if (res->status == 401)
    return {exit_refused, {}};
  return {res->status == 404 || res->status == 409 ? exit_not_found : exit_failed, {}};
}

std::string amount(double n) {
  std::ostringstream s;
  if (n >= 1e6)
    s << std::fixed << std::setprecision(1) << n / 1e6 << "M";
  else if (n >= 1e4)
    s << std::fixed << std::setprecision(1) << n / 1e3 << "k";
  else
    s << static_cast<uint64_t>(n + 0.5);
  return s.str();
}

std::string bytes(double n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (n >= 1024 && u < 4) {
    n /= 1024;
    ++u;
  }
  std::ostringstream s;
  s << std::fixed << std::setprecision(u ? 1 : 0) << n << " " << units[u];
  return s.str();
}

std::string text_or(const json& v, const char* none = "") {
  return v.is_string() ? v.get<std::string>() : none;
}

void print_ps(const json& ps, const std::string& sort) {
  auto stages = ps.at("stages");
  std::vector<json> order(stages.begin(), stages.end());
  if (sort == "lag" || sort == "rate")
    std::stable_sort(order.begin(), order.end(), [&](const json& a, const json& b) {
      return sort == "lag" ? a.at("lag").get<uint64_t>() > b.at("lag").get<uint64_t>()
                           : a.at("in_per_s").get<double>() + a.at("out_per_s").get<double>() >
                               b.at("in_per_s").get<double>() + b.at("out_per_s").get<double>();
    });
  std::map<std::string, json> sups;
  for (const auto& c : ps.at("tree").at("children"))
    sups[c.at("name").get<std::string>()] = c;
  std::printf("%-22s %-10s %8s %9s %9s %8s %8s %8s %6s  %s\n", "ACTOR", "STATE", "RESTARTS", "IN",
              "OUT", "IN/S", "LAG", "OLDEST", "DEAD", "LAST ERROR");
  std::printf("%-22s %-10s\n", "node", text_or(ps.at("tree").at("state")).c_str());
  for (const auto& s : order) {
    auto name = s.at("name").get<std::string>();
    auto oldest = s.at("oldest_unconsumed_ms");
    std::string age = oldest.is_number() ? amount(oldest.get<double>() / 1000) + "s" : "-";
    std::printf("  %-20s %-10s %8llu %9s %9s %8s %8s %8s %6s  %s\n", ("stage " + name).c_str(),
                text_or(s.at("state")).c_str(),
                static_cast<unsigned long long>(s.at("restarts").get<uint64_t>()),
                amount(s.at("records_in").get<double>()).c_str(),
                amount(s.at("records_out").get<double>()).c_str(),
                amount(s.at("in_per_s").get<double>()).c_str(),
                amount(s.at("lag").get<double>()).c_str(), age.c_str(),
                amount(s.at("dead_letters").get<double>()).c_str(),
                text_or(s.at("last_error")).substr(0, 60).c_str());
    for (const auto& w : sups["stage " + name].at("children"))
      std::printf("    %-18s %-10s %8llu %9s %9s %8s\n", w.at("name").get<std::string>().c_str(),
                  text_or(w.at("state")).c_str(),
                  static_cast<unsigned long long>(w.at("restarts").get<uint64_t>()),
                  amount(w.at("records_in").get<double>()).c_str(),
                  amount(w.at("records_out").get<double>()).c_str(),
                  amount(w.at("in_per_s").get<double>()).c_str());
  }
}

// Calls `show` with the parsed body of GET `path`; a body that is not JSON is a failure.
template <class F>
int get_json(const online_options& o, const std::string& path, F show) {
  auto a = call(o, "GET", path);
  if (a.code != exit_ok)
    return a.code;
  if (o.json) {
    std::cout << a.body << (a.body.empty() || a.body.back() != '\n' ? "\n" : "");
    return exit_ok;
  }
  try {
    show(json::parse(a.body));
  } catch (const std::exception& e) {
    std::cerr << "troupectl: the node's answer to " << path << " is not what troupectl "
              << "understands (" << e.what() << ")\n";
    return exit_failed;
  }
  return exit_ok;
}

} // namespace

std::string node_address(const std::string& host, unsigned port, const std::string& data_dir,
                         std::string& why) {
  // What the running node wrote wins: it may run with another address (--set admin.address=...).
  auto file = data_dir + "/admin.json";
  std::ifstream f{file};
  if (!f && port != 0)
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(port);
  if (!f) {
    why = "no node of this app is running here: its admin address (a port the node picks) is "
          "written to " + file + " while it runs, and that file is missing. For a stopped "
          "node's data, give --data " + data_dir;
    return {};
  }
  try {
    auto j = json::parse(f);
    auto pid = j.value("pid", 0);
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
      why = "the node that wrote " + file + " (pid " + std::to_string(pid) + ") is not running "
            "any more (killed?); for its data, give --data " + data_dir;
      return {};
    }
    return j.at("address").get<std::string>();
  } catch (const std::exception& e) {
    why = file + " is not what a node writes (" + e.what() + ")";
    return {};
  }
}

int online_status(const online_options& o) {
  return get_json(o, "/v1/status", [](const json& s) {
    double map_size = s.at("map_size_bytes").get<double>();
    std::cout << "node " << text_or(s.at("node")) << "  app " << text_or(s.at("app")) << "  up "
              << amount(s.at("uptime_s").get<double>()) << " s  durability "
              << text_or(s.at("durability")) << "\n"
              << "data " << bytes(s.at("data_bytes").get<double>()) << " in "
              << text_or(s.at("data_dir")) << "  map " << std::fixed << std::setprecision(1)
              << (map_size > 0 ? 100 * s.at("map_used_bytes").get<double>() / map_size : 0)
              << "% of " << bytes(map_size) << "\n"
              << "commits " << amount(s.at("commits").get<double>()) << " ("
              << amount(s.at("commits_per_s").get<double>()) << "/s)  fsyncs "
              << amount(s.at("fsyncs").get<double>()) << " ("
              << amount(s.at("fsyncs_per_s").get<double>()) << "/s)\n";
  });
}

int online_ps(const online_options& o) {
  return get_json(o, "/v1/ps", [](const json& ps) { print_ps(ps, ""); });
}

int online_top(const online_options& o, const std::string& sort, unsigned interval_ms,
               unsigned iterations) {
  for (unsigned i = 0; iterations == 0 || i < iterations; ++i) {
    if (i > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms)); // a refresh, not sync
    if (!o.json && ::isatty(STDOUT_FILENO))
      std::cout << "\x1b[H\x1b[2J"; // home, clear
    int rc = get_json(o, "/v1/ps", [&](const json& ps) { print_ps(ps, sort); });
    std::cout.flush();
    if (rc != exit_ok)
      return rc;
  }
  return exit_ok;
}

int online_graph(const online_options& o) {
  auto a = call(o, "GET", "/v1/graph");
  if (a.code == exit_ok)
    std::cout << a.body;
  return a.code;
}

int online_metrics(const online_options& o) {
  auto a = call(o, "GET", "/metrics");
  if (a.code == exit_ok)
    std::cout << a.body;
  return a.code;
}

int online_pause(const online_options& o, const std::string& stage, bool pause) {
  auto a = call(o, "POST", "/v1/stages/" + stage + (pause ? "/pause" : "/resume"));
  if (a.code != exit_ok)
    return a.code;
  if (o.json) {
    std::cout << a.body;
    return exit_ok;
  }
  bool changed = json::parse(a.body).value("changed", true);
  std::cout << "stage " << stage << (pause ? " paused" : " resumed")
            << (changed ? "" : (pause ? " (it was paused already)" : " (it was not paused)")) << "\n";
  return exit_ok;
}

int online_peek(const online_options& o, const std::string& edge, std::optional<uint32_t> partition,
                std::optional<uint64_t> from, unsigned n) {
  std::string path = "/v1/edges/" + edge + "/records?n=" + std::to_string(n);
  if (partition)
    path += "&partition=" + std::to_string(*partition);
  if (from)
    path += "&from=" + std::to_string(*from);
  auto a = call(o, "GET", path);
  if (a.code != exit_ok)
    return a.code;
  auto body = json::parse(a.body);
  for (const auto& r : body.at("records")) {
    if (o.json) {
      std::cout << r.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
      continue;
    }
    std::cout << "p" << r.at("partition").get<uint32_t>() << " #" << r.at("seq").get<uint64_t>();
    if (r.contains("error")) {
      std::cout << "  cannot be decoded: " << text_or(r.at("error")) << "\n";
      continue;
    }
    std::cout << "  " << text_or(r.at("id"));
    if (r.at("key").is_string())
      std::cout << "  key " << r.at("key").dump(-1, ' ', false, json::error_handler_t::replace);
    std::cout << "  " << r.at("payload").dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  if (!o.json) {
    std::cout << body.at("records").size() << " record" << (body.at("records").size() == 1 ? "" : "s");
    for (const auto& p : body.at("partitions")) {
      auto tail = p.at("tail").get<uint64_t>(), head = p.at("head").get<uint64_t>();
      std::cout << "; partition " << p.at("partition").get<uint32_t>() << " stores "
                << (head > tail ? std::to_string(head - tail) + " (" + std::to_string(tail) +
                                    " to " + std::to_string(head - 1) + ")"
                                : std::string("none"));
    }
    std::cout << "\n";
  }
  return exit_ok;
}

int online_requeue(const online_options& o, const std::string& stage,
                   const std::vector<uint64_t>& ids, bool all, bool retry) {
  json body = all ? json{{"all", true}} : json{{"ids", ids}};
  auto a = call(o, "POST", "/v1/stages/" + stage + "/dead-letters/" + (retry ? "retry" : "purge"),
                body.dump());
  if (a.code != exit_ok)
    return a.code;
  if (o.json) {
    std::cout << a.body;
    return exit_ok;
  }
  auto n = json::parse(a.body).at(retry ? "retried" : "purged").get<uint64_t>();
  std::cout << (retry ? "put back " : "purged ") << n << " dead letter" << (n == 1 ? "" : "s")
            << " of stage " << stage << (retry ? " on its input" : "") << "\n";
  return exit_ok;
}

int online_replay(const online_options& o, const std::string& stage, uint64_t from,
                  std::optional<uint32_t> partition) {
  json body{{"from", from}};
  if (partition)
    body["partition"] = *partition;
  auto a = call(o, "POST", "/v1/stages/" + stage + "/replay", body.dump());
  if (a.code != exit_ok)
    return a.code;
  if (o.json) {
    std::cout << a.body;
    return exit_ok;
  }
  auto r = json::parse(a.body);
  std::cout << "stage " << stage << " reads " << r.at("records").get<uint64_t>()
            << " records again";
  for (const auto& m : r.at("rewound"))
    std::cout << "; " << m.at("edge").get<std::string>() << " partition "
              << m.at("partition").get<uint32_t>() << ": " << m.at("from").get<uint64_t>()
              << " -> " << m.at("to").get<uint64_t>();
  std::cout << "\n";
  return exit_ok;
}

int online_kill(const online_options& o, const std::string& actor) {
  auto slash = actor.rfind('/');
  auto path = slash == std::string::npos ? actor + "/0" : actor;
  auto digits = slash == std::string::npos ? std::string("0") : actor.substr(slash + 1);
  if (path.front() == '/' || digits.empty() ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    std::cerr << "troupectl: kill takes a worker as STAGE/N (N from 0; `troupectl ps` lists "
                 "them), or STAGE for its worker 0; found '" << actor << "'\n";
    return exit_usage;
  }
  auto a = call(o, "POST", "/v1/actors/" + path + "/kill");
  if (a.code != exit_ok)
    return a.code;
  if (o.json)
    std::cout << a.body;
  else
    std::cout << "killed " << path << ": its supervisor restarts it (troupectl ps shows it)\n";
  return exit_ok;
}

} // namespace troupe::ctl
