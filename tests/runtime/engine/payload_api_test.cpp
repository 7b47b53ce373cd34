// Tests of runtime/src/engine/payload_api.cpp: each edge carries its own struct through a real
// run, and a stage that builds, reads or forwards another struct than its edge's is refused.
#include "e2e/e2e_support.hpp"
#include "node_fixture.hpp"

#include "envelope.capnp.h"

#include <mutex>

using namespace troupe;
using namespace troupe::test;

namespace {

std::mutex refusals_mutex;
std::vector<std::string> refusals; // what the stages below were refused, in order

void refused(const std::exception& e) {
  std::lock_guard<std::mutex> guard{refusals_mutex};
  refusals.push_back(e.what());
}

// Reads Generated, emits RecordId{origin = "gen-<index>", seq = index}. With `misbehave`, it first
// tries the wrong structs (and forwards its input to a port of another struct); each refusal is
// recorded, then it does the right thing.
class to_id_stage : public stage {
public:
  explicit to_id_stage(const params& p) : misbehave_(p.get_bool("misbehave", false)) {}

  void process(context& ctx, const record& r) override {
    if (misbehave_) {
      try {
        r.payload<schema::Header>();
      } catch (const std::invalid_argument& e) {
        refused(e);
      }
      try {
        ctx.emit("out").init_payload<schema::Header>();
      } catch (const std::invalid_argument& e) {
        refused(e);
      }
      try {
        ctx.forward("out", r);
      } catch (const std::invalid_argument& e) {
        refused(e);
      }
    }
    auto index = r.payload<schema::Generated>().getIndex();
    auto out = ctx.emit("out").init_payload<schema::RecordId>();
    out.setOrigin("gen-" + std::to_string(index));
    out.setSeq(index);
  }

private:
  bool misbehave_;
};

void register_to_id(registry& reg) {
  reg.add_operator<to_id_stage>("test.to_id")
      .params({"misbehave"})
      .reads<schema::Generated>()
      .emits<schema::RecordId>("out");
}

std::string two_types_app(const temp_dir& dir, uint64_t count, bool misbehave) {
  return "app: two-types\n"
         "schema:\n"
         "  files: [" TROUPE_SOURCE_DIR "/schemas/envelope.capnp]\n"
         "edges:\n"
         "  gens: {type: Generated}\n"
         "  ids: {type: RecordId}\n"
         "stages:\n"
         "  - name: gen\n"
         "    type: generator\n"
         "    count: " +
         std::to_string(count) +
         "\n"
         "    payload_size: 0\n"
         "    output: gens\n"
         "  - name: conv\n"
         "    type: test.to_id\n"
         "    misbehave: " +
         (misbehave ? "true" : "false") +
         "\n"
         "    input: gens\n"
         "    output: ids\n"
         "  - name: write_ids\n"
         "    type: jsonl_sink\n"
         "    input: ids\n"
         "    path: " +
         (dir / "ids.jsonl") +
         "\n"
         "  - name: write_gens\n"
         "    type: jsonl_sink\n"
         "    input: gens\n"
         "    path: " +
         (dir / "gens.jsonl") + "\n";
}

} // namespace

TEST_CASE("a run carries a different struct on each edge, and each sink writes its own",
          "[runtime][payload]") {
  temp_dir dir;
  auto loaded = load_yaml(dir, two_types_app(dir, 50, false), register_to_id);
  REQUIRE(run_app(loaded->app()).exit_code == 0);

  bool complete = false;
  auto ids_text = read_file(dir / "ids.jsonl");
  auto ids = split_lines(ids_text, complete);
  CHECK(complete);
  REQUIRE(ids.size() == 50);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto obj = parse_flat_json(ids[i]);
    INFO("line " << i + 1 << ": " << ids[i]);
    REQUIRE(obj);
    CHECK(obj->size() == 2);
    CHECK(obj->at("origin").text == "gen-" + std::to_string(i));
    CHECK(obj->at("seq").text == std::to_string(i)); // a UInt64: a string in Cap'n Proto's JSON
  }
  auto gens_text = read_file(dir / "gens.jsonl");
  auto gens = split_lines(gens_text, complete);
  REQUIRE(gens.size() == 50);
  for (size_t i = 0; i < gens.size(); ++i) {
    INFO("line " << i + 1 << ": " << gens[i]);
    CHECK(std::string(gens[i]).find("\"index\":" + std::to_string(i) + ",") !=
          std::string::npos);
    CHECK(std::string(gens[i]).find("origin") == std::string::npos);
  }
}

TEST_CASE("a stage that builds, reads or forwards another struct than its edge's is refused",
          "[runtime][payload]") {
  {
    std::lock_guard<std::mutex> guard{refusals_mutex};
    refusals.clear();
  }
  temp_dir dir;
  auto loaded = load_yaml(dir, two_types_app(dir, 3, true), register_to_id);
  REQUIRE(run_app(loaded->app()).exit_code == 0);
  bool complete = false;
  auto text = read_file(dir / "ids.jsonl");
  CHECK(split_lines(text, complete).size() == 3); // nothing wrong got through

  std::lock_guard<std::mutex> guard{refusals_mutex};
  REQUIRE(refusals.size() == 9);
  CHECK(refusals[0] == "stage 'conv' reads envelope.capnp:Header from edge 'gens', which "
                       "carries envelope.capnp:Generated");
  CHECK(refusals[1] == "stage 'conv' builds envelope.capnp:Header on port 'out', but the port's "
                       "edge 'ids' carries envelope.capnp:RecordId");
  CHECK(refusals[2] == "stage 'conv' forwards envelope.capnp:Generated from edge 'gens' to port "
                       "'out', whose edge 'ids' carries envelope.capnp:RecordId");
}
