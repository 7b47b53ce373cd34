#include "net/link_actors.hpp"

#include "base/error.hpp"
#include "base/log.hpp"

#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <deque>
#include <map>
#include <optional>

namespace troupe::net::detail {

std::vector<std::string> to_lines(const fingerprint& print) {
  std::vector<std::string> lines;
  for (const auto& [part, hash] : print)
    lines.push_back(part + "=" + hash);
  return lines;
}

fingerprint from_lines(const std::vector<std::string>& lines) {
  fingerprint print;
  for (const auto& l : lines)
    if (auto eq = l.rfind('='); eq != std::string::npos)
      print[l.substr(0, eq)] = l.substr(eq + 1);
  return print;
}

namespace {

// ---- the endpoint: what peers send to

struct endpoint_state {
  uint64_t next_token = 1;
  std::map<uint64_t, caf::response_promise> waiting; // batches handed to a link_in stage
  static inline const char* name = "node links";
};

// Holds the hub: it lives until the endpoint is gone (link_hub::stop ends it).
caf::behavior endpoint(caf::stateful_actor<endpoint_state>* self, std::shared_ptr<link_hub> hub) {
  return {
    [=](hello_atom, const std::string& from, const std::vector<std::string>& print) {
      auto r = hub->greet(from, from_lines(print));
      return reply_result{static_cast<uint32_t>(r.status), std::move(r.text)};
    },
    [=](push_atom, const std::string& from, const std::string& edge,
        std::string& batch) -> reply_result {
      auto token = self->state.next_token++;
      if (auto r = hub->route(edge, from, token, std::move(batch)))
        return {static_cast<uint32_t>(r->status), std::move(r->text)};
      self->state.waiting.emplace(token, self->make_response_promise());
      return caf::delegated<uint32_t, std::string>{};
    },
    [=](answer_atom, uint64_t token, uint32_t code, std::string& text) {
      auto i = self->state.waiting.find(token);
      if (i == self->state.waiting.end())
        return;
      i->second.deliver(code, std::move(text));
      self->state.waiting.erase(i);
    },
    [=](done_atom, const std::string& from, const std::string& edge,
        const std::string& partitions) {
      hub->mark_sender_done(edge, from, partitions);
      return reply_result{ok_code, std::string{}};
    },
  };
}

// ---- one actor per peer this node sends to

struct pending_send {
  std::string edge, batch; // for the end: the partitions that ended, as "0,3"

  bool done = false; // the end was committed (done_atom), else a batch
  std::optional<caf::response_promise> promise;
};

struct peer_state {
  std::string me, who; // "node b at 127.0.0.1:7402"
  node_config peer;
  links_config links;
  bool tls = false;
  std::vector<std::string> print;
  caf::actor remote;
  bool connecting = false;
  std::deque<pending_send> queue; // until connected
  uint64_t next = 0;
  std::map<uint64_t, caf::response_promise> in_flight;
  static inline const char* name = "node link";
};

using peer_ptr = caf::stateful_actor<peer_state>*;

// Why a request to a peer failed, as the end of a sentence.
std::string why_not(const caf::error& e, const links_config& links) {
  if (e == caf::sec::request_timeout)
    return " within links.timeout (" + std::to_string(links.timeout.count()) + " ms)";
  return ": " + describe(e);
}

void fail_all(peer_ptr self, const std::string& why, uint32_t code = retry_code) {
  auto& st = self->state;
  for (auto& p : st.queue)
    if (p.promise)
      p.promise->deliver(code, why);
  st.queue.clear();
  for (auto& [id, rp] : st.in_flight)
    rp.deliver(code, why);
  st.in_flight.clear();
}

void ship(peer_ptr self, pending_send p) {
  auto& st = self->state;
  auto id = st.next++;
  if (p.promise)
    st.in_flight.emplace(id, std::move(*p.promise));
  auto complete = [=](uint32_t code, std::string text) {
    auto i = self->state.in_flight.find(id);
    if (i == self->state.in_flight.end())
      return; // failed already (the peer went away)
    i->second.deliver(code, std::move(text));
    self->state.in_flight.erase(i);
  };
  auto failed = [=](caf::error& e) {
    complete(retry_code, self->state.who + " did not answer" + why_not(e, self->state.links));
  };
  if (p.done)
    self->request(st.remote, st.links.timeout, done_atom::value, st.me, p.edge, p.batch)
      .then([=](uint32_t code, std::string& text) { complete(code, std::move(text)); }, failed);
  else
    self->request(st.remote, st.links.timeout, push_atom::value, st.me, p.edge, std::move(p.batch))
      .then([=](uint32_t code, std::string& text) { complete(code, std::move(text)); }, failed);
}

void connect(peer_ptr self) {
  auto& st = self->state;
  if (st.connecting)
    return;
  st.connecting = true;
  auto& sys = self->home_system();
  auto mm = st.tls ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
  auto give_up = [=](const std::string& why, uint32_t code = retry_code) {
    self->state.connecting = false;
    fail_all(self, why, code);
  };
  self->request(mm, st.links.timeout, caf::connect_atom::value, st.peer.host, st.peer.port)
    .then(
      [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
        if (!ptr) {
          give_up("nothing listens for node links at " + self->state.who);
          return;
        }
        auto remote = caf::actor_cast<caf::actor>(ptr);
        self->request(remote, self->state.links.timeout, hello_atom::value, self->state.me,
                      self->state.print)
          .then(
            [=](uint32_t code, std::string& text) {
              if (code != ok_code) {
                give_up(text, code);
                return;
              }
              auto& st = self->state;
              st.connecting = false;
              st.remote = remote;
              self->monitor(remote);
              log_event(log_level::info, "links", "connected to " + st.who);
              auto queue = std::move(st.queue);
              st.queue.clear();
              for (auto& p : queue)
                ship(self, std::move(p));
            },
            [=](caf::error& e) {
              give_up(self->state.who + " did not answer" + why_not(e, self->state.links));
            });
      },
      [=](caf::error& e) {
        auto why = "cannot reach " + self->state.who + ": " + describe(e);
        if (e == caf::sec::disconnect_during_handshake)
          why = "cannot reach " + self->state.who + ": the connection closed during the " +
                (self->state.tls ? "TLS " : "") + "handshake" +
                (self->state.tls ? " (links.tls: does it use TLS too, with a certificate signed "
                                   "by links.tls.ca, and is this node's?)"
                                 : " (does it use links.tls while this node does not?)");
        give_up(why);
      });
}

caf::behavior peer_link(peer_ptr self, std::string me, node_config peer, links_config links,
                        std::vector<std::string> print) {
  auto& st = self->state;
  st.me = std::move(me);
  st.who = "node " + peer.name + " at " + peer.host + ":" + std::to_string(peer.port);
  st.peer = std::move(peer);
  st.links = links;
  st.tls = !links.tls_ca.empty();
  st.print = std::move(print);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (!st.remote || dm.source != st.remote.address())
      return;
    st.remote = nullptr;
    // remote_link_unreachable: its process ended, or heartbeats stopped (links.timeout).
    auto why = st.who + " went away (" +
               (dm.reason == caf::exit_reason::remote_link_unreachable
                  ? std::string{"the connection was lost"}
                  : dm.reason == caf::exit_reason::user_shutdown ? std::string{"it stopped"}
                                                                 : describe(dm.reason)) +
               ")";
    log_event(log_level::warn, "links", why);
    fail_all(self, why);
  });
  auto enqueue = [=](pending_send p) {
    if (self->state.remote) {
      ship(self, std::move(p));
      return;
    }
    self->state.queue.push_back(std::move(p));
    connect(self);
  };
  return {
    [=](send_atom, std::string& edge, std::string& batch) -> reply_result {
      enqueue({std::move(edge), std::move(batch), false, self->make_response_promise()});
      return caf::delegated<uint32_t, std::string>{};
    },
    [=](done_atom, std::string& edge, std::string& partitions) {
      enqueue({std::move(edge), std::move(partitions), true, std::nullopt});
    },
  };
}

} // namespace

caf::actor spawn_endpoint(caf::actor_system& sys, std::shared_ptr<link_hub> hub) {
  return sys.spawn(endpoint, std::move(hub));
}

caf::actor spawn_peer_link(caf::actor_system& sys, std::string me, node_config peer,
                           links_config links, std::vector<std::string> print) {
  return sys.spawn(peer_link, std::move(me), std::move(peer), links, std::move(print));
}

} // namespace troupe::net::detail
