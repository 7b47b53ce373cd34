#include "net/link_hub.hpp"

#include "base/error.hpp"
#include "base/log.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <envelope.capnp.h>

#include <capnp/serialize.h>
#include <xxhash.h>

#include <cstring>

#include <fstream>
#include <sstream>

namespace troupe::net {

namespace {

using hello_atom = caf::atom_constant<caf::atom("lhello")>;
using push_atom = caf::atom_constant<caf::atom("lpush")>;
using send_atom = caf::atom_constant<caf::atom("lsend")>;
using answer_atom = caf::atom_constant<caf::atom("lanswer")>;
using done_atom = caf::atom_constant<caf::atom("ldone")>;

using reply_result = caf::result<uint32_t, std::string>;
constexpr auto ok_code = static_cast<uint32_t>(link_status::ok);
constexpr auto retry_code = static_cast<uint32_t>(link_status::retry);

std::mutex current_mutex;
std::weak_ptr<link_hub> current_hub;

std::string hex_hash(std::string_view bytes) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(bytes.data(), bytes.size())));
  return out;
}

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

// The sender's epoch a LinkBatch carries (its first partition's), nullopt when it names none or
// does not decode.
std::optional<uint64_t> epoch_of(const std::string& bytes) {
  try {
    kj::Array<capnp::word> words = kj::heapArray<capnp::word>((bytes.size() + 7) / 8);
    std::memcpy(words.begin(), bytes.data(), bytes.size());
    capnp::FlatArrayMessageReader reader{words};
    auto epochs = reader.getRoot<schema::LinkBatch>().getEpochs();
    if (epochs.size() == 0)
      return std::nullopt;
    return epochs[0].getEpoch();
  } catch (const kj::Exception&) {
    return std::nullopt;
  }
}

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

// ---- inbox

bool inbox::offer(inbound_batch b) {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (waiting_.size() >= max_waiting)
      return false;
    waiting_.push_back(std::move(b));
    wake = wake_;
  }
  if (wake)
    wake();
  return true;
}

std::vector<inbound_batch> inbox::take() {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<inbound_batch> out{std::make_move_iterator(waiting_.begin()),
                                 std::make_move_iterator(waiting_.end())};
  waiting_.clear();
  return out;
}

void inbox::set_waker(std::function<void()> wake) {
  std::lock_guard<std::mutex> guard{mutex_};
  wake_ = std::move(wake);
}

// ---- fingerprints

fingerprint fingerprint_of(const app_config& whole) {
  fingerprint print;
  std::string nodes;
  for (const auto& n : whole.nodes)
    nodes += n.name + "@" + n.host + ":" + std::to_string(n.port) + ";";
  print["nodes"] = hex_hash(nodes);
  for (const auto& s : whole.stages) {
    std::string text = s.type + "|";
    for (const auto& n : s.nodes)
      text += n + ",";
    text += "|in:";
    for (const auto& in : s.inputs)
      text += in + ",";
    text += "|out:";
    for (const auto& [port, edge] : s.outputs)
      text += port + "=" + edge + ",";
    print["stage " + s.name] = hex_hash(text);
  }
  for (const auto& e : whole.edges) {
    std::string text = std::to_string(e.partitions) + "|";
    if (auto p = whole.edge_payloads.find(e.name); p != whole.edge_payloads.end())
      text += p->second.name;
    print["edge " + e.name] = hex_hash(text);
  }
  for (const auto& file : whole.schema_files) {
    std::ifstream in{file, std::ios::binary};
    std::ostringstream bytes;
    bytes << in.rdbuf();
    auto name = file.substr(file.rfind('/') + 1);
    print["schema " + name] = hex_hash(bytes.str());
  }
  return print;
}

std::vector<std::string> differences(const fingerprint& mine, const fingerprint& theirs) {
  std::vector<std::string> out;
  for (const auto& [part, hash] : mine) {
    auto i = theirs.find(part);
    if (i == theirs.end())
      out.push_back(part + " (theirs has none)");
    else if (i->second != hash)
      out.push_back(part);
  }
  for (const auto& [part, hash] : theirs)
    if (!mine.count(part))
      out.push_back(part + " (this node's has none)");
  return out;
}

// ---- the hub

std::variant<std::shared_ptr<link_hub>, std::string>
link_hub::start(caf::actor_system& sys, const app_config& view, uint64_t epoch) {
  std::shared_ptr<link_hub> hub{new link_hub};
  hub->sys_ = &sys;
  hub->node_ = view.node;
  hub->epoch_ = epoch;
  hub->links_ = view.links;
  hub->print_ = view.fingerprint;
  const node_config* me = nullptr;
  for (const auto& n : view.nodes) {
    hub->nodes_[n.name] = n;
    if (n.name == view.node)
      me = &hub->nodes_[n.name];
  }
  if (!me)
    return "node " + view.node + " is not one of the app's nodes";
  for (const auto& s : view.stages)
    if (s.type == "link_in") {
      auto list = s.stage_params->get_string("partitions");
      hub->in_[{s.stage_params->get_string("edge"), s.stage_params->get_string("from")}]
        .partitions = static_cast<uint32_t>(std::count(list.begin(), list.end(), ',') + 1);
    }
  hub->endpoint_ = sys.spawn(endpoint, hub);
  // Only the node's address is bound; with links.tls, only peers with a certificate signed by
  // the CA get through the handshake.
  caf::expected<uint16_t> port = caf::sec::runtime_error;
  try {
    port = view.links.tls_ca.empty()
             ? sys.middleman().publish(hub->endpoint_, me->port, me->host.c_str(), true)
             : caf::openssl::publish(hub->endpoint_, me->port, me->host.c_str(), true);
  } catch (const std::exception& e) { // CAF's OpenSSL module throws on a bad key or certificate
    caf::anon_send_exit(hub->endpoint_, caf::exit_reason::user_shutdown);
    return "cannot listen for node links over TLS: " + std::string{e.what()} +
           " (links.tls, nodes." + me->name + ")";
  }
  if (!port) {
    caf::anon_send_exit(hub->endpoint_, caf::exit_reason::user_shutdown);
    return "cannot listen for node links at " + me->host + ":" + std::to_string(me->port) +
           " (nodes." + me->name + ".address): " + describe(port.error());
  }
  hub->port_ = *port;
  log_event(log_level::info, "links",
            "node " + view.node + " listens for node links at " + me->host + ":" +
              std::to_string(*port));
  std::lock_guard<std::mutex> guard{current_mutex};
  current_hub = hub;
  return hub;
}

std::shared_ptr<link_hub> link_hub::current() {
  std::lock_guard<std::mutex> guard{current_mutex};
  return current_hub.lock();
}

void link_hub::stop() {
  caf::actor endpoint;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    std::swap(endpoint, endpoint_);
  }
  if (!endpoint)
    return;
  if (links_.tls_ca.empty())
    sys_->middleman().unpublish(endpoint, port_);
  else // caf/openssl/unpublish.hpp of Debian's 0.17.6 does not compile: ask its actor directly
    caf::anon_send(sys_->openssl_manager().actor_handle(), caf::unpublish_atom::value,
                   endpoint.address(), port_);
  caf::anon_send_exit(endpoint, caf::exit_reason::user_shutdown);
  std::lock_guard<std::mutex> guard{mutex_};
  for (auto& [name, peer] : peers_)
    caf::anon_send_exit(peer, caf::exit_reason::user_shutdown);
  peers_.clear();
}

link_hub::~link_hub() = default; // the endpoint held it: stop() ran

caf::actor link_hub::peer_actor(const std::string& peer) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& a = peers_[peer];
  if (!a)
    a = sys_->spawn(peer_link, node_, nodes_.at(peer), links_, to_lines(print_));
  return a;
}

link_reply link_hub::send(const std::string& peer, const std::string& edge, std::string batch) {
  auto to = peer_actor(peer);
  caf::scoped_actor self{*sys_};
  link_reply reply{link_status::retry, "node " + peer + " did not answer"};
  self->request(to, links_.timeout * 3 + std::chrono::seconds(1), send_atom::value, edge,
                std::move(batch))
    .receive(
      [&](uint32_t code, std::string& text) {
        reply = {code <= 2 ? static_cast<link_status>(code) : link_status::retry, std::move(text)};
      },
      [&](caf::error& e) { reply.text = "node " + peer + ": " + describe(e); });
  return reply;
}

void link_hub::say_done(const std::string& peer, const std::string& edge,
                        const std::vector<uint32_t>& partitions) {
  std::string list;
  for (auto p : partitions)
    list += (list.empty() ? "" : ",") + std::to_string(p);
  caf::anon_send(peer_actor(peer), done_atom::value, edge, list);
}

std::shared_ptr<inbox> link_hub::attach(const std::string& edge, const std::string& from,
                                        std::function<void()> wake) {
  auto box = std::make_shared<inbox>();
  box->set_waker(std::move(wake));
  std::lock_guard<std::mutex> guard{mutex_};
  in_[{edge, from}].box = box;
  return box;
}

void link_hub::detach(const std::string& edge, const std::string& from) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (auto i = in_.find({edge, from}); i != in_.end()) {
    if (i->second.box)
      i->second.box->set_waker({});
    i->second.box = nullptr;
  }
}

void link_hub::ended(const std::string& edge, const std::string& from, uint64_t epoch) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& in = in_[{edge, from}];
  in.ended = true;
  in.epoch = epoch;
}

void link_hub::answer(uint64_t token, link_reply reply) {
  caf::actor endpoint;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    endpoint = endpoint_;
  }
  if (endpoint)
    caf::anon_send(endpoint, answer_atom::value, token, static_cast<uint32_t>(reply.status),
                   std::move(reply.text));
}

std::optional<link_reply> link_hub::route(const std::string& edge, const std::string& from,
                                          uint64_t token, std::string batch) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = in_.find({edge, from});
  if (i == in_.end())
    return link_reply{link_status::refused, "node " + node_ + " receives no edge '" + edge +
                                              "' from node " + from + " (do the nodes run the "
                                              "same app file?)"};
  if (i->second.ended) {
    // A batch sent again after the end is all here, unless the sender's data was reset since.
    if (auto epoch = epoch_of(batch); epoch && *epoch != i->second.epoch && i->second.epoch != 0)
      return link_reply{link_status::refused,
                        "node " + node_ + " finished edge '" + edge + "' with what an earlier "
                        "incarnation of node " + from + " sent (was " + from + "'s data reset?); "
                        "to start afresh, reset the data of every node"};
    return link_reply{link_status::ok, {}};
  }
  if (!i->second.box)
    return link_reply{link_status::retry, "node " + node_ + " is not taking edge '" + edge +
                                            "' yet (its stage is starting)"};
  if (!i->second.box->offer({token, std::move(batch)}))
    return link_reply{link_status::retry, "node " + node_ + " has batches of edge '" + edge +
                                            "' waiting already"};
  return std::nullopt;
}

void link_hub::mark_sender_done(const std::string& edge, const std::string& from,
                                const std::string& partitions) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (auto i = in_.find({edge, from}); i != in_.end()) {
      std::istringstream list{partitions};
      for (std::string p; std::getline(list, p, ',');)
        i->second.sender_done.insert(static_cast<uint32_t>(std::strtoul(p.c_str(), nullptr, 10)));
    }
  }
  senders_changed_.notify_all();
}

link_reply link_hub::greet(const std::string& from, const fingerprint& theirs) const {
  if (!nodes_.count(from))
    return {link_status::refused, "node " + node_ + "'s app has no node '" + from + "'"};
  auto diff = differences(print_, theirs);
  if (diff.empty())
    return {link_status::ok, {}};
  std::string parts;
  for (const auto& d : diff)
    parts += (parts.empty() ? "" : ", ") + d;
  return {link_status::refused,
          "node " + from + "'s app differs from node " + node_ + "'s in: " + parts +
            " (every node must run the same app file and schemas)"};
}

std::vector<std::string> link_hub::await_senders_done() {
  std::unique_lock<std::mutex> lock{mutex_};
  auto all_done = [&] {
    for (const auto& [key, in] : in_)
      if (!in.all_done())
        return false;
    return true;
  };
  senders_changed_.wait_for(lock, links_.linger, all_done);
  std::vector<std::string> missing;
  for (const auto& [key, in] : in_)
    if (!in.all_done())
      missing.push_back("node " + key.second + " (edge " + key.first + ")");
  return missing;
}

} // namespace troupe::net
