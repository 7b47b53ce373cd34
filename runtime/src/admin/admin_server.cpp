#include "admin/admin_server.hpp"

#include "admin/dashboard.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "supervision/supervisor.hpp"

#include <caf/all.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

namespace troupe {

namespace {

using json = nlohmann::ordered_json;

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                  "application/json");
}

void refuse(httplib::Response& res, int status, const std::string& why) {
  reply(res, status, json{{"error", why}});
}

} // namespace

struct admin_server::impl {
  std::shared_ptr<admin_state> state;
  httplib::Server http;
  std::thread serving;
  std::string address_file;

  bool authorized(const httplib::Request& req, bool changes) const {
    const auto& cfg = state->app->admin;
    if (cfg.token.empty() || (!changes && !cfg.read_needs_token))
      return true;
    return req.get_header_value("Authorization") == "Bearer " + cfg.token;
  }

  // Registers a route; `changes`: it changes something (POST), so it needs the token.
  template <class F>
  void route(const char* method, const std::string& pattern, bool changes, F handler) {
    auto wrapped = [this, changes, handler](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, changes)) {
        res.set_header("WWW-Authenticate", "Bearer");
        bool given = req.has_header("Authorization");
        refuse(res, 401, given ? "the admin token given is not this node's (admin.token)"
                         : changes ? "this request changes the node: it needs the admin token "
                                     "(Authorization: Bearer <token>; troupectl --token or $TROUPE_TOKEN)"
                                   : "reading needs the admin token (admin.read: token)");
        return;
      }
      try {
        handler(req, res);
      } catch (const std::exception& e) {
        refuse(res, 500, e.what());
      }
    };
    if (std::string{method} == "GET")
      http.Get(pattern, wrapped);
    else
      http.Post(pattern, wrapped);
  }

  stage_metrics* stage_or_404(const std::string& name, httplib::Response& res) {
    auto* m = state->metrics->stage(name);
    if (!m) {
      std::string known;
      for (const auto& s : state->metrics->stages)
        known += (known.empty() ? "" : ", ") + s->name;
      refuse(res, 404, "the app has no stage '" + name + "' (its stages: " + known + ")");
    }
    return m;
  }

  void add_routes() {
    auto text = [](std::string body, const char* type) {
      return [body = std::move(body), type](const httplib::Request&, httplib::Response& res) {
        res.set_content(body, type);
      };
    };
    route("GET", "/", false, text(dashboard_html(), "text/html; charset=utf-8"));
    route("GET", "/v1/status", false, [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(status_json(*state), "application/json");
    });
    route("GET", "/v1/ps", false, [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(ps_json(*state), "application/json");
    });
    route("GET", "/v1/graph", false, text(graph_dot(*state->app), "text/vnd.graphviz"));
    route("GET", "/metrics", false, [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(prometheus_text(*state), "text/plain; version=0.0.4");
    });
    for (bool pause : {true, false})
      route("POST", std::string(R"(/v1/stages/([^/]+)/)") + (pause ? "pause" : "resume"), true,
            [this, pause](const httplib::Request& req, httplib::Response& res) {
              auto name = req.matches[1].str();
              auto* m = stage_or_404(name, res);
              if (!m)
                return;
              bool was = m->paused.exchange(pause);
              if (was != pause)
                log_event(log_level::warn, "admin",
                          std::string(pause ? "stage " + name + " paused: its workers start no "
                                                                "new step until resumed"
                                            : "stage " + name + " resumed"));
              reply(res, 200, json{{"stage", name}, {"paused", pause}, {"changed", was != pause}});
            });
    route("POST", R"(/v1/actors/([^/]+)/([0-9]+)/kill)", true,
          [this](const httplib::Request& req, httplib::Response& res) {
            auto stage = req.matches[1].str();
            auto child = stage + "/" + req.matches[2].str();
            if (!stage_or_404(stage, res))
              return;
            if (!state->metrics->worker(child)) {
              refuse(res, 404, "stage " + stage + " has no worker " + req.matches[2].str());
              return;
            }
            auto worker = state->worker_actor(stage, std::stoul(req.matches[2].str()));
            if (!worker) {
              refuse(res, 409, child + " is not running (finished, given up, or restarting)");
              return;
            }
            log_event(log_level::warn, "admin", "killing " + child + " (troupectl kill)");
            caf::scoped_actor self{*state->sys};
            self->send_exit(worker, make_error(errc::stage_failed, child + " was killed by troupectl"));
            reply(res, 200, json{{"actor", child}, {"killed", true}});
          });
    route("GET", R"(/v1/edges/([^/]+)/records)", false,
          [this](const httplib::Request& req, httplib::Response& res) {
            auto number = [&](const char* name) -> std::optional<uint64_t> {
              if (!req.has_param(name))
                return std::nullopt;
              return std::stoull(req.get_param_value(name));
            };
            auto partition = number("partition");
            auto r = peek_edge(*state, req.matches[1].str(),
                               partition ? std::optional<uint32_t>(static_cast<uint32_t>(*partition))
                                         : std::nullopt,
                               number("from"), std::min<uint64_t>(number("n").value_or(10), 10000));
            res.status = r.status;
            res.set_content(r.body, "application/json");
          });
    for (bool retry : {true, false})
      route("POST", std::string(R"(/v1/stages/([^/]+)/dead-letters/)") + (retry ? "retry" : "purge"),
            true, [this, retry](const httplib::Request& req, httplib::Response& res) {
              json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
              if (body.is_discarded() || !body.is_object() ||
                  (!body.contains("ids") && !body.value("all", false))) {
                refuse(res, 400, "the body names the dead letters: {\"ids\": [0, 3]} or {\"all\": true}");
                return;
              }
              std::vector<uint64_t> ids;
              if (body.contains("ids"))
                ids = body.at("ids").get<std::vector<uint64_t>>();
              auto r = requeue_dead_letters(*state, req.matches[1].str(), ids,
                                            body.value("all", false), retry);
              if (r.status == 200)
                log_event(log_level::warn, "admin", std::string(retry ? "put back " : "purged ") +
                                                      "dead letters of stage " + req.matches[1].str() +
                                                      ": " + r.body.substr(0, r.body.size() - 1));
              res.status = r.status;
              res.set_content(r.body, "application/json");
            });
    route("POST", R"(/v1/stages/([^/]+)/replay)", true,
          [this](const httplib::Request& req, httplib::Response& res) {
            json body = json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
            if (body.is_discarded() || !body.is_object() || !body.contains("from") ||
                !body.at("from").is_number_unsigned()) {
              refuse(res, 400, "the body says where to replay from: {\"from\": <sequence number>} "
                               "(and optionally \"partition\": <n>)");
              return;
            }
            std::optional<uint32_t> partition;
            if (body.contains("partition"))
              partition = body.at("partition").get<uint32_t>();
            auto stage = req.matches[1].str();
            auto r = replay_stage(*state, stage, body.at("from").get<uint64_t>(), partition);
            if (r.status == 200)
              log_event(log_level::warn, "admin", "stage " + stage + " replays: " +
                                                    r.body.substr(0, r.body.size() - 1));
            res.status = r.status;
            res.set_content(r.body, "application/json");
          });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (res.status == 404 && res.body.empty())
        refuse(res, 404, "no such route: " + req.method + " " + req.path + " (see runtime/ADMIN_API.md)");
    });
  }
};

admin_server::admin_server(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

caf::expected<std::unique_ptr<admin_server>> admin_server::start(std::shared_ptr<admin_state> state) {
  auto p = std::make_unique<impl>();
  p->state = state;
  const auto& cfg = state->app->admin;
  p->http.new_task_queue = [] { return new httplib::ThreadPool(2); };
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second node could bind
  // the same port and share its requests instead of being refused.
  p->http.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  p->add_routes();
  int port = cfg.port;
  if (port == 0)
    port = p->http.bind_to_any_port(cfg.host);
  else if (!p->http.bind_to_port(cfg.host, port))
    port = -1;
  if (port <= 0)
    return make_error(errc::config_invalid,
                      "cannot listen on " + cfg.host + ":" + std::to_string(cfg.port) +
                        " for the admin endpoint (admin.address in " + state->app->file +
                        "): the port is taken or the address is not this machine's");
  std::string host = cfg.host.find(':') != std::string::npos ? "[" + cfg.host + "]" : cfg.host;
  std::unique_ptr<admin_server> server{new admin_server(std::move(p))};
  auto* impl = server->impl_.get();
  server->address_ = host + ":" + std::to_string(port);
  impl->serving = std::thread([impl] { impl->http.listen_after_bind(); });
  // httplib 0.11's stop() does nothing until the listening thread has begun: a node stopping
  // right after its start (a `troupe test` case) would lose it and hang joining the thread in
  // accept() (seen: a ctest run's `troupe test` stuck 5 minutes). It begins at once; wait.
  for (int i = 0; i < 5000 && !impl->http.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  // Where troupectl --app finds a node whose port was picked: written whole, then renamed.
  namespace fs = std::filesystem;
  impl->address_file = (fs::path(state->app->data_dir) / "admin.json").string();
  auto tmp = impl->address_file + ".tmp";
  {
    std::ofstream f{tmp};
    f << json{{"address", server->address_}, {"pid", ::getpid()}, {"app", state->app->name}}.dump()
      << "\n";
  }
  std::error_code ec;
  fs::rename(tmp, impl->address_file, ec);
  log_event(log_level::info, "admin", "serving http://" + server->address_ + "/ (troupectl, "
                                      "/metrics and the dashboard)");
  return server;
}

admin_server::~admin_server() {
  impl_->http.stop();
  if (impl_->serving.joinable())
    impl_->serving.join();
  std::error_code ec;
  std::filesystem::remove(impl_->address_file, ec);
}

} // namespace troupe
