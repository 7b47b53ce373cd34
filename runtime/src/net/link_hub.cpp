#include "net/link_hub.hpp"

#include "base/error.hpp"
#include "base/log.hpp"
#include "net/link_actors.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <envelope.capnp.h>

#include <capnp/serialize.h>

#include <cstring>
#include <sstream>

namespace troupe::net {

namespace {

using namespace detail;

std::mutex current_mutex;
std::weak_ptr<link_hub> current_hub;

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
  hub->endpoint_ = spawn_endpoint(sys, hub);
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
    a = spawn_peer_link(*sys_, node_, nodes_.at(peer), links_, to_lines(print_));
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
