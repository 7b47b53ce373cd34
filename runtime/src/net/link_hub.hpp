// Node links: how the nodes of one app hand each other the records of the edges between them,
// over CAF's middleman (BASP over TCP; no protocol of our own).
//
// An edge whose producer is on node A and whose consumer is on node B exists on both. On A a
// `link_out` stage (link_stages.cpp) reads it like any consumer, so A's log of the edge is the
// durable outbox; each step sends one batch to B and commits A's cursor only after B answered.
// On B a `link_in` source appends what arrives to B's copy of the edge, and keeps, per partition
// of A's edge, the highest position it appended, in the same step transaction; its answer to A
// goes out once that step committed. A batch sent again (A died before committing, the answer
// was lost) finds its positions already there and is only answered: effectively once, and
// nothing is lost when either node is killed. One batch is in flight per link, so a slow B
// backs up into A's log (and from there into A's producers), never into memory.
//
// The hub is the node's end of all its links: the endpoint actor that it publishes at the
// node's address (peers send to it), one actor per peer it sends to (connecting, with a
// finite timeout on every request, and failing what is in flight as soon as the peer goes
// away), and the inboxes of its link_in stages. One hub per process: link stages find it with
// link_hub::current(). The actors are in link_actors.cpp, the fingerprints in fingerprint.cpp.
#pragma once

#include "config/app_config.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace troupe::net {

enum class link_status : uint32_t {
  ok = 0,
  retry = 1,   // not now (the peer is down, restarting, busy): send it again later
  refused = 2, // never (the nodes' apps differ, a peer's data was reset): the link gives up
};

struct link_reply {
  link_status status = link_status::retry;
  std::string text; // why, for anything but ok
};

// One batch that arrived for a link_in stage, with the token that answers its sender.
struct inbound_batch {
  uint64_t token = 0;
  std::string bytes; // a LinkBatch (schemas/envelope.capnp)
};

// The batches waiting for one link_in stage. The endpoint offers, the stage takes.
class inbox {
public:
  static constexpr size_t max_waiting = 8; // beyond: the sender is told to retry

  bool offer(inbound_batch b); // false when full
  std::vector<inbound_batch> take();
  void set_waker(std::function<void()> wake);

private:
  std::mutex mutex_;
  std::deque<inbound_batch> waiting_;
  std::function<void()> wake_;
};

// What must agree between the nodes of one app for their links to work: the nodes, each stage's
// placement and wiring, each edge's partitions and struct, the schema files. Named parts with a
// hash each, so that a refusal can say which part differs.
using fingerprint = std::map<std::string, std::string>;
fingerprint fingerprint_of(const app_config& whole);
// The parts that differ, in words ("stage count", "schema words.capnp"); empty when none.
std::vector<std::string> differences(const fingerprint& mine, const fingerprint& theirs);

class link_hub : public std::enable_shared_from_this<link_hub> {
public:
  // Publishes the endpoint at the node's address. `view` is the node's view (node_view.hpp).
  // An error text when it cannot listen.
  // `epoch`: the store's incarnation (made once with it), which link_out sends with every batch.
  static std::variant<std::shared_ptr<link_hub>, std::string>
  start(caf::actor_system& sys, const app_config& view, uint64_t epoch);
  // The hub of this process, set while one runs.
  static std::shared_ptr<link_hub> current();
  // Unpublishes and ends the endpoint and the peer links; call it before letting go of the hub.
  void stop();
  ~link_hub();

  const std::string& node() const { return node_; }
  uint64_t epoch() const { return epoch_; }

  // link_out: sends one LinkBatch to `peer`'s link_in of `edge` and waits for the answer (at
  // most about two timeouts). Blocking: for a stage's own thread.
  link_reply send(const std::string& peer, const std::string& edge, std::string batch);
  // link_out, once the end of its partitions of the edge is committed: tells the peer, without
  // waiting.
  void say_done(const std::string& peer, const std::string& edge,
                const std::vector<uint32_t>& partitions);

  // link_in: its inbox, which the endpoint fills from now on (`wake` is called on each offer).
  std::shared_ptr<inbox> attach(const std::string& edge, const std::string& from,
                                std::function<void()> wake);
  void detach(const std::string& edge, const std::string& from);
  // link_in: the end of the edge is committed; from now on the endpoint answers `ok` to
  // whatever that sender sends again with the same epoch (`epoch`: the sender's, which the
  // link_in holds), and refuses batches of another one (the sender's data was reset).
  void ended(const std::string& edge, const std::string& from, uint64_t epoch);
  // Answers the sender of a batch (from a link_in stage's commit hook, any thread).
  void answer(uint64_t token, link_reply reply);

  // Once this node's stages are done: waits until every node that sends it records said it is
  // done too, or until `links.linger` passed. Returns the senders that did not say so.
  std::vector<std::string> await_senders_done();

  // For the endpoint actor.
  struct inbound_state {
    std::shared_ptr<inbox> box; // null while its stage is not running
    bool ended = false;
    uint64_t epoch = 0;               // once ended: the sender's
    uint32_t partitions = 1;          // of the edge
    std::set<uint32_t> sender_done;   // the partitions whose sender said it is done
    bool all_done() const { return sender_done.size() >= partitions; }
  };
  std::optional<link_reply> route(const std::string& edge, const std::string& from,
                                  uint64_t token, std::string batch);
  void mark_sender_done(const std::string& edge, const std::string& from,
                        const std::string& partitions);
  link_reply greet(const std::string& from, const fingerprint& theirs) const;

private:
  link_hub() = default;
  caf::actor peer_actor(const std::string& peer);

  caf::actor_system* sys_ = nullptr;
  std::string node_;
  uint64_t epoch_ = 0;
  links_config links_;
  fingerprint print_;
  std::map<std::string, node_config> nodes_;
  caf::actor endpoint_;
  uint16_t port_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable senders_changed_;
  std::map<std::string, caf::actor> peers_;                        // by node
  std::map<std::pair<std::string, std::string>, inbound_state> in_; // (edge, from)
};

} // namespace troupe::net
