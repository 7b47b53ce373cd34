// The two ends of a node link as stages (link_hub.hpp says how they work together). Written
// against the public stage API like any stage; only the hub is the runtime's.
//
//   link_out (a sink on the sending node): reads the edge; one step = one batch sent to the
//     peer, and the step (with the edge cursor) commits only once the peer answered that it
//     committed the batch. Once the edge is drained for good it sends the end, and once that
//     is committed, says so to the peer.
//   link_in (a source on the receiving node): appends the batches that arrive, unchanged
//     (same ids, keys, so same partitions), keeping per partition of the sender's edge the
//     position after the last record appended; a record below it was appended before.
#include "net/link_stages.hpp"

#include "net/link_hub.hpp"

#include <envelope.capnp.h>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/io.h>

#include <cstring>

#include <set>
#include <sstream>

namespace troupe::net {

namespace {

constexpr size_t max_batch_bytes = size_t{32} << 20;

std::shared_ptr<link_hub> the_hub() {
  auto hub = link_hub::current();
  if (!hub)
    throw permanent_error("this node runs no node links (it was not started as a node of the "
                          "app's nodes: troupe run APP --node NAME)");
  return hub;
}

// The message as one flat array, written straight into the string CAF sends.
std::string flat(capnp::MessageBuilder& msg) {
  std::string out(capnp::computeSerializedSizeInWords(msg) * sizeof(capnp::word), '\0');
  kj::ArrayOutputStream stream{{reinterpret_cast<kj::byte*>(out.data()), out.size()}};
  capnp::writeMessage(stream, msg);
  return out;
}

class link_out final : public stage {
public:
  explicit link_out(const params& p) : edge_(p.get_string("edge")), peer_(p.get_string("to")) {}

  void open(context&) override { hub_ = the_hub(); }

  void process_batch(context& ctx, const batch& records) override {
    capnp::MallocMessageBuilder msg;
    auto b = msg.initRoot<schema::LinkBatch>();
    size_t n = 0, bytes = 0;
    std::set<uint32_t> partitions;
    while (n < records.size() &&
           (n == 0 || bytes + records[n].bytes().size() <= max_batch_bytes)) {
      partitions.insert(records[n].partition());
      bytes += records[n++].bytes().size();
    }
    if (n < records.size())
      ctx.take_only(n); // the rest in the next step
    set_epochs(ctx, b, partitions);
    auto items = b.initItems(static_cast<unsigned>(n));
    for (size_t i = 0; i < n; ++i) {
      auto r = records[i];
      auto item = items[static_cast<unsigned>(i)];
      item.setPartition(r.partition());
      item.setPosition(r.position());
      auto env = r.bytes();
      item.setEnvelope({reinterpret_cast<const kj::byte*>(env.data()), env.size()});
    }
    deliver(ctx, flat(msg));
  }

  bool drained(context& ctx) override {
    capnp::MallocMessageBuilder msg;
    auto b = msg.initRoot<schema::LinkBatch>();
    auto owned = ctx.partitions();
    set_epochs(ctx, b, {owned.begin(), owned.end()});
    b.setEnd(true);
    deliver(ctx, flat(msg));
    ctx.on_commit([hub = hub_, peer = peer_, edge = edge_, owned] {
      hub->say_done(peer, edge, owned);
    });
    return true;
  }

private:
  // The store's epoch for each partition the batch holds: a peer that holds positions of
  // another epoch knows that this node's data was reset since.
  void set_epochs(context&, schema::LinkBatch::Builder b, const std::set<uint32_t>& partitions) {
    auto epochs = b.initEpochs(static_cast<unsigned>(partitions.size()));
    unsigned i = 0;
    for (auto p : partitions) {
      epochs[i].setPartition(p);
      epochs[i++].setEpoch(hub_->epoch());
    }
  }

  void deliver(context& ctx, std::string bytes) {
    auto reply = hub_->send(peer_, edge_, std::move(bytes));
    switch (reply.status) {
      case link_status::ok:
        if (failing_)
          ctx.log_info("node " + peer_ + " takes edge '" + edge_ + "' again");
        failing_ = false;
        return;
      case link_status::retry:
        failing_ = true;
        throw transient_error(reply.text);
      case link_status::refused:
        throw permanent_error("node " + peer_ + " refuses edge '" + edge_ + "': " + reply.text);
    }
  }

  std::string edge_, peer_;
  std::shared_ptr<link_hub> hub_;
  bool failing_ = false;
};

class link_in final : public source {
public:
  explicit link_in(const params& p)
      : edge_(p.get_string("edge")), from_(p.get_string("from")) {
    std::istringstream list{p.get_string("partitions")};
    for (std::string x; std::getline(list, x, ',');)
      sent_.push_back(static_cast<uint32_t>(std::stoul(x)));
  }
  ~link_in() override {
    if (box_)
      hub_->detach(edge_, from_);
  }

  void open(context& ctx) override {
    hub_ = the_hub();
    box_ = hub_->attach(edge_, from_, ctx.waker());
  }

  std::optional<std::string> changed_since_done(context& ctx) override {
    // Finished before: what the sender sends again is all here (if it is the same sender).
    the_hub()->ended(edge_, from_, sender_epoch(ctx));
    return std::nullopt;
  }

  produce_result produce(context& ctx, size_t) override {
    auto batches = box_->take();
    if (batches.empty())
      return produce_result::idle(500); // the inbox's offer wakes it sooner
    bool end = false;
    for (auto& b : batches) {
      end = append(ctx, b) || end;
      ctx.on_commit([hub = hub_, token = b.token] { hub->answer(token, {link_status::ok, {}}); });
    }
    if (!end)
      return produce_result::more();
    ctx.on_commit([hub = hub_, edge = edge_, from = from_, e = sender_epoch(ctx)] {
      hub->ended(edge, from, e);
    });
    return produce_result::done();
  }

private:
  // The sender's epoch, as its batches left it in this stage's state (0: none came).
  uint64_t sender_epoch(context& ctx) const {
    auto state = ctx.state();
    for (auto p : sent_)
      if (auto e = state.get_u64("epoch/" + std::to_string(p)))
        return *e;
    return 0;
  }

  // Appends what of one batch is new; true when it carries the end.
  bool append(context& ctx, inbound_batch& b) {
    // Cap'n Proto reads from word-aligned memory: a long string's heap buffer is (malloc's
    // alignment); copied otherwise.
    kj::Array<capnp::word> copy;
    kj::ArrayPtr<const capnp::word> words{reinterpret_cast<const capnp::word*>(b.bytes.data()),
                                          b.bytes.size() / sizeof(capnp::word)};
    if (reinterpret_cast<uintptr_t>(b.bytes.data()) % alignof(capnp::word) != 0 ||
        b.bytes.size() % sizeof(capnp::word) != 0) {
      copy = kj::heapArray<capnp::word>((b.bytes.size() + 7) / 8);
      std::memcpy(copy.begin(), b.bytes.data(), b.bytes.size());
      words = copy;
    }
    capnp::ReaderOptions options;
    options.traversalLimitInWords = words.size() + 1024;
    capnp::FlatArrayMessageReader reader{words, options};
    auto batch = reader.getRoot<schema::LinkBatch>();
    auto state = ctx.state();
    for (auto e : batch.getEpochs()) {
      auto key = "epoch/" + std::to_string(e.getPartition());
      if (auto known = state.get_u64(key); !known) {
        state.put_u64(key, e.getEpoch());
      } else if (*known != e.getEpoch()) {
        std::string why = "node " + hub_->node() + " holds records of edge '" + edge_ +
                          "' that an earlier incarnation of node " + from_ + " sent (was " +
                          from_ + "'s data reset?); to start afresh, reset the data of every node";
        hub_->answer(b.token, {link_status::refused, why});
        throw permanent_error(why);
      }
    }
    std::map<uint32_t, uint64_t> next; // per partition of the sender's edge: the first new position
    for (auto item : batch.getItems()) {
      auto p = item.getPartition();
      auto at = next.find(p);
      if (at == next.end())
        at = next.emplace(p, state.get_u64("next/" + std::to_string(p)).value_or(0)).first;
      if (item.getPosition() < at->second)
        continue; // sent before
      auto env = item.getEnvelope();
      ctx.forward("out", ctx.restore(edge_, {reinterpret_cast<const char*>(env.begin()),
                                             env.size()}));
      at->second = item.getPosition() + 1;
    }
    for (const auto& [p, position] : next)
      state.put_u64("next/" + std::to_string(p), position);
    if (!batch.getEnd())
      return false;
    // The end of the sending worker's partitions; the edge ends with the last of them.
    for (auto e : batch.getEpochs())
      state.put_u64("ended/" + std::to_string(e.getPartition()), 1);
    for (auto p : sent_)
      if (!state.get_u64("ended/" + std::to_string(p)))
        return false;
    return true;
  }

  std::string edge_, from_;
  std::vector<uint32_t> sent_; // the partitions of the edge the sender sends this node
  std::shared_ptr<link_hub> hub_;
  std::shared_ptr<inbox> box_;
};

} // namespace

void register_link_stages(registry& reg) {
  if (reg.find(link_out_type))
    return;
  reg.add_sink<link_out>(link_out_type).params({"edge", "to"}).blocking();
  reg.add_source<link_in>(link_in_type).params({"edge", "from", "partitions"}).blocking()
    .single_worker();
}

} // namespace troupe::net
