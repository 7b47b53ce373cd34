// troupe_bench: how close the runtime comes to what LMDB alone can do, and what it costs in
// memory. See README.md beside this file for what each phase measures and how to read it.
//
//   troupe_bench [--records N] [--batch B] [--value-size V] [--modes process,sync]
//                [--dir DIR] [--keep] [--quick] [--budget S] [--repeat K]
//                [--phases raw,pipeline,unconsumed,patterns,queue,streams] [--max-backlog M]
//                [--retention R] [--verbose]
//
// Exit codes: 0 whatever the figures (a benchmark, not a test); 1 a phase crashed or failed;
// 64 bad command line.
#include "child.hpp"
#include "phase.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace troupe::bench;

namespace {

// gen -> pass -> pass -> count against raw appends at the same durability.
constexpr double process_target = 0.35;
constexpr double sync_target = 0.8;
constexpr double pattern_target = 0.7; // a routing stage against none (the batch-patterns issue)
constexpr double queue_target = 100000; // in-process tasks/s at sync (the batch-patterns issue)
constexpr double sequence_target = 0.7;   // the sequence stage against none (the streams issue)
constexpr double fanout_target = 350000;  // deliveries/s to 4 and 16 groups (the streams issue)
constexpr double rss_target_mib = 256;
constexpr uint64_t rss_target_records = 10000000;

struct row {
  std::string phase;
  troupe::durability mode;
  child_report report;
  std::optional<double> ratio; // to the raw rate at the same durability
};

const char* mode_name(troupe::durability m) {
  return m == troupe::durability::sync ? "sync" : "process";
}

double rate_of(const phase_result& r) {
  return r.seconds > 0 ? static_cast<double>(r.records) / r.seconds : 0;
}

std::string fixed(double x, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

std::string mib(uint64_t bytes) {
  return fixed(static_cast<double>(bytes) / (1024.0 * 1024.0), 1) + " MiB";
}

void print_table(const std::vector<row>& rows) {
  std::printf("%-28s %-11s %-11s %-9s %-11s %-13s %-12s %-12s %s\n", "phase", "durability",
              "records", "seconds", "records/s", "ratio_to_raw", "peak_rss_MB", "(anon/file)",
              "cpu_s");
  for (const auto& r : rows) {
    const auto& res = r.report.result;
    if (!r.report.ok()) {
      std::printf("%-28s %-11s FAILED: %s\n", r.phase.c_str(), mode_name(r.mode),
                  r.report.crash.empty() ? res.error : r.report.crash.c_str());
      continue;
    }
    auto split = fixed(res.peak_anon_kib / 1024.0, 1) + "/" + fixed(res.peak_file_kib / 1024.0, 1);
    std::printf("%-28s %-11s %-11llu %-9s %-11s %-13s %-12s %-12s %s\n", r.phase.c_str(),
                mode_name(r.mode), static_cast<unsigned long long>(res.records),
                fixed(res.seconds, 2).c_str(), fixed(rate_of(res), 0).c_str(),
                r.ratio ? fixed(*r.ratio, 3).c_str() : "", fixed(r.report.peak_rss_mib, 1).c_str(),
                split.c_str(), fixed(r.report.cpu_seconds, 2).c_str());
  }
}

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

std::string pass_fail(bool ok) {
  return ok ? "PASS" : "FAIL";
}

} // namespace

int main(int argc, char** argv) {
  phase_options base;
  base.records = 10000000;
  std::vector<std::string> modes{"process", "sync"};
  std::vector<std::string> phases{"raw", "pipeline", "unconsumed"};
  std::string dir = "bench-data";
  bool keep = false, quick = false;
  uint64_t budget_s = 180;
  unsigned repeat = 1;

  CLI::App cli{"troupe_bench: raw LMDB appends vs. a durable troupe pipeline, and peak RSS"};
  auto* records_opt = cli.add_option("--records", base.records, "records per phase (10M)");
  cli.add_option("--batch", base.batch, "puts per transaction and batch.max_items (1024)")
      ->check(CLI::Range(1u, 1u << 20));
  cli.add_option("--value-size", base.value_size, "bytes per value / generator payload (100)")
      ->check(CLI::Range(1u, 1u << 20));
  cli.add_option("--modes", modes, "durabilities to measure (process,sync)")->delimiter(',');
  cli.add_option("--phases", phases, "phases to run (raw,pipeline,unconsumed,patterns,queue,streams)")
      ->delimiter(',');
  cli.add_option("--dir", dir, "parent of the run's fresh data directory (./bench-data)");
  cli.add_flag("--keep", keep, "keep the data directories");
  cli.add_flag("--quick", quick, "1M records instead of 10M: a smoke run");
  cli.add_option("--budget", budget_s,
                 "seconds a phase may take before it is stopped and measured as far as it got "
                 "(180)");
  cli.add_option("--repeat", repeat, "runs of each phase; the fastest is reported (1)")
      ->check(CLI::Range(1u, 100u));
  cli.add_option("--max-backlog", base.max_backlog, "the pipeline edges' max_records (1000000)");
  cli.add_option("--retention", base.retention, "the pipeline edges' retention.count (10000)");
  cli.add_flag("--verbose", base.verbose, "keep the runtime's info log on stderr");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    cli.exit(e);
    return 64;
  }
  if (quick && records_opt->count() == 0)
    base.records = 1000000;
  base.budget = std::chrono::seconds{budget_s};
  std::vector<troupe::durability> mode_list;
  for (const auto& m : modes) {
    if (m == "process")
      mode_list.push_back(troupe::durability::process);
    else if (m == "sync")
      mode_list.push_back(troupe::durability::sync);
    else {
      std::cerr << "troupe_bench: --modes: unknown durability '" << m << "' (process, sync)\n";
      return 64;
    }
  }
  auto wants = [&](const char* p) {
    return std::find(phases.begin(), phases.end(), p) != phases.end();
  };
  for (const auto& p : phases)
    if (p != "raw" && p != "pipeline" && p != "unconsumed" && p != "patterns" &&
        p != "queue" && p != "streams") {
      std::cerr << "troupe_bench: --phases: unknown phase '" << p << "'\n";
      return 64;
    }

  std::error_code ec;
  bool made_parent = !fs::exists(dir);
  auto run_dir = fs::absolute(fs::path{dir} / ("run-" + std::to_string(std::time(nullptr)) + "-" +
                                               std::to_string(::getpid())));
  fs::create_directories(run_dir, ec);
  if (ec) {
    std::cerr << "troupe_bench: cannot create " << run_dir << ": " << ec.message() << "\n";
    return 1;
  }

  std::ostringstream cmd;
  for (int i = 0; i < argc; ++i)
    cmd << (i ? " " : "") << argv[i];
  std::printf("# %s\n", cmd.str().c_str());
  std::printf("# records %llu, batch %u, value size %u B, budget %llu s per phase, %u run(s) per "
              "phase, %u cores, data in %s\n",
              static_cast<unsigned long long>(base.records), base.batch, base.value_size,
              static_cast<unsigned long long>(budget_s), repeat,
              std::thread::hardware_concurrency(), run_dir.c_str());
  std::printf("# load average at start: %s\n", load_average().c_str());
  std::fflush(stdout);

  std::vector<row> rows;
  std::vector<std::string> notes;
  // Runs a phase `repeat` times, each in a fresh child and directory, and keeps the fastest
  // run (the one least disturbed by other processes); a failed run ends the repeats.
  auto run = [&](const std::string& label, const std::string& sub, troupe::durability m,
                 phase_result (*fn)(const phase_options&)) -> row& {
    std::optional<child_report> best;
    std::string rates;
    for (unsigned k = 0; k < repeat; ++k) {
      phase_options o = base;
      o.mode = m;
      o.dir = (run_dir / (sub + "-" + std::to_string(k))).string();
      fs::create_directories(o.dir, ec);
      std::fprintf(stderr, "troupe_bench: %s (%s)%s ...\n", label.c_str(), mode_name(m),
                   repeat > 1
                       ? (" run " + std::to_string(k + 1) + "/" + std::to_string(repeat)).c_str()
                       : "");
      auto report = run_in_child([&] { return fn(o); });
      if (!keep)
        fs::remove_all(o.dir, ec);
      if (!report.ok()) {
        std::fprintf(stderr, "troupe_bench:   FAILED\n");
        best = report;
        break;
      }
      std::fprintf(stderr, "troupe_bench:   %llu records in %.2f s, peak RSS %.1f MiB\n",
                   static_cast<unsigned long long>(report.result.records), report.result.seconds,
                   report.peak_rss_mib);
      rates += (rates.empty() ? "" : ", ") + fixed(rate_of(report.result), 0);
      if (!best || rate_of(report.result) > rate_of(best->result))
        best = report;
    }
    rows.push_back({label, m, *best, std::nullopt});
    auto& r = rows.back();
    if (repeat > 1 && r.report.ok())
      notes.push_back(label + " (" + mode_name(m) + "): fastest of " + std::to_string(repeat) +
                      " runs; records/s of each: " + rates);
    if (r.report.result.stopped_at_budget)
      notes.push_back(label + " (" + mode_name(m) + ") stopped at the " + std::to_string(budget_s) +
                      " s budget after " + std::to_string(r.report.result.records) +
                      " records; its rate is over those");
    return r;
  };

  std::optional<double> ratio_process, ratio_sync;
  for (auto m : mode_list) {
    std::optional<double> raw_rate;
    if (wants("raw")) {
      auto& r = run("raw lmdb appends", std::string{"raw-"} + mode_name(m), m, run_raw_lmdb);
      if (r.report.ok())
        raw_rate = rate_of(r.report.result);
    }
    if (wants("pipeline")) {
      auto& r =
          run("pipeline gen->pass->pass->count", std::string{"pipeline-"} + mode_name(m), m,
              run_pipeline);
      if (r.report.ok()) {
        if (raw_rate && *raw_rate > 0) {
          r.ratio = rate_of(r.report.result) / *raw_rate;
          (m == troupe::durability::sync ? ratio_sync : ratio_process) = r.ratio;
        }
        const auto& res = r.report.result;
        double per_million = res.records > 0 ? 1e6 / static_cast<double>(res.records) : 0;
        notes.push_back(std::string{"pipeline ("} + mode_name(m) + "): each stored record is " +
                        std::to_string(res.record_bytes) + " B (Envelope with a " +
                        std::to_string(base.value_size) + " B body); data.mdb ends at " +
                        mib(res.file_bytes) + "; per 1M records through the 3 edges: " +
                        fixed(static_cast<double>(res.commits) * per_million, 0) +
                        " commits, " + fixed(static_cast<double>(res.flushes) * per_million, 0) +
                        " flushes to disk");
      }
    }
  }
  // Each routing stage between the generator and the counting sink, against none at all, at the
  // first durability asked for: its records/s as a ratio to the plain pipeline's.
  std::vector<std::pair<std::string, double>> pattern_ratios;
  if (wants("patterns")) {
    auto m = mode_list.empty() ? troupe::durability::process : mode_list.front();
    std::optional<double> plain;
    for (const char* x : {"plain", "copier", "filter", "splitter", "sharder", "merger"}) {
      base.pattern = x;
      auto& r = run(std::string{"pattern gen->"} + x + "->count", std::string{"pattern-"} + x, m,
                    run_pattern);
      if (!r.report.ok())
        continue;
      if (!plain) {
        plain = rate_of(r.report.result);
        r.phase = "pattern gen->count (plain)";
      } else if (*plain > 0) {
        r.ratio = rate_of(r.report.result) / *plain;
        pattern_ratios.emplace_back(x, *r.ratio);
      }
    }
    base.pattern.clear();
  }
  // A work queue of trivial in-process tasks (2 workers leasing from one partition) at `sync`,
  // against the plain pipeline at `sync`: tasks/s end to end.
  std::optional<double> queue_rate, queue_ratio;
  if (wants("queue")) {
    std::optional<double> plain;
    for (const char* x : {"plain", "queue"}) {
      base.pattern = x;
      auto& r = run(std::string{"queue gen->"} + x + "->count", std::string{"queue-"} + x,
                    troupe::durability::sync, run_pattern);
      if (!r.report.ok())
        continue;
      if (!plain) {
        plain = rate_of(r.report.result);
        r.phase = "queue gen->count (plain)";
      } else {
        queue_rate = rate_of(r.report.result);
        if (*plain > 0)
          r.ratio = queue_ratio = *queue_rate / *plain;
      }
    }
    base.pattern.clear();
  }
  // Streams, at the first durability asked for: the sequence stage on 1% repeats and 1% swaps
  // against the plain pipeline, and one edge read by 4 and by 16 groups (deliveries/s).
  std::optional<double> sequence_ratio;
  std::vector<std::pair<std::string, double>> fanout_rates;
  if (wants("streams")) {
    auto m = mode_list.empty() ? troupe::durability::process : mode_list.front();
    std::optional<double> plain;
    for (const char* x : {"plain", "sequence", "fanout4", "fanout16"}) {
      base.pattern = x;
      auto& r = run(std::string{"streams gen->"} + x + "->count", std::string{"streams-"} + x, m,
                    run_pattern);
      if (!r.report.ok())
        continue;
      auto rate = rate_of(r.report.result);
      if (!plain) {
        plain = rate;
        r.phase = "streams gen->count (plain)";
      } else if (std::string{x} == "sequence" && *plain > 0) {
        r.ratio = sequence_ratio = rate / *plain;
      } else if (std::string{x} != "sequence") {
        r.phase = std::string{"streams gen->"} + x + " (deliveries)";
        fanout_rates.emplace_back(x, rate);
      }
    }
    base.pattern.clear();
  }
  std::optional<child_report> unconsumed;
  if (wants("unconsumed")) {
    auto m = mode_list.empty() ? troupe::durability::process : mode_list.front();
    auto label = base.records >= 1000000 && base.records % 1000000 == 0
                     ? std::to_string(base.records / 1000000) + "M unconsumed in a log"
                     : std::to_string(base.records) + " unconsumed in a log";
    auto& r = run(label, "unconsumed", m, run_unconsumed);
    unconsumed = r.report;
    if (r.report.ok())
      notes.push_back(label + ": backlog read back " + std::to_string(r.report.result.backlog) +
                      " records of " + std::to_string(r.report.result.record_bytes) +
                      " B; data.mdb " + mib(r.report.result.file_bytes) + " (" +
                      mib(r.report.result.disk_bytes) + " allocated)");
  }

  std::printf("\n# load average at end: %s (other processes on these cores slow every phase)\n\n",
              load_average().c_str());
  print_table(rows);
  std::printf("\n");
  for (const auto& n : notes)
    std::printf("note: %s\n", n.c_str());
  std::printf("note: raw lmdb appends are %u-byte values in transactions of %u; at `process` they "
              "are forced to disk every second and at the end, as the node's writer does\n",
              base.value_size, base.batch);
  std::printf("\n");
  auto ratio_line = [&](const char* name, double target, const std::optional<double>& got) {
    if (got)
      std::printf("target %s ratio >= %.2f: %s (%.3f)\n", name, target,
                  pass_fail(*got >= target).c_str(), *got);
    else
      std::printf("target %s ratio >= %.2f: not measured\n", name, target);
  };
  ratio_line("process", process_target, ratio_process);
  ratio_line("sync", sync_target, ratio_sync);
  for (const auto& [x, ratio] : pattern_ratios)
    std::printf("target %s ratio to plain >= %.2f: %s (%.3f)\n", x.c_str(), pattern_target,
                pass_fail(ratio >= pattern_target).c_str(), ratio);
  if (queue_rate)
    std::printf("target work queue tasks/s at sync >= %.0f: %s (%.0f tasks/s, %.3f of plain)\n",
                queue_target, pass_fail(*queue_rate >= queue_target).c_str(), *queue_rate,
                queue_ratio.value_or(0));
  if (sequence_ratio)
    std::printf("target sequence ratio to plain >= %.2f: %s (%.3f)\n", sequence_target,
                pass_fail(*sequence_ratio >= sequence_target).c_str(), *sequence_ratio);
  for (const auto& [x, rate] : fanout_rates)
    std::printf("target %s deliveries/s >= %.0f: %s (%.0f)\n", x.c_str(), fanout_target,
                pass_fail(rate >= fanout_target).c_str(), rate);
  if (unconsumed && unconsumed->ok()) {
    bool full = unconsumed->result.records >= rss_target_records;
    std::printf(
        "target peak RSS <= %.0f MB with 10M unconsumed: %s (%.1f MB with %llu unconsumed%s)\n",
        rss_target_mib,
        full ? pass_fail(unconsumed->peak_rss_mib <= rss_target_mib).c_str() : "not measured",
        unconsumed->peak_rss_mib, static_cast<unsigned long long>(unconsumed->result.records),
        full ? "" : "; the target needs 10M records, the default --records");
  } else {
    std::printf("target peak RSS <= %.0f MB with 10M unconsumed: not measured\n", rss_target_mib);
  }

  if (!keep) {
    fs::remove_all(run_dir, ec);
    if (made_parent)
      fs::remove(dir, ec); // only if empty
  }
  bool failed = std::any_of(rows.begin(), rows.end(), [](const row& r) { return !r.report.ok(); });
  return failed ? 1 : 0;
}
