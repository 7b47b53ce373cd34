// End to end: a work queue of external commands in real `troupe run` processes, on a schema of
// the test's own, with input written by Python (Unicode names), SIGKILLs mid-way and a worker
// count that changes between runs. The oracle is the input itself, read by the test's own JSON
// parser: every job that does not fail comes out once, unchanged; every failing job is a dead
// letter with the command's standard error; a job slower than the timeout is a dead letter too.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <sstream>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

const char* jobs_schema = R"(@0xe1f2a3b4c5d6e7f8;
struct Job {
  id @0 :UInt64;
  name @1 :Text;
  prio @2 :Int32;
  fail @3 :Bool;
  slow @4 :Bool;
}
)";

// The worker: records that it ran (an effect outside the store: at least once), fails for a job
// marked "fail", hangs for one marked "slow", else echoes the job back as its output record.
const char* worker_script = R"(read -r line
echo "$1" >> "$2/ran.log"
case "$line" in
  *'"fail":true'*|*'"fail": true'*) echo "cannot do job $1" >&2; exit 4;;
  *'"slow":true'*|*'"slow": true'*) sleep 30;;
esac
printf '%s\n' "$line"
)";

std::string app_yaml(const temp_dir& dir, unsigned workers) {
  return "app: jobs\n"
         "schema: {files: [jobs.capnp], payload: Job}\n"
         "defaults:\n"
         "  retry: {max_attempts: 2, backoff: 1ms}\n"
         "stages:\n"
         "  - name: read\n"
         "    type: jsonl_source\n"
         "    path: jobs.jsonl\n"
         "    outputs: {out: jobs}\n"
         "  - name: work\n"
         "    type: work_queue\n"
         "    input: jobs\n"
         "    workers: " + std::to_string(workers) + "\n"
         "    priority: prio\n"
         "    timeout: 700ms\n"
         "    batch: {max_items: 4}\n"
         "    command: [sh, " + dir / "worker.sh" + ", '{id}', " + dir.path().string() + "]\n"
         "    outputs: {out: done}\n"
         "  - name: write\n"
         "    type: jsonl_sink\n"
         "    input: done\n"
         "    path: done.jsonl\n";
}

struct job {
  std::string name;
  bool fail = false, slow = false;
};

} // namespace

TEST_CASE("a work queue of commands is exact after SIGKILLs, with the worker count changing",
          "[e2e][work_queue]") {
  temp_dir dir;
  auto seed = pick_seed();
  write_file(dir / "jobs.capnp", jobs_schema);
  write_file(dir / "worker.sh", worker_script);
  const int count = small_scale() ? 300 : 1500;
  std::ostringstream gen;
  gen << "import json, random\n"
         "r = random.Random(" << seed << ")\n"
         "for i in range(" << count << "):\n"
         "    print(json.dumps({'id': i, 'name': 'Jos\\u00e9 \\U0001F600 ' + str(r.random()),\n"
         "                      'prio': r.randrange(3), 'fail': i % 97 == 13,\n"
         "                      'slow': i == 42}, ensure_ascii=r.random() < 0.5))\n";
  write_file(dir / "gen.py", gen.str());
  REQUIRE(std::system(("python3 " + dir / "gen.py" + " > " + dir / "jobs.jsonl").c_str()) == 0);
  std::map<uint64_t, job> jobs;
  {
    std::istringstream in{read_file(dir / "jobs.jsonl")};
    for (std::string line; std::getline(in, line);) {
      auto o = parse_flat_json(line);
      REQUIRE(o);
      jobs[std::stoull(o->at("id").text)] = {o->at("name").text, o->at("fail").text == "true",
                                             o->at("slow").text == "true"};
    }
  }
  REQUIRE(jobs.size() == size_t(count));

  std::mt19937_64 rnd{seed};
  int kills = 0;
  const unsigned workers[] = {2, 3, 1};
  for (unsigned w : workers) {
    write_file(dir / "app.yaml", app_yaml(dir, w));
    troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
    auto target = size_of(dir / "ran.log") + 1 + rnd() % (count * 2);
    wait_until([&] { return size_of(dir / "ran.log") >= target || !node.running(); }, 60s);
    if (killed_by(node.kill_and_reap(), SIGKILL))
      ++kills;
  }
  write_file(dir / "app.yaml", app_yaml(dir, 2));
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(node.wait_for_exit(180s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  std::cerr << "work_queue: " << kills << " SIGKILLs mid-run (seed " << seed << ")\n";

  // Every job that can succeed is in the output once, as it went in.
  std::map<uint64_t, int> seen;
  std::istringstream out{read_file(dir / "done.jsonl")};
  for (std::string line; std::getline(out, line);) {
    auto o = parse_flat_json(line);
    REQUIRE(o);
    auto id = std::stoull(o->at("id").text);
    REQUIRE(jobs.count(id));
    CHECK(o->at("name").text == jobs[id].name);
    ++seen[id];
  }
  std::set<uint64_t> expected, failing;
  for (const auto& [id, j] : jobs)
    (j.fail || j.slow ? failing : expected).insert(id);
  std::set<uint64_t> got;
  for (const auto& [id, n] : seen) {
    CHECK(n == 1);
    got.insert(id);
  }
  CHECK(got == expected);

  // The others are dead letters, with the command's own words.
  auto dead = stored_dead_letters(dir / "app.yaml", dir / "data", "work");
  std::set<uint64_t> dead_ids;
  for (const auto& d : dead) {
    auto id = d.input_seq; // the source assigns jobs.jsonl's order, which is the ids'
    dead_ids.insert(id);
    if (jobs[id].slow)
      CHECK_THAT(d.error, Catch::Contains("ran past its timeout of 700 ms and was killed"));
    else
      CHECK_THAT(d.error, Catch::Contains("failed 2 attempts: command 'sh' exited with status 4") &&
                            Catch::Contains("cannot do job " + std::to_string(id)));
  }
  CHECK(dead_ids == failing);
  CHECK(dead.size() == failing.size());
}

TEST_CASE("troupe lint names the field and column of a work queue's wrong command", "[e2e][work_queue]") {
  temp_dir dir;
  write_file(dir / "jobs.capnp", jobs_schema);
  write_file(dir / "jobs.jsonl", "");
  auto yaml = app_yaml(dir, 2);
  auto at = yaml.find("'{id}'");
  write_file(dir / "app.yaml", yaml.substr(0, at) + "'{nosuch}', '{name'" + yaml.substr(at + 6));
  auto lint = run_troupe({"lint", dir / "app.yaml"});
  CHECK(exit_code(lint.status) != 0);
  CHECK_THAT(lint.output, Catch::Contains("app.yaml:17") && Catch::Contains("stages[1].command") &&
                            Catch::Contains("nosuch"));
}
