// The writer: group commit, fencing of replaced worker incarnations, and the order of a worker's
// pipelined steps (a step whose predecessor was refused is refused too, so nothing commits on top
// of a step that did not).
#include "node_fixture.hpp"

#include "wait.hpp"
#include "writer/writer.hpp"

#include <caf/all.hpp>

using namespace troupe;
using namespace troupe::test;

namespace {

struct writer_fixture {
  temp_dir dir;
  std::unique_ptr<store> db;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor writer;
  std::unique_ptr<caf::scoped_actor> self;

  explicit writer_fixture(uint64_t map_size = uint64_t{64} << 20) {
    store_layout layout;
    edge_spec e;
    e.name = "e";
    e.partitions = 2;
    e.groups = {"s"};
    layout.edges.push_back(e);
    stage_spec s;
    s.name = "s";
    layout.stages.push_back(s);
    store_options opts;
    opts.dir = dir / "data";
    opts.map_size = map_size;
    auto opened = store::open(opts, layout);
    REQUIRE(opened);
    db = std::move(*opened);
    sys = std::make_unique<caf::actor_system>(cfg);
    writer = spawn_writer(*sys, *db, std::chrono::milliseconds{1000});
    self = std::make_unique<caf::scoped_actor>(*sys);
  }
  ~writer_fixture() {
    (*self)->send(writer, shutdown_atom::value);
    (*self)->wait_for(writer);
  }

  uint64_t barrier() {
    uint64_t incarnation = 0;
    (*self)
      ->request(writer, std::chrono::seconds(10), barrier_atom::value, stage_id{0}, uint32_t{0})
      .receive([&](uint64_t i) { incarnation = i; }, [&](caf::error& e) { FAIL(describe(e)); });
    return incarnation;
  }
  static step_delta_ptr delta(uint64_t incarnation, uint64_t step, size_t bytes = 16) {
    auto d = std::make_shared<step_delta>();
    d->incarnation = incarnation;
    d->step = step;
    d->add_output(0, static_cast<partition_id>(step % 2), std::string(bytes, 'x'));
    return d;
  }
  caf::error commit(const step_delta_ptr& d) {
    caf::error result;
    (*self)
      ->request(writer, std::chrono::seconds(10), commit_atom::value, d)
      .receive([](caf::ok_atom) {}, [&](caf::error& e) { result = e; });
    return result;
  }
  // Sends all, then collects the answers in the order sent.
  std::vector<caf::error> commit_all(const std::vector<step_delta_ptr>& ds) {
    std::vector<caf::error> out(ds.size());
    std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> handles;
    for (auto& d : ds)
      handles.push_back((*self)->request(writer, std::chrono::seconds(10), commit_atom::value, d));
    for (size_t i = 0; i < handles.size(); ++i)
      handles[i].receive([](caf::ok_atom) {}, [&](caf::error& e) { out[i] = e; });
    return out;
  }
  uint64_t records() {
    auto r = db->reader();
    REQUIRE_FALSE(r->refresh());
    return must(r->partition(0, 0)).head + must(r->partition(0, 1)).head;
  }
};

} // namespace

TEST_CASE("a step of a replaced worker is refused by the writer", "[runtime][writer]") {
  writer_fixture f;
  auto first = f.barrier();
  CHECK_FALSE(f.commit(f.delta(first, 1)));
  auto second = f.barrier(); // a restarted worker
  CHECK(second != first);
  CHECK(code_of(f.commit(f.delta(first, 2))) == errc::stopped); // the old one can no longer commit
  CHECK_FALSE(f.commit(f.delta(second, 1)));                   // the new one counts from 1
  CHECK(f.records() == 2);
}

TEST_CASE("pipelined steps of a worker commit in order, several per transaction",
          "[runtime][writer]") {
  writer_fixture f;
  auto inc = f.barrier();
  std::vector<step_delta_ptr> ds;
  for (uint64_t s = 1; s <= 6; ++s)
    ds.push_back(f.delta(inc, s));
  for (auto& err : f.commit_all(ds))
    CHECK_FALSE(err);
  CHECK(f.records() == 6);
}

TEST_CASE("a step out of order is refused and so is everything after it until the gap is filled",
          "[runtime][writer]") {
  writer_fixture f;
  auto inc = f.barrier();
  // Step 2 before step 1: refused, and nothing of it is written.
  auto early = f.commit_all({f.delta(inc, 2), f.delta(inc, 3)});
  CHECK(code_of(early[0]) == errc::out_of_order);
  CHECK(code_of(early[1]) == errc::out_of_order);
  CHECK(f.records() == 0);
  // Sent again in order, they all commit.
  for (auto& err : f.commit_all({f.delta(inc, 1), f.delta(inc, 2), f.delta(inc, 3)}))
    CHECK_FALSE(err);
  CHECK(f.records() == 3);
}

TEST_CASE("near a full map intake is refused with its successors, consumers still commit, and "
          "intake resumes once they made room", "[runtime][writer]") {
  writer_fixture f{uint64_t{2} << 20}; // 2 MiB
  auto inc = f.barrier();
  uint64_t step = 0;
  caf::error refused;
  while (!refused && step < 64)
    refused = f.commit(f.delta(inc, ++step, 200 * 1024));
  REQUIRE(refused);
  CHECK(is_waitable(refused));
  // The step after the refused one is refused as out of order, whatever its size.
  CHECK(code_of(f.commit(f.delta(inc, step + 1, 8))) == errc::out_of_order);
  // A consumer (another worker) consumes everything: its step commits although intake waits.
  uint64_t consumer = 0;
  (*f.self)
    ->request(f.writer, std::chrono::seconds(10), barrier_atom::value, stage_id{0}, uint32_t{1})
    .receive([&](uint64_t i) { consumer = i; }, [&](caf::error& e) { FAIL(describe(e)); });
  auto r = f.db->reader();
  REQUIRE_FALSE(r->refresh());
  auto consume = std::make_shared<step_delta>();
  consume->worker = 1;
  consume->incarnation = consumer;
  consume->step = 1;
  for (partition_id p = 0; p < 2; ++p) {
    auto info = must(r->partition(0, p));
    consume->cursors.push_back({0, 0, p, info.head, info.bytes_head});
  }
  r.reset();
  CHECK_FALSE(f.commit(consume));
  {
    auto r2 = f.db->reader(); // consumed records go regardless of retention (count 100000)
    REQUIRE_FALSE(r2->refresh());
    for (partition_id p = 0; p < 2; ++p) {
      auto info = must(r2->partition(0, p));
      CHECK(info.tail == info.head);
    }
  }
  // With its records consumed (and trimmed regardless of retention), the producer's refused step
  // commits again within a few writer ticks.
  caf::error last;
  bool resumed = wait_until([&] { return !(last = f.commit(f.delta(inc, step, 200 * 1024))); },
                            std::chrono::seconds(30));
  INFO(describe(last));
  CHECK(resumed);
  CHECK_FALSE(f.commit(f.delta(inc, step + 1, 8)));
}
