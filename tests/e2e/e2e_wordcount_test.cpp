// End to end: map / shuffle / reduce (text_source -> tokenize -> reduce -> jsonl_sink) in real
// `troupe run` processes, checked against coreutils on the same file:
//   tr -cs 'A-Za-z' '\n' < INPUT | tr A-Z a-z | grep -v '^$' | sort | uniq -c
// once straight through, and once with SIGKILLs at random moments (during the map and during
// the reducers' final emission, three times) and the reducers rescaled 2 -> 1 -> 3 between runs.
#include "e2e_support.hpp"
#include "node_fixture.hpp"
#include "wordcount_oracle.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <sstream>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

void write_app(const temp_dir& dir, unsigned reducers, unsigned emit_per_step,
               unsigned lines_per_record = 1) {
  std::string schema = read_file(std::string(TROUPE_SOURCE_DIR) + "/apps/wordcount/words.capnp");
  write_file(dir / "words.capnp", schema);
  write_file(dir / "app.yaml",
             "app: wc\n"
             "schema: {files: [words.capnp]}\n"
             "edges:\n"
             "  lines: {type: Line, partitions: 2}\n"
             "  words: {type: Count, partitions: 8}\n"
             "  counts: {type: Count}\n"
             "defaults: {batch: {max_items: 200}}\n"
             "stages:\n"
             "  - {name: read, type: text_source, path: in.txt, output: lines,\n"
             "     lines_per_record: " + std::to_string(lines_per_record) + "}\n"
             "  - {name: map, type: tokenize, combine: true, workers: 2, input: lines, output: words}\n"
             "  - {name: reduce, type: reduce, op: sum, field: count, key_field: word,\n"
             "     value_field: count, workers: " + std::to_string(reducers) +
               ", emit_per_step: " + std::to_string(emit_per_step) + ",\n"
             "     input: words, output: counts}\n"
             "  - {name: write, type: jsonl_sink, input: counts, path: out/counts.jsonl}\n");
}

} // namespace

TEST_CASE("word count equals coreutils' count", "[e2e][mapreduce]") {
  temp_dir dir;
  write_text(dir / "in.txt", small_scale() ? 50000 : 300000, pick_seed());
  write_app(dir, 2, 1024);
  auto r = run_troupe({"run", dir / "app.yaml", "--data-dir", dir / "data"});
  INFO(r.output);
  REQUIRE(exit_code(r.status) == 0);
  auto want = coreutils_counts(dir);
  CHECK(want.size() > 500); // a vocabulary big enough to spread over every partition
  CHECK(troupe_counts(dir) == want);
}

TEST_CASE("word count is exact after SIGKILLs and rescaled reducers", "[e2e][mapreduce]") {
  temp_dir dir;
  auto seed = pick_seed();
  write_text(dir / "in.txt", small_scale() ? 200000 : 1200000, seed);
  std::mt19937_64 rnd{seed};
  const unsigned reducers[] = {2, 1, 3, 2};
  int kills = 0;
  for (unsigned round = 0; round < 4; ++round) {
    // Few totals per step, so that the reducers' emission takes many steps a kill can hit.
    write_app(dir, reducers[round], 20, 7); // groups of 7 lines: a group never spans steps
    troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
    if (round == 0) { // during the map: once the store grew by a random amount
      auto data = dir / "data/data.mdb";
      auto target = size_of(data) + (256u << 10) + rnd() % (2u << 20);
      wait_until([&] { return size_of(data) >= target || !node.running(); }, 60s);
    } else { // while the reducers write their totals out
      auto out = dir / "out/counts.jsonl";
      auto before = size_of(out);
      wait_until([&] { return size_of(out) > before || !node.running(); }, 60s);
    }
    if (killed_by(node.kill_and_reap(), SIGKILL))
      ++kills;
    else
      std::cerr << "wordcount: round " << round << " ended before its kill\n";
  }
  write_app(dir, 2, 20, 7);
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(180s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  std::cerr << "wordcount: " << kills << " SIGKILLs\n";
  CHECK(troupe_counts(dir) == coreutils_counts(dir));
}
