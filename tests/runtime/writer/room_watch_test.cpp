// The writer's watch over steps waiting for room: a wait that cannot end (consumers refused too,
// or nothing left for any consumer) stops the node with a message; intake waiting on consumers
// that hold records is backpressure and goes on waiting.
#include "../store/store_support.hpp"

#include "writer/room_watch.hpp"

using namespace troupe;
using namespace troupe::store_test;

namespace {

struct watch_fixture {
  temp_dir dir;
  std::unique_ptr<store> db;
  watch_fixture() {
    store_layout l;
    l.edges.push_back(edge("in", {"sink"}));
    db = open_store(dir.path, l);
  }
};

} // namespace

TEST_CASE("intake refused while consumers hold records waits; a refused consumer is a stall",
          "[runtime][writer]") {
  watch_fixture f;
  auto intake = outputs(0, 0, 0, 3);
  REQUIRE(!apply(*f.db, {&intake}));
  room_watch watch{std::chrono::milliseconds{0}};
  CHECK(!watch.at_tick(*f.db)); // nothing refused

  watch.refused(intake); // pure intake, and the edge holds 3 unconsumed records
  CHECK(!watch.at_tick(*f.db));

  auto consume = cursor_move(0, 0, 0, 1);
  watch.refused(consume);
  auto err = watch.at_tick(*f.db);
  CHECK(code_of(err) == errc::store_full);
  CHECK(text_of(err).find("store.map_size") != std::string::npos);
  CHECK(text_of(err).find("consumers' own steps") != std::string::npos);

  watch.committed(); // a commit ends the episode
  CHECK(!watch.at_tick(*f.db));
}

TEST_CASE("intake refused with nothing left to consume is a stall, but only after the limit",
          "[runtime][writer]") {
  watch_fixture f;
  auto intake = outputs(0, 0, 0, 3);
  room_watch patient{std::chrono::hours{1}};
  patient.refused(intake);
  CHECK(!patient.at_tick(*f.db)); // within the limit

  room_watch watch{std::chrono::milliseconds{0}};
  watch.refused(intake);
  auto err = watch.at_tick(*f.db);
  CHECK(code_of(err) == errc::store_full);
  CHECK(text_of(err).find("no edge holds a record") != std::string::npos);
}
