// End to end: apps/nightly, a scheduled app. `troupe run` is the scheduler; each run is a child
// process with its own store. The sales come from apps/nightly/make_sales.py and the report is
// checked by apps/nightly/check.py against sqlite3 running the same aggregation in SQL; neither
// shares code with the runtime. The schedule is midnight UTC with a start the day before, so
// the run due at the last midnight counts as missed at the first start and runs at once.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <ctime>
#include <sstream>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

std::string app_dir() { return std::string(TROUPE_SOURCE_DIR) + "/apps/nightly"; }

std::string utc_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", &tm);
  return text;
}

struct nightly {
  temp_dir dir;
  // The run due at the last midnight (UTC) reads the day before's sales. (A test started in the
  // last seconds before midnight could see the next day's run instead: then it fails.)
  std::string yesterday = utc_date(std::time(nullptr) - 86400);
  nightly() {
    ::setenv("SALES_DIR", (dir / "sales").c_str(), 1);
    ::setenv("REPORT_DIR", (dir / "reports").c_str(), 1);
    ::setenv("NIGHTLY_CRON", "0 0 * * *", 1);
    ::setenv("NIGHTLY_TZ", "UTC", 1);
  }
  ~nightly() {
    for (const char* v : {"SALES_DIR", "REPORT_DIR", "NIGHTLY_CRON", "NIGHTLY_TZ"})
      ::unsetenv(v);
  }
  void make_sales(uint64_t sales, int bad) {
    auto r = run_command({"/usr/bin/env", "python3", app_dir() + "/make_sales.py", "--date",
                          yesterday, "--sales", std::to_string(sales), "--bad",
                          std::to_string(bad), "--seed", std::to_string(pick_seed()), "--out",
                          dir / "sales"});
    REQUIRE(exited_ok(r.status));
  }
  std::unique_ptr<troupe_process> scheduler(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{std::string(TROUPE_BIN_DIR) + "/troupe", "run",
                                  app_dir() + "/app.yaml", "--data-dir", dir / "data",
                                  "--set", "schedule.start=" + yesterday};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<troupe_process>(args, dir / "scheduler.log");
  }
  json state() {
    std::ifstream in(dir / "data/schedule.json");
    auto j = json::parse(in, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  bool run_ended(const char* status) {
    auto s = state();
    return s.contains("runs") && !s["runs"].empty() && s["runs"].back()["status"] == status;
  }
  int check() {
    auto r = run_command({"/usr/bin/env", "python3", app_dir() + "/check.py",
                          dir / ("sales/" + yesterday + ".jsonl"),
                          dir / ("reports/" + yesterday)});
    last_check = r.output;
    return exit_code(r.status);
  }
  std::string last_check;
};

} // namespace

TEST_CASE("the nightly app runs the run it missed once at start-up, its report matches sqlite3, "
          "and it never runs twice", "[e2e][schedule][apps]") {
  nightly app;
  app.make_sales(small_scale() ? 5000 : 20000, 8);
  auto node = app.scheduler();
  REQUIRE(wait_until([&] { return app.run_ended("done") || !node->running(); }, 120s, 20ms));
  INFO(tail_of(app.dir / "scheduler.log"));
  REQUIRE(app.run_ended("done"));
  CHECK(app.check() == 0);
  INFO(app.last_check);
  auto run = app.state()["runs"].back();
  CHECK(lines_with(app.dir / "scheduler.log", "while the node was down: it runs now") == 1);
  // The 8 malformed lines are dead letters of that run, with their reasons.
  auto dlq = run_command({std::string(TROUPE_BIN_DIR) + "/troupectl", "--data",
                          app.dir / ("data/runs/" + run["id"].get<std::string>()), "dlq", "list",
                          "read", "--json"});
  INFO(dlq.output);
  std::map<std::string, int> reasons; // dlq list --json: one object per line
  std::istringstream lines(dlq.output);
  for (std::string line; std::getline(lines, line);) {
    auto letter = json::parse(line, nullptr, false);
    REQUIRE(letter.is_object());
    auto error = letter["error"].get<std::string>();
    for (const char* why : {"'store': missing, and it is required",
                            "'cents': expected an integer, found a string", "is not JSON",
                            "a string is not closed"})
      reasons[why] += error.find(why) != std::string::npos;
  }
  CHECK(reasons == std::map<std::string, int>{{"'store': missing, and it is required", 2},
                                              {"'cents': expected an integer, found a string", 2},
                                              {"is not JSON", 2},
                                              {"a string is not closed", 2}});
  // troupe check on the scheduled app's data dir checks each run's store.
  auto checked = run_troupe({"check", app.dir / "data"});
  INFO(checked.output);
  CHECK(exit_code(checked.status) == 0);
  CHECK(checked.output.find("checking the store of each of its 1 runs") != std::string::npos);
  // troupectl on the scheduled app's data dir shows the schedule's record.
  auto shown = run_command({std::string(TROUPE_BIN_DIR) + "/troupectl", "--data",
                            app.dir / "data", "status"});
  INFO(shown.output);
  CHECK(shown.output.find("run " + run["id"].get<std::string>() + "  done") != std::string::npos);
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  CHECK(exited_ok(node->status()));

  // Started again: the run is done, so the scheduler only waits for the next one.
  auto again = app.scheduler();
  REQUIRE(wait_until([&] { return lines_with(app.dir / "scheduler.log", "next run") >= 2; }, 60s));
  again->signal(SIGTERM);
  REQUIRE(again->wait_for_exit(30s));
  CHECK(exited_ok(again->status()));
  CHECK(lines_with(app.dir / "scheduler.log", " starts (due ") == 1);
  CHECK(app.state()["runs"].size() == 1);
}

TEST_CASE("with missed: skip, a run due while the node was down is skipped and said so",
          "[e2e][schedule][apps]") {
  nightly app;
  app.make_sales(100, 0);
  auto node = app.scheduler({"--set", "schedule.missed=skip"});
  REQUIRE(wait_until([&] { return app.run_ended("skipped") || !node->running(); }, 60s, 20ms));
  INFO(tail_of(app.dir / "scheduler.log"));
  CHECK(app.run_ended("skipped"));
  CHECK(lines_with(app.dir / "scheduler.log", "skipped (missed: skip)") == 1);
  REQUIRE(wait_until([&] { return lines_with(app.dir / "scheduler.log", "next run") >= 1; }, 60s));
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  CHECK_FALSE(std::filesystem::exists(app.dir / "reports"));
  CHECK_FALSE(std::filesystem::exists(app.dir / "data/runs"));
}

TEST_CASE("a nightly run whose process and then scheduler are SIGKILLed resumes and counts "
          "nothing twice", "[e2e][schedule][apps][crash]") {
  nightly app;
  app.make_sales(small_scale() ? 100000 : 300000, 8);
  // At sync, in steps of 32 sales: a run long enough to be killed in the middle.
  std::vector<std::string> slow{"--set", "durability=sync", "--set",
                                "stages.read.batch.max_items=32"};
  auto node = app.scheduler(slow);
  auto running_pid = [&] {
    auto s = app.state();
    return s.contains("running") && s["running"].is_object() ? s["running"]["pid"].get<int>() : 0;
  };
  REQUIRE(wait_until([&] { return running_pid() > 0; }, 60s));
  int first = running_pid();
  auto id = app.state()["running"]["id"].get<std::string>();
  auto store = app.dir / ("data/runs/" + id + "/data.mdb");
  // The run's process, SIGKILLed once its store holds a few MB of sales.
  REQUIRE(wait_until([&] { return size_of(store) > (4u << 20) || running_pid() != first; }, 60s));
  REQUIRE(running_pid() == first);
  REQUIRE(::kill(first, SIGKILL) == 0);
  REQUIRE(wait_until([&] { return running_pid() != first && running_pid() != 0; }, 60s));
  INFO(tail_of(app.dir / "scheduler.log"));
  CHECK(lines_with(app.dir / "scheduler.log", "was killed by signal 9") == 1);
  // Then the scheduler itself, while the restarted run works: the run stops (it is told when
  // its parent dies) and the next scheduler resumes it.
  REQUIRE(wait_until([&] { return lines_with(app.dir / "scheduler.log", "node: app nightly") >= 2; },
                     60s));
  CHECK(killed_by(node->kill_and_reap(), SIGKILL));
  CHECK_FALSE(app.run_ended("done"));
  auto again = app.scheduler(slow);
  REQUIRE(wait_until([&] { return app.run_ended("done") || !again->running(); }, 180s, 20ms));
  REQUIRE(app.run_ended("done"));
  CHECK(lines_with(app.dir / "scheduler.log", "was under way when the node stopped") == 1);
  CHECK(app.check() == 0);
  INFO(app.last_check);
  CHECK(app.state()["runs"].size() == 1);
  again->signal(SIGTERM);
  REQUIRE(again->wait_for_exit(30s));
}

TEST_CASE("a schedule's mistakes are named with the file, line and column", "[e2e][schedule]") {
  temp_dir dir;
  write_file(dir / "app.yaml", "app: t\n"
                               "schedule:\n"
                               "  cron: \"5 4 * * sun,mon,xyz\"\n"
                               "  timezone: UTC\n"
                               "  missed: twice\n"
                               "schema: {file: " + app_dir() + "/sales.capnp, payload: Sale}\n"
                               "stages:\n"
                               "  - {name: r, type: jsonl_source, path: in.jsonl, output: e}\n"
                               "  - {name: w, type: jsonl_sink, input: e, path: out.jsonl}\n");
  auto r = run_troupe({"lint", dir / "app.yaml"});
  INFO(r.output);
  CHECK(exit_code(r.status) == 2);
  CHECK(r.output.find("app.yaml:3:26: schedule.cron: 'xyz' is not a day of week") !=
        std::string::npos);
  CHECK(r.output.find("app.yaml:4:3: schedule.timezone: unknown key 'timezone' (did you mean "
                      "'time_zone'?)") != std::string::npos);
  CHECK(r.output.find("app.yaml:5:11: schedule.missed: expected one of run_once | skip") !=
        std::string::npos);
  CHECK(r.output.find("3 problems") != std::string::npos);
  auto zone = run_troupe({"lint", dir / "app.yaml", "--set", "schedule.cron=@daily", "--set",
                          "schedule.time_zone=Europe/Pariss", "--set", "schedule.missed=skip"});
  INFO(zone.output);
  CHECK(zone.output.find("'Europe/Pariss' is not a time zone") != std::string::npos);
}

TEST_CASE("troupe reset of a scheduled app deletes its runs' stores and its record, not while "
          "the scheduler runs, and leaves the reports", "[e2e][schedule]") {
  nightly app;
  app.make_sales(200, 0);
  auto node = app.scheduler();
  REQUIRE(wait_until([&] { return app.run_ended("done") || !node->running(); }, 60s, 20ms));
  auto reset = [&] {
    return run_troupe({"reset", app_dir() + "/app.yaml", "--data-dir", app.dir / "data", "--yes"});
  };
  auto refused = reset();
  INFO(refused.output);
  CHECK(exit_code(refused.status) == 1);
  CHECK(refused.output.find("a scheduler runs the data dir") != std::string::npos);
  CHECK(std::filesystem::exists(app.dir / "data/schedule.json"));
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  auto done = reset();
  INFO(done.output);
  CHECK(exit_code(done.status) == 0);
  CHECK_FALSE(std::filesystem::exists(app.dir / "data"));
  CHECK(app.check() == 0); // the report stays
  // Started again, it has no record of the run: the missed run runs again.
  auto again = app.scheduler();
  REQUIRE(wait_until([&] { return app.run_ended("done") || !again->running(); }, 60s, 20ms));
  again->signal(SIGTERM);
  REQUIRE(again->wait_for_exit(30s));
  CHECK(lines_with(app.dir / "scheduler.log", " starts (due ") == 2);
}

TEST_CASE("a scheduled run whose input is missing is recorded as failed with the reason, and the "
          "scheduler goes on", "[e2e][schedule]") {
  nightly app; // no sales file for the day
  auto node = app.scheduler();
  REQUIRE(wait_until([&] { return app.run_ended("failed") || !node->running(); }, 60s, 20ms));
  INFO(tail_of(app.dir / "scheduler.log"));
  REQUIRE(app.run_ended("failed"));
  CHECK(app.state()["runs"].back()["why"] == "its process exited with status 1");
  CHECK(lines_with(app.dir / "scheduler.log", "no such file") >= 1); // the run's own reason
  // It waits for the next run instead of starting this one again.
  REQUIRE(wait_until([&] { return lines_with(app.dir / "scheduler.log", "next run") >= 1; }, 60s));
  CHECK(node->running());
  node->signal(SIGTERM);
  REQUIRE(node->wait_for_exit(30s));
  CHECK(exited_ok(node->status()));
  CHECK(lines_with(app.dir / "scheduler.log", " starts (due ") == 1);
}
