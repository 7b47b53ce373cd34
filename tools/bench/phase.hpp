// What one benchmark phase is told and what it reports back.
//
// Every phase runs in a forked child process (see child.hpp), so its result crosses a pipe:
// phase_result is trivially copyable and is written to the pipe as raw bytes.
#pragma once

#include <troupe/stage.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace troupe::bench {

struct phase_options {
  std::string dir;       // the phase's own fresh directory (its data goes in dir/data)
  uint64_t records = 0;  // records to write (the phase may stop earlier at `budget`)
  uint32_t batch = 1024; // puts per transaction / batch.max_items
  uint32_t value_size = 100;
  durability mode = durability::process;
  std::chrono::seconds budget{180}; // stop and report what was done when a phase takes longer
  uint64_t max_backlog = 1000000;   // the pipeline's edges' max_records
  uint64_t retention = 10000;       // the pipeline's edges' retention.count
  bool verbose = false;             // keep the runtime's info log
  std::string pattern;              // the patterns phase: the stage between gen and count
};

struct phase_result {
  uint64_t records = 0; // records the rate is computed from
  double seconds = 0;
  bool stopped_at_budget = false;
  uint64_t backlog = 0;      // unconsumed records left in the log (the unconsumed phase)
  uint64_t file_bytes = 0;   // size of data.mdb
  uint64_t disk_bytes = 0;   // blocks allocated to data.mdb
  uint64_t record_bytes = 0; // size of one stored record (a whole Envelope for the pipeline)
  uint64_t commits = 0;      // the node's write transactions (pipeline phases)
  uint64_t flushes = 0;      // and its flushes to disk
  // Peaks of the two parts of RSS, sampled from /proc/self/status every 20 ms (child.hpp):
  // anonymous memory (heaps, stacks) and file-backed pages mapped (LMDB's map of data.mdb).
  uint64_t peak_anon_kib = 0;
  uint64_t peak_file_kib = 0;
  char error[512] = {}; // empty when the phase succeeded

  void fail(const std::string& what) { std::strncpy(error, what.c_str(), sizeof error - 1); }
  bool ok() const { return error[0] == 0; }
};
static_assert(std::is_trivially_copyable_v<phase_result>);

// (a) raw LMDB appends, as the store would do them with no runtime around (raw_lmdb.cpp).
phase_result run_raw_lmdb(const phase_options& o);
// (b) generator -> bench.pass -> bench.pass -> bench.count through a node (pipeline.cpp).
phase_result run_pipeline(const phase_options& o);
// (d) generator -> one routing stage (o.pattern, or none: "plain") -> bench.count (pipeline.cpp).
phase_result run_pattern(const phase_options& o);
// (c) a node with only the generator, whose output edge nobody consumes (pipeline.cpp).
phase_result run_unconsumed(const phase_options& o);

// Sizes of `dir`/data.mdb into `r` (file size and allocated blocks).
void measure_data_file(const std::string& dir, phase_result& r);

} // namespace troupe::bench
