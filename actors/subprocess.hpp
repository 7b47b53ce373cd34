// Running one external command to completion: its standard input given, its output and error
// collected, a deadline enforced. For the work queue's command workers.
//
// The command runs in a process group of its own, so a timeout kills it and whatever it started
// (SIGKILL to the group). It inherits the environment and (unless `cwd` says) the working
// directory; SIGPIPE is back
// to its default in it. Standard output is kept whole up to `max_output` bytes (beyond that the
// run fails); of standard error the last `stderr_tail` bytes are kept, for the error message.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace troupe {

struct subprocess_result {
  bool started = false;   // false: it could not be started (`error` says why)
  bool timed_out = false;
  int exit_status = -1;   // when it exited
  int signal = 0;         // when a signal ended it
  bool output_overflow = false;
  std::string out;
  std::string err;        // its tail
  std::string error;      // why it could not start
  // "exited with status 3", "was killed by signal 11 (Segmentation fault)", "ran past its
  // timeout of 30 s and was killed", "could not start: ..."; empty on success.
  std::string failure() const;
  bool ok() const { return started && !timed_out && exit_status == 0 && !output_overflow; }
};

struct subprocess_options {
  std::chrono::milliseconds timeout{60000};
  size_t max_output = size_t{64} << 20;
  size_t stderr_tail = 4096;
  std::string cwd; // where it runs; empty: this process's working directory
};

// Runs argv[0] (looked up in PATH when it has no slash) with `input` on its standard input.
subprocess_result run_subprocess(const std::vector<std::string>& argv, const std::string& input,
                                 const subprocess_options& options);

} // namespace troupe
