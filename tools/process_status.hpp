// How a child process ended, in words: "exited with status 1", "was killed by signal 9
// (Killed)". For the tools that supervise child processes (troupe_schedule, troupe_launch).
#pragma once

#include <sys/wait.h>

#include <cstring>
#include <string>

namespace troupe::cli {

inline std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "ended with wait status " + std::to_string(status);
}

} // namespace troupe::cli
