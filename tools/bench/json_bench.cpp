// troupe_json_bench: JSON lines through jsonl_source -> jsonl_sink, against `jq -c . FILE` on
// the same file in the same run, and the codec alone in each direction. See README.md.
//
//   troupe_json_bench [--lines N] [--dir DIR] [--keep] [--repeat K] [--verbose]
//                     [--phases jq,decode,encode,capnp,pipeline]
//
// Exit codes: 0 whatever the figures (a benchmark, not a test); 1 a phase crashed or failed;
// 64 bad command line.
#include "child.hpp"
#include "json_phases.hpp"

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace fs = std::filesystem;
using namespace troupe::bench;

namespace {

constexpr double target_ratio = 4.0; // the pipeline's lines/s over jq's

std::string load_average() {
  std::string s;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    char buf[128] = {};
    if (std::fgets(buf, sizeof buf, f))
      s = buf;
    std::fclose(f);
  }
  while (!s.empty() && s.back() == '\n')
    s.pop_back();
  return s;
}

double rate_of(const phase_result& r) { return r.seconds > 0 ? r.records / r.seconds : 0; }

// `jq -c . input > /dev/null`, timed from spawn to exit; records = lines of the input.
child_report run_jq(const std::string& input, uint64_t lines) {
  child_report rep;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::string a0 = "jq", a1 = "-c", a2 = ".";
  std::string a3 = input;
  char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), nullptr};
  auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "jq", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    rep.crash = "cannot run jq (is it installed? tools/install-deps.sh adds it)";
    return rep;
  }
  int status = 0;
  struct rusage usage {};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  rep.result.seconds =
    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rep.result.records = lines;
  rep.peak_rss_mib = usage.ru_maxrss / 1024.0;
  auto secs = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  rep.cpu_seconds = secs(usage.ru_utime) + secs(usage.ru_stime);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    rep.crash = "jq failed";
  return rep;
}

struct row {
  std::string label, unit;
  child_report report;
};

} // namespace

int main(int argc, char** argv) {
  uint64_t lines = 1000000;
  std::string dir = "bench-data";
  bool keep = false, verbose = false;
  unsigned repeat = 1;
  std::vector<std::string> phases{"jq", "decode", "encode", "capnp", "pipeline"};
  CLI::App cli{"troupe_json_bench: JSON lines through jsonl_source -> jsonl_sink, against jq"};
  cli.add_option("--lines", lines, "lines of the quickstart's Order (1000000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  cli.add_option("--dir", dir, "parent of the run's fresh data directory (./bench-data)");
  cli.add_flag("--keep", keep, "keep the input, output and data directories");
  cli.add_option("--repeat", repeat, "runs of each phase; the fastest is reported (1)")
      ->check(CLI::Range(1u, 100u));
  cli.add_option("--phases", phases, "phases to run (jq,decode,encode,capnp,pipeline)")
      ->delimiter(',');
  cli.add_flag("--verbose", verbose, "keep the runtime's info log on stderr");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    cli.exit(e);
    return 64;
  }
  for (const auto& p : phases)
    if (p != "jq" && p != "decode" && p != "encode" && p != "capnp" && p != "pipeline") {
      std::cerr << "troupe_json_bench: --phases: unknown phase '" << p << "'\n";
      return 64;
    }
  auto wants = [&](const char* p) { return std::find(phases.begin(), phases.end(), p) != phases.end(); };

  std::error_code ec;
  bool made_parent = !fs::exists(dir);
  auto run_dir = fs::absolute(fs::path{dir} / ("json-" + std::to_string(std::time(nullptr)) +
                                               "-" + std::to_string(::getpid())));
  fs::create_directories(run_dir, ec);
  if (ec) {
    std::cerr << "troupe_json_bench: cannot create " << run_dir << ": " << ec.message() << "\n";
    return 1;
  }
  auto input = (run_dir / "orders.jsonl").string();
  write_orders(input, lines);
  std::printf("# %llu lines of Order, %llu bytes (%.1f per line), %u run(s) per phase, %u "
              "cores\n# load average at start: %s\n",
              static_cast<unsigned long long>(lines),
              static_cast<unsigned long long>(fs::file_size(input)),
              static_cast<double>(fs::file_size(input)) / lines, repeat,
              std::thread::hardware_concurrency(), load_average().c_str());
  std::fflush(stdout);

  std::vector<row> rows;
  std::vector<std::string> notes;
  // Each phase `repeat` times; the fastest run is kept (the least disturbed by other processes).
  auto measure = [&](const std::string& label, const std::string& unit, auto fn) -> row& {
    std::optional<child_report> best;
    std::string rates;
    for (unsigned k = 0; k < repeat; ++k) {
      std::fprintf(stderr, "troupe_json_bench: %s ...\n", label.c_str());
      auto rep = fn(k);
      if (!rep.ok()) {
        best = rep;
        break;
      }
      rates += (rates.empty() ? "" : ", ") + std::to_string(static_cast<uint64_t>(rate_of(rep.result)));
      if (!best || rate_of(rep.result) > rate_of(best->result))
        best = rep;
    }
    if (repeat > 1 && best->ok())
      notes.push_back(label + ": fastest of " + std::to_string(repeat) + " runs; each: " + rates);
    rows.push_back({label, unit, *best});
    return rows.back();
  };
  std::optional<double> jq_rate, pipeline_rate;
  if (wants("jq")) {
    auto& r = measure("jq -c . FILE > /dev/null", "lines/s", [&](unsigned) { return run_jq(input, lines); });
    if (r.report.ok())
      jq_rate = rate_of(r.report.result);
  }
  if (wants("decode"))
    measure("decode only (json_decoder)", "records/s",
            [&](unsigned) { return run_in_child([&] { return run_decode(input); }); });
  if (wants("encode"))
    measure("encode only (json_encoder)", "records/s",
            [&](unsigned) { return run_in_child([&] { return run_encode(input); }); });
  if (wants("capnp"))
    measure("capnp::JsonCodec decode (old)", "records/s",
            [&](unsigned) { return run_in_child([&] { return run_capnp_decode(input); }); });
  if (wants("pipeline")) {
    auto& r = measure("jsonl_source -> jsonl_sink", "lines/s", [&](unsigned k) {
      auto sub = (run_dir / ("pipeline-" + std::to_string(k))).string();
      fs::create_directories(sub, ec);
      auto rep = run_in_child([&] { return run_json_pipeline(input, sub, verbose); });
      if (rep.ok() && rep.result.records != lines)
        rep.crash = "the sink wrote " + std::to_string(rep.result.records) + " of " +
                    std::to_string(lines) + " lines";
      if (!keep)
        fs::remove_all(sub, ec);
      return rep;
    });
    if (r.report.ok())
      pipeline_rate = rate_of(r.report.result);
  }

  std::printf("\n# load average at end: %s\n\n", load_average().c_str());
  std::printf("%-32s %-10s %-9s %-12s %-10s %-12s %s\n", "phase", "records", "seconds", "rate",
              "unit", "peak_rss_MB", "cpu_s");
  for (const auto& r : rows) {
    const auto& res = r.report.result;
    if (!r.report.ok()) {
      std::printf("%-32s FAILED: %s\n", r.label.c_str(),
                  r.report.crash.empty() ? res.error : r.report.crash.c_str());
      continue;
    }
    std::printf("%-32s %-10llu %-9.2f %-12.0f %-10s %-12.1f %.2f\n", r.label.c_str(),
                static_cast<unsigned long long>(res.records), res.seconds, rate_of(res),
                r.unit.c_str(), r.report.peak_rss_mib, r.report.cpu_seconds);
  }
  std::printf("\n");
  for (const auto& n : notes)
    std::printf("note: %s\n", n.c_str());
  std::printf("note: the pipeline runs at durability process with the default batch.max_items "
              "(1024); its seconds include the node's start and its final flush\n\n");
  if (jq_rate && pipeline_rate)
    std::printf("target jsonl_source -> jsonl_sink >= %.0fx jq: %s (%.2fx)\n", target_ratio,
                *pipeline_rate >= target_ratio * *jq_rate ? "PASS" : "FAIL",
                *pipeline_rate / *jq_rate);
  else
    std::printf("target jsonl_source -> jsonl_sink >= %.0fx jq: not measured\n", target_ratio);
  if (!keep) {
    fs::remove_all(run_dir, ec);
    if (made_parent)
      fs::remove(dir, ec);
  }
  bool failed = std::any_of(rows.begin(), rows.end(), [](const row& r) { return !r.report.ok(); });
  return failed ? 1 : 0;
}
