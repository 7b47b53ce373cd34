// The lease table of a work queue against a real store: priority order, leases that run out,
// failures, claims, the cursor over committed runs, and what a restart finds.
#include "engine/lease_table.hpp"

#include "../store/store_support.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace troupe;
using namespace troupe::detail;
using namespace troupe::store_test;
using namespace std::chrono_literals;

namespace {

// Edge "items" (2 partitions) read by the leasing stage "work"; "src" writes it.
store_layout lease_layout() {
  store_layout l;
  l.edges.push_back(edge("items", {"work"}, 2));
  l.stages.push_back(make_stage("src"));
  auto work = make_stage("work", 3, {0});
  work.leasing = true;
  l.stages.push_back(work);
  return l;
}

struct fixture {
  temp_dir dir;
  std::unique_ptr<store> db = open_store(dir.path, lease_layout());
  std::unique_ptr<store_reader> reader = db->reader();
  std::map<std::pair<partition_id, uint64_t>, int64_t> priorities; // default 0
  std::vector<uint64_t> heads;

  lease_table::config config(std::chrono::milliseconds lease = 1000ms, uint32_t attempts = 2) {
    lease_table::config c;
    c.stage = 1;
    c.group = "work";
    c.inputs = {0};
    c.input_names = {"items"};
    c.partitions = 2;
    c.lease = lease;
    c.max_attempts = attempts;
    return c;
  }
  void append(partition_id p, uint64_t first, uint64_t n) {
    auto d = outputs(0, p, first, n);
    REQUIRE_FALSE(db->apply({&d}));
  }
  void sync(lease_table& t) {
    REQUIRE_FALSE(reader->refresh());
    auto err = t.sync(*reader,
                      [&](uint32_t, partition_id p, uint64_t seq, std::string_view,
                          std::string&) -> std::optional<int64_t> {
                        auto i = priorities.find({p, seq});
                        return i == priorities.end() ? 0 : i->second;
                      },
                      heads);
    REQUIRE_FALSE(err);
  }
};

std::vector<uint64_t> seqs(const std::vector<lease>& ls) {
  std::vector<uint64_t> out;
  for (const auto& l : ls)
    out.push_back(l.seq);
  return out;
}

} // namespace

TEST_CASE("a work queue leases the highest priority first, in arrival order within one, and "
          "later arrivals of higher priority go ahead",
          "[runtime][lease]") {
  fixture f;
  lease_table t{f.config()};
  f.priorities = {{{0, 1}, 2}, {{0, 2}, 1}, {{0, 3}, 2}, {{0, 5}, 1}};
  f.append(0, 0, 6);
  f.sync(t);
  auto now = lease_clock::now();
  CHECK(seqs(t.take(0, 3, f.heads, now)) == std::vector<uint64_t>{1, 3, 2});
  CHECK(seqs(t.take(1, 10, f.heads, now)) == std::vector<uint64_t>{5, 0, 4});
  CHECK(t.take(2, 10, f.heads, now).empty());
  f.priorities[{1, 0}] = 0;
  f.priorities[{1, 1}] = 9;
  f.append(1, 0, 2);
  f.append(0, 6, 1);
  f.sync(t);
  auto later = t.take(2, 10, f.heads, now);
  REQUIRE(later.size() == 3);
  CHECK(later[0].partition == 1);
  CHECK(later[0].seq == 1); // priority 9
  CHECK(t.state().leased == 9);
}

TEST_CASE("an item whose lease runs out goes to another worker with one more attempt; the "
          "first worker can no longer claim it; after max_attempts it comes alone, marked dead",
          "[runtime][lease]") {
  fixture f;
  lease_table t{f.config(1000ms, 2)};
  f.append(0, 0, 2);
  f.sync(t);
  auto t0 = lease_clock::now();
  auto first = t.take(0, 10, f.heads, t0);
  REQUIRE(seqs(first) == std::vector<uint64_t>{0, 1});
  CHECK(t.take(1, 10, f.heads, t0 + 500ms).empty()); // still leased
  auto again = t.take(1, 1, f.heads, t0 + 1500ms);
  REQUIRE(seqs(again) == std::vector<uint64_t>{0});
  CHECK(again[0].attempts == 1);
  CHECK_FALSE(again[0].dead);
  CHECK_THAT(again[0].error, Catch::Contains("lease of 1 s ran out on worker 0"));
  CHECK_FALSE(t.claim(0, first));   // item 0 was taken away: the whole step is dropped
  CHECK(t.claim(1, again));
  // Item 1's lease ran out at the same time; its next holder lets it run out again.
  auto one = t.take(2, 10, f.heads, t0 + 1500ms);
  REQUIRE(seqs(one) == std::vector<uint64_t>{1});
  CHECK(one[0].attempts == 1); // its first lease ran out too, before the claim
  auto dead = t.take(0, 10, f.heads, t0 + 3000ms);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].dead);
  CHECK(dead[0].attempts == 2);
}

TEST_CASE("a failed batch comes back one item at a time; a failed item waits for its retry delay "
          "while the others go on",
          "[runtime][lease]") {
  fixture f;
  lease_table t{f.config(1h, 3)};
  f.append(0, 0, 3);
  f.sync(t);
  auto now = lease_clock::now();
  auto batch = t.take(0, 10, f.heads, now);
  REQUIRE(batch.size() == 3);
  t.release(0, batch, "boom", false, true);
  auto alone = t.take(1, 10, f.heads, now);
  REQUIRE(seqs(alone) == std::vector<uint64_t>{0});
  CHECK(alone[0].attempts == 0); // a batch's failure is not counted against its items
  t.release(1, alone, "boom", true, false, 1h);
  CHECK(seqs(t.take(1, 10, f.heads, now)) == std::vector<uint64_t>{1});
  CHECK(seqs(t.take(2, 10, f.heads, now)) == std::vector<uint64_t>{2});
  CHECK(t.take(2, 10, f.heads, now + 30min).empty());
  auto due = t.take(2, 10, f.heads, now + 2h);
  REQUIRE(seqs(due) == std::vector<uint64_t>{0});
  CHECK(due[0].attempts == 1);
  CHECK(due[0].error == "boom");
  CHECK(t.state().next_event.has_value());
}

TEST_CASE("committed runs move the cursor only over contiguous items, one move at a time",
          "[runtime][lease]") {
  fixture f;
  lease_table t{f.config(1h)};
  f.append(0, 0, 6);
  f.sync(t);
  auto now = lease_clock::now();
  auto a = t.take(0, 2, f.heads, now), b = t.take(1, 2, f.heads, now),
       c = t.take(2, 2, f.heads, now);
  REQUIRE((t.claim(0, a) && t.claim(1, b) && t.claim(2, c)));
  t.committed(b);
  CHECK(t.take_moves(0).empty()); // items 0 and 1 are not done: the cursor stays at 0
  t.committed(a);
  auto m = t.take_moves(2);
  REQUIRE(m.size() == 1);
  CHECK(m[0].partition == 0);
  CHECK(m[0].to.next == 4);
  CHECK(m[0].to.bytes == rec_bytes(0, 4));
  CHECK(m[0].erased == std::vector<uint64_t>{0, 2});
  t.committed(c);
  CHECK(t.take_moves(0).empty()); // the first move is still being committed
  t.moved(m);
  auto m2 = t.take_moves(0);
  REQUIRE(m2.size() == 1);
  CHECK(m2[0].to.next == 6);
  CHECK_FALSE(t.state().settled);
  t.moved(m2);
  CHECK(t.state().settled);
}

TEST_CASE("a table loaded from the store skips the items that committed; a restarted worker's "
          "claimed items are done if their run committed, else wait again",
          "[runtime][lease]") {
  fixture f;
  f.append(0, 0, 6);
  // Committed before: items 0-1 behind the cursor, run [3, 5) above it.
  step_delta d;
  d.stage = 1;
  d.cursors.push_back({0, 0, 0, 2, rec_bytes(0, 2)});
  d.state.push_back({state_scope::partition, 0, state_space::runtime, lease_run_key(0, 3),
                     lease_run_value(5, rec_bytes(3, 5))});
  REQUIRE_FALSE(f.db->apply({&d}));
  lease_table t{f.config(1h, 3)};
  f.sync(t);
  auto now = lease_clock::now();
  auto got = t.take(0, 10, f.heads, now);
  REQUIRE(seqs(got) == std::vector<uint64_t>{2, 5});
  REQUIRE(t.claim(0, got));
  // Worker 0's step with [2] committed (its run key is in the store), [5] did not.
  step_delta run;
  run.stage = 1;
  run.state.push_back({state_scope::partition, 0, state_space::runtime, lease_run_key(0, 2),
                       lease_run_value(3, rec_bytes(2, 3))});
  REQUIRE_FALSE(f.db->apply({&run}));
  REQUIRE(lease_runs(got).size() == 2); // 2 and 5 are not consecutive: a run each
  REQUIRE_FALSE(f.reader->refresh());
  REQUIRE_FALSE(t.restarted(0, *f.reader));
  auto back = t.take(1, 10, f.heads, lease_clock::now());
  REQUIRE(seqs(back) == std::vector<uint64_t>{5});
  CHECK(back[0].attempts == 1);
  CHECK_THAT(back[0].error, Catch::Contains("worker 0 stopped"));
  auto m = t.take_moves(1);
  REQUIRE(m.size() == 1);
  CHECK(m[0].to.next == 5); // over 2 (just found committed) and the run [3, 5)
  CHECK(m[0].to.bytes == rec_bytes(0, 5));
}
