// What the end-to-end tests need beyond Catch2: a real `troupe run` child process, and a tiny
// JSON reader that checks the node's output without going through the code under test.
#pragma once

#include "wait.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace troupe::test {

// TROUPE_E2E_SCALE=small (the sanitizer build) shrinks the record counts, never the kills.
inline bool small_scale() {
  const char* scale = std::getenv("TROUPE_E2E_SCALE");
  return scale && std::string_view(scale) == "small";
}

// The seed of a test's random choices: TROUPE_E2E_SEED repeats a run (each test prints its seed).
inline uint64_t pick_seed() {
  if (const char* s = std::getenv("TROUPE_E2E_SEED"))
    return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

// "exit 0", "killed by signal 9 (Killed)", ... for a waitpid status.
inline std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "wait status " + std::to_string(status);
}

inline bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
inline bool killed_by(int status, int sig) { return WIFSIGNALED(status) && WTERMSIG(status) == sig; }

// The size of a file, 0 when it does not exist (yet).
inline uint64_t size_of(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

// The last `lines` lines of a (log) file, for failure messages.
inline std::string tail_of(const std::string& path, size_t lines = 40) {
  std::ifstream in{path};
  std::deque<std::string> last;
  for (std::string line; std::getline(in, line);) {
    last.push_back(std::move(line));
    if (last.size() > lines)
      last.pop_front();
  }
  std::string out = "--- last lines of " + path + "\n";
  for (const auto& line : last)
    out += line + "\n";
  return out + "---";
}

inline void append_line(const std::string& path, const std::string& line) {
  std::ofstream out{path, std::ios::app};
  out << line << "\n";
}

// Runs a shell command; its exit status (-1 when it did not exit).
inline int shell(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// How many lines of a file contain `what` (0 when the file does not exist).
inline size_t lines_with(const std::string& path, const std::string& what) {
  size_t n = 0;
  std::ifstream in{path};
  for (std::string line; std::getline(in, line);)
    n += line.find(what) != std::string::npos;
  return n;
}

// A loopback port that was free a moment ago (the node binds it next; tests take no others).
inline int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// `troupe run APP --data-dir DIR` as a child process, its stdout and stderr appended to a log
// file, with TROUPE_PLUGIN_PATH set to the build's plugins/ folder. The destructor SIGKILLs and
// reaps a child still running, so a failed REQUIRE never leaves a node behind.
// Used from the test's one thread only.
class troupe_process {
public:
  troupe_process(const std::string& app, const std::string& data_dir, const std::string& log)
      : troupe_process({std::string(TROUPE_BIN_DIR) + "/troupe", "run", app, "--data-dir", data_dir},
                       log) {}
  // Any program (args[0] a path), the same way: for the clients a test runs beside a node.
  troupe_process(std::vector<std::string> args, const std::string& log) {
    std::string exe = args.at(0);
    std::vector<std::string> env{std::string("TROUPE_PLUGIN_PATH=") + TROUPE_PLUGIN_DIR};
    for (char** e = environ; *e; ++e)
      if (std::strncmp(*e, "TROUPE_PLUGIN_PATH=", 19) != 0)
        env.emplace_back(*e);
    // Everything the child needs is built before fork: after it, only async-signal-safe calls.
    std::vector<char*> argv, envp;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0)
      throw std::runtime_error("cannot open " + log + ": " + std::strerror(errno));
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execve(exe.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    if (pid_ < 0)
      throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  }
  troupe_process(const troupe_process&) = delete;
  troupe_process& operator=(const troupe_process&) = delete;
  ~troupe_process() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      reap(0);
    }
  }

  // Whether the child is still running (reaps it if it has ended).
  bool running() { return !status_ && !reap(WNOHANG); }
  // The waitpid status once the child has ended.
  int status() const { return status_.value_or(-1); }

  void signal(int sig) { ::kill(pid_, sig); }
  pid_t pid() const { return pid_; }

  // Waits for the child to end; false if it still runs after `timeout`.
  bool wait_for_exit(std::chrono::milliseconds timeout) {
    return wait_until([&] { return !running(); }, timeout);
  }

  // SIGKILLs the child and returns its status: normally "killed by SIGKILL", unless it ended on
  // its own just before.
  int kill_and_reap() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      reap(0); // SIGKILL cannot be caught: this returns promptly
    }
    return *status_;
  }

private:
  bool reap(int flags) {
    int st = 0;
    pid_t r;
    do
      r = ::waitpid(pid_, &st, flags);
    while (r < 0 && errno == EINTR);
    if (r == pid_) {
      status_ = st;
      return true;
    }
    return false;
  }

  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs `troupe run app` `kills` times, SIGKILLing each run once the file at `grows` reaches
// the size `at(round)` gives (or the node ended by itself), then once more to its end. Returns
// how many kills hit a running node; `finished` gets the last run's status (-1 on timeout).
inline int run_with_kills(const std::string& app, const std::string& data, const std::string& log,
                          int kills, const std::string& grows,
                          const std::function<uint64_t(int round)>& at, int& finished) {
  int hit = 0;
  for (int round = 0; round < kills; ++round) {
    troupe_process node{app, data, log};
    auto size = at(round);
    if (!wait_until([&] { return size_of(grows) >= size || !node.running(); },
                    std::chrono::seconds(120)))
      break;
    hit += killed_by(node.kill_and_reap(), SIGKILL);
  }
  troupe_process node{app, data, log};
  finished = node.wait_for_exit(std::chrono::seconds(180)) ? node.status() : -1;
  return hit;
}

// What a command printed (stdout and stderr together) and its waitpid status.
struct command_result {
  int status = -1;
  std::string output;
};

// Runs `args` (args[0] a path) to its end with `input` on its stdin (a pipe, so not a
// terminal), TROUPE_PLUGIN_PATH set to the build's plugins/, in `cwd` when given.
inline command_result run_command(const std::vector<std::string>& args,
                                  const std::string& input = "", const std::string& cwd = "") {
  std::vector<std::string> env{std::string("TROUPE_PLUGIN_PATH=") + TROUPE_PLUGIN_DIR};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "TROUPE_PLUGIN_PATH=", 19) != 0)
      env.emplace_back(*e);
  std::vector<std::string> argv_store = args;
  std::vector<char*> argv, envp;
  for (auto& a : argv_store)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe failed: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0)
      ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  if (!input.empty() && ::write(in[1], input.data(), input.size()) < 0) {
    // the command did not read its input; its output says why
  }
  ::close(in[1]);
  command_result r;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0)
      r.output.append(buf, size_t(n));
  ::close(out[0]);
  while (::waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

// `troupe ARGS...` from the build.
inline command_result run_troupe(std::vector<std::string> args, const std::string& input = "",
                                 const std::string& cwd = "") {
  args.insert(args.begin(), std::string(TROUPE_BIN_DIR) + "/troupe");
  return run_command(args, input, cwd);
}

inline int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

// Waits until `troupectl --data DIR status` says the stage `group` consumed all `n` records of
// its input (read from the store, beside the running node).
inline bool wait_consumed(const std::string& data_dir, const std::string& group, uint64_t n) {
  auto want = "read by " + group + ": " + std::to_string(n) + " consumed, 0 to go";
  return wait_until([&] {
    auto status = run_command({std::string(TROUPE_BIN_DIR) + "/troupectl", "--data", data_dir, "status"});
    return status.output.find(want) != std::string::npos;
  }, std::chrono::seconds(30), std::chrono::milliseconds(20));
}

// One flat JSON object, as a map from key to value: a string value unescaped, anything else
// (numbers, true/false/null) as its raw text. Nested objects and arrays are not supported: the
// tests' outputs have none. nullopt for anything malformed. Deliberately not Cap'n Proto's JSON
// codec: the output is checked by code that shares nothing with the code that wrote it.
struct json_value {
  bool is_string = false;
  std::string text;
};
using json_object = std::map<std::string, json_value, std::less<>>;

inline std::optional<json_object> parse_flat_json(std::string_view s) {
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
      ++i;
  };
  auto parse_string = [&](std::string& out) -> bool {
    if (i >= s.size() || s[i] != '"')
      return false;
    for (++i; i < s.size(); ++i) {
      char c = s[i];
      if (c == '"') {
        ++i;
        return true;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (++i >= s.size())
        return false;
      switch (s[i]) {
        case '"': case '\\': case '/': out += s[i]; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': { // a code point, a surrogate pair for those beyond the BMP; as UTF-8
          auto hex4 = [&](size_t at) -> long {
            if (at + 4 > s.size())
              return -1;
            auto h = std::string(s.substr(at, 4));
            char* end = nullptr;
            auto v = std::strtol(h.c_str(), &end, 16);
            return end == h.c_str() + 4 ? v : -1;
          };
          long code = hex4(i + 1);
          if (code < 0 || (code >= 0xdc00 && code <= 0xdfff))
            return false;
          i += 4;
          if (code >= 0xd800 && code <= 0xdbff) {
            if (i + 2 >= s.size() || s[i + 1] != '\\' || s[i + 2] != 'u')
              return false;
            long low = hex4(i + 3);
            if (low < 0xdc00 || low > 0xdfff)
              return false;
            code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
            i += 6;
          }
          auto c = static_cast<unsigned long>(code);
          if (c < 0x80) {
            out += static_cast<char>(c);
          } else if (c < 0x800) {
            out += static_cast<char>(0xc0 | (c >> 6));
            out += static_cast<char>(0x80 | (c & 0x3f));
          } else if (c < 0x10000) {
            out += static_cast<char>(0xe0 | (c >> 12));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (c & 0x3f));
          } else {
            out += static_cast<char>(0xf0 | (c >> 18));
            out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
            out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (c & 0x3f));
          }
          break;
        }
        default: return false;
      }
    }
    return false;
  };
  json_object obj;
  skip_ws();
  if (i >= s.size() || s[i++] != '{')
    return std::nullopt;
  skip_ws();
  if (i < s.size() && s[i] == '}') {
    ++i;
  } else {
    for (;;) {
      std::string key;
      skip_ws();
      if (!parse_string(key))
        return std::nullopt;
      skip_ws();
      if (i >= s.size() || s[i++] != ':')
        return std::nullopt;
      skip_ws();
      json_value v;
      if (i < s.size() && s[i] == '"') {
        v.is_string = true;
        if (!parse_string(v.text))
          return std::nullopt;
      } else {
        auto end = s.find_first_of(",} \t\r", i);
        if (end == std::string_view::npos || end == i)
          return std::nullopt;
        v.text = std::string(s.substr(i, end - i));
        if (v.text.find_first_of("{}[]\"") != std::string::npos)
          return std::nullopt;
        i = end;
      }
      if (!obj.emplace(std::move(key), std::move(v)).second)
        return std::nullopt; // a key twice
      skip_ws();
      if (i < s.size() && s[i] == ',') {
        ++i;
        continue;
      }
      if (i < s.size() && s[i] == '}') {
        ++i;
        break;
      }
      return std::nullopt;
    }
  }
  skip_ws();
  if (i != s.size())
    return std::nullopt;
  return obj;
}

// A JSON number that must be an unsigned integer below 2^32.
inline std::optional<uint32_t> json_u32(const json_value& v) {
  if (v.is_string || v.text.empty() || v.text.size() > 10)
    return std::nullopt;
  uint64_t x = 0;
  for (char c : v.text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    x = x * 10 + static_cast<uint64_t>(c - '0');
  }
  if (x > 0xffffffffu)
    return std::nullopt;
  return static_cast<uint32_t>(x);
}

inline std::optional<double> json_double(const json_value& v) {
  if (v.is_string || v.text.empty())
    return std::nullopt;
  char* end = nullptr;
  double x = std::strtod(v.text.c_str(), &end);
  if (end != v.text.c_str() + v.text.size())
    return std::nullopt;
  return x;
}

// Splits a file's text into its lines; `complete` is false when the last line has no '\n'.
inline std::vector<std::string_view> split_lines(std::string_view text, bool& complete) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string_view::npos) {
      lines.push_back(text.substr(start));
      complete = false;
      return lines;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  complete = true;
  return lines;
}

} // namespace troupe::test
