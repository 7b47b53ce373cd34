// What troupe_json_bench measures, one function per phase; each runs in a child process of its
// own (child.hpp) and reports a phase_result (phase.hpp): records and seconds.
#pragma once

#include "phase.hpp"

#include <string>

namespace troupe::bench {

// n lines of the quickstart's Order (about 90 bytes each), as Python's json.dumps writes them,
// the same every run.
void write_orders(const std::string& path, uint64_t n);

// json_decoder alone: every line of `input` (read into memory first) into a reused message.
phase_result run_decode(const std::string& input);
// json_encoder alone: the decoded records (as flat messages in memory) into a reused string.
phase_result run_encode(const std::string& input);
// Cap'n Proto's JsonCodec decoding the same lines: what jsonl_source used before.
phase_result run_capnp_decode(const std::string& input);
// A node running jsonl_source -> jsonl_sink at `process` over `input`; records = lines written.
phase_result run_json_pipeline(const std::string& input, const std::string& dir, bool verbose);

} // namespace troupe::bench
