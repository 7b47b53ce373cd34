// troupe_link_bench: how close a Troupe node link comes to plain CAF between two processes.
//
//   (a) raw CAF: a process publishes a counting actor on loopback; another connects and sends N
//       payloads of V bytes, 1,000 per message (a std::vector<std::string>), then asks for the
//       count. Timed in the sender, from the first send to the answer. No persistence, no acks
//       per batch: the ceiling of the transport.
//   (b) a Troupe remote edge: node a (a generator of N records with V-byte payloads) and node b
//       (a sink counting them), each a process running its view of one app; the edge between
//       them is carried by a node link (outbox = a's log, a batch per step, b's commit before its
//       answer). Timed from the start of both processes to the end of both (store open, the end
//       of the edge and the final flush included), at each durability asked for.
//   (c) the same app on one node: the edge a log in one store, no link. What (b) adds to it is
//       the link's cost; what (c) costs is the store's.
// Prints records/s for each and ratio = (b) / (a); the target is >= 0.8 at `process`. A program,
// not a test: exits 0 whatever the figures (1 when a phase failed).
#include "builtin_stages.hpp"
#include "config/app_config.hpp"
#include "net/node_view.hpp"
#include "node/node.hpp"

#include "base/log.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <CLI/CLI.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace fs = std::filesystem;
using namespace troupe;
using clock_type = std::chrono::steady_clock;

namespace {

using count_atom = caf::atom_constant<caf::atom("count")>;

int free_port() {
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

// Runs `body` in a child process; its double result comes back through a pipe (NaN: failed).
pid_t in_child(int& read_fd, const std::function<double()>& body) {
  int fds[2];
  if (pipe(fds) != 0)
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    double r = std::nan("");
    try {
      r = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "troupe_link_bench: %s\n", e.what());
    }
    if (write(fds[1], &r, sizeof r) != sizeof r)
      _exit(1);
    _exit(0);
  }
  close(fds[1]);
  read_fd = fds[0];
  return pid;
}

double result_of(pid_t pid, int fd) {
  double r = std::nan("");
  if (read(fd, &r, sizeof r) != sizeof r)
    r = std::nan("");
  close(fd);
  int status = 0;
  waitpid(pid, &status, 0);
  return r;
}

caf::actor_system_config middleman_config() {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", 2);
  return cfg;
}

// ---- (a) raw CAF

double raw_caf(uint64_t n, size_t value_size) {
  int port = free_port();
  int server_fd = -1, client_fd = -1;
  pid_t server = in_child(server_fd, [&] {
    auto cfg = middleman_config();
    caf::actor_system sys{cfg};
    auto counter = sys.spawn([](caf::event_based_actor*) {
      auto count = std::make_shared<uint64_t>(0);
      return caf::behavior{
        [=](const std::vector<std::string>& batch) { *count += batch.size(); },
        [=](count_atom) { return *count; },
      };
    });
    if (!sys.middleman().publish(counter, static_cast<uint16_t>(port), "127.0.0.1", true))
      return std::nan("");
    caf::scoped_actor self{sys};
    self->monitor(counter);
    self->receive([](caf::down_msg&) {}); // until the client stops it
    return 0.0;
  });
  pid_t client = in_child(client_fd, [&] {
    auto cfg = middleman_config();
    caf::actor_system sys{cfg};
    caf::expected<caf::actor> remote = caf::sec::cannot_connect_to_node;
    for (int i = 0; i < 200 && !remote; ++i) { // until the server has published
      remote = sys.middleman().remote_actor("127.0.0.1", static_cast<uint16_t>(port));
      if (!remote)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!remote)
      return std::nan("");
    caf::scoped_actor self{sys};
    std::vector<std::string> batch(1000, std::string(value_size, 'x'));
    auto start = clock_type::now();
    for (uint64_t sent = 0; sent < n; sent += batch.size())
      self->send(*remote, batch);
    uint64_t got = 0;
    self->request(*remote, std::chrono::minutes(5), count_atom::value)
      .receive([&](uint64_t c) { got = c; }, [&](caf::error&) {});
    double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    self->send_exit(*remote, caf::exit_reason::user_shutdown);
    return got >= n ? static_cast<double>(got) / seconds : std::nan("");
  });
  double rate = result_of(client, client_fd);
  result_of(server, server_fd);
  return rate;
}

// ---- (b) a Troupe remote edge

std::atomic<uint64_t> counted{0};

class count_sink : public stage {
public:
  explicit count_sink(const params&) {}
  void process_batch(context&, const batch& records) override { counted += records.size(); }
};

// One node of the app in dir/app.yaml (`name`; empty: the app as one node), run to its end in
// this process: the records the count sink saw.
double run_one_node(const fs::path& dir, const std::string& name, std::chrono::seconds timeout) {
  registry reg;
  register_builtin_stages(reg);
  reg.add_sink<count_sink>("linkbench.count");
  auto loaded = load_app((dir / "app.yaml").string(), reg);
  if (!loaded.app)
    throw std::runtime_error(loaded.issues.empty() ? "bad app" : loaded.issues[0].to_string());
  auto view = name.empty() ? *loaded.app : net::node_view(*loaded.app, name, reg);
  auto cfg = middleman_config();
  cfg.set("middleman.heartbeat-interval", caf::timespan{timeout / 5});
  cfg.set("middleman.connection-timeout", caf::timespan{timeout});
  caf::actor_system sys{cfg};
  auto outcome = run_node(sys, view);
  if (outcome.exit_code != 0)
    throw std::runtime_error(outcome.message);
  return static_cast<double>(counted.load());
}

// `local`: the same app on one node, the edge a log in one store (the ceiling of (b)).
double remote_edge(uint64_t n, size_t value_size, uint32_t partitions, const std::string& mode,
                   const fs::path& dir, bool local = false) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream{dir / "app.yaml"}
    << "app: linkbench\ndurability: " << mode << "\ndata_dir: " << (dir / "data").string()
    << "\nadmin: {enabled: false}\n"
    << (local ? "" : "nodes:\n  a: {address: 127.0.0.1:" + std::to_string(free_port()) + "}\n"
                     "  b: {address: 127.0.0.1:" + std::to_string(free_port()) + "}\n"
                     "links: {timeout: 10s, linger: 2s}\n")
    << "edges: {raw: {partitions: " << partitions << "}}\n"
    << "stages:\n"
    << "  - {name: gen, " << (local ? "" : "node: a, ") << "type: generator, count: " << n
    << ", payload_size: " << value_size << ", output: raw}\n"
    << "  - {name: sink, " << (local ? "" : "node: b, ") << "type: linkbench.count, input: raw}\n";
  auto node = [&](const std::string& name) {
    return [&, name] { return run_one_node(dir, local ? "" : name, std::chrono::seconds(10)); };
  };
  auto start = clock_type::now();
  int fa = -1, fb = -1;
  pid_t b = in_child(fb, node("b"));
  pid_t a = local ? -1 : in_child(fa, node("a"));
  double got = result_of(b, fb);
  if (!local)
    result_of(a, fa);
  double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  fs::remove_all(dir);
  return got >= static_cast<double>(n) ? got / seconds : std::nan("");
}

// (d) a chain of k nodes: a generator on the first, a copier on each one between, the count
// on the last: k - 1 links in a row. Records/s through all of them, from the start of the
// first process to the end of the last.
double chain(uint64_t n, size_t value_size, unsigned k, const fs::path& dir) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream y{dir / "app.yaml"};
    y << "app: chain\ndurability: process\ndata_dir: " << (dir / "data").string()
      << "\nadmin: {enabled: false}\nnodes:\n";
    for (unsigned i = 0; i < k; ++i)
      y << "  n" << i << ": {address: 127.0.0.1:" << free_port() << "}\n";
    y << "links: {timeout: 30s, linger: 2s}\nstages:\n"
      << "  - {name: gen, node: n0, type: generator, count: " << n << ", payload_size: "
      << value_size << ", output: e0}\n";
    for (unsigned i = 1; i + 1 < k; ++i)
      y << "  - {name: copy" << i << ", node: n" << i << ", type: copier, input: e" << i - 1
        << ", outputs: {out: e" << i << "}}\n";
    y << "  - {name: sink, node: n" << k - 1 << ", type: linkbench.count, input: e" << k - 2
      << "}\n";
  }
  std::vector<std::pair<pid_t, int>> nodes;
  auto start = clock_type::now();
  for (unsigned i = k; i-- > 0;) {
    int fd = -1;
    auto name = "n" + std::to_string(i);
    pid_t pid =
      in_child(fd, [&, name] { return run_one_node(dir, name, std::chrono::seconds(30)); });
    nodes.emplace_back(pid, fd);
  }
  double got = result_of(nodes.front().first, nodes.front().second); // the last node: the count
  for (size_t i = 1; i < nodes.size(); ++i)
    result_of(nodes[i].first, nodes[i].second);
  double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  fs::remove_all(dir);
  return got >= static_cast<double>(n) ? got / seconds : std::nan("");
}

} // namespace

int main(int argc, char** argv) {
  CLI::App cli{"troupe_link_bench: plain CAF between two processes vs. a Troupe node link"};
  uint64_t records = 1000000;
  size_t value_size = 100;
  int repeat = 1;
  std::vector<std::string> modes{"process", "sync"};
  std::string dir = "bench-data";
  std::vector<uint32_t> partitions{1, 4};
  std::vector<unsigned> chains;
  cli.add_option("--records", records, "records per phase (default 1,000,000)");
  cli.add_option("--value-size", value_size, "payload bytes (default 100)");
  cli.add_option("--repeat", repeat, "runs of each phase; the fastest counts (default 1)");
  cli.add_option("--modes", modes, "durabilities of (b) (default process,sync)")->delimiter(',');
  cli.add_option("--partitions", partitions, "partition counts of (b)'s edge: a batch in flight "
                                             "per partition (default 1,4)")
    ->delimiter(',');
  cli.add_option("--chain", chains, "(d): chains of these many nodes, e.g. 2,4,8 (default none)")
    ->delimiter(',');
  cli.add_option("--dir", dir, "where (b) keeps its nodes' data (default ./bench-data)");
  CLI11_PARSE(cli, argc, argv);
  set_log_level(log_level::warn);

  auto best = [&](const std::function<double()>& run) {
    double top = std::nan("");
    for (int i = 0; i < repeat; ++i) {
      double r = run();
      if (!std::isnan(r) && (std::isnan(top) || r > top))
        top = r;
    }
    return top;
  };
  int failures = 0;
  double raw = best([&] { return raw_caf(records, value_size); });
  std::printf("(a) raw CAF, 1000 x %zu B per message    %12.0f records/s\n", value_size, raw);
  failures += std::isnan(raw);
  for (const auto& mode : modes)
    for (auto parts : partitions) {
      double one = best([&] {
        return remote_edge(records, value_size, parts, mode, fs::absolute(dir) / "local", true);
      });
      failures += std::isnan(one);
      std::printf("(c) one node at %-8s %u partition%s      %12.0f records/s   (b)'s ceiling\n",
                  mode.c_str(), parts, parts == 1 ? " " : "s", one);
      double link = best([&] {
        return remote_edge(records, value_size, parts, mode, fs::absolute(dir) / ("link-" + mode));
      });
      failures += std::isnan(link);
      std::printf("(b) node link at %-8s %u partition%s     %12.0f records/s   ratio %.2f%s\n",
                  mode.c_str(), parts, parts == 1 ? " " : "s", link, link / raw,
                  mode == "process" ? (link / raw >= 0.8 ? "  PASS (>= 0.8)" : "  FAIL (< 0.8)")
                                    : "");
    }
  for (auto k : chains) {
    if (k < 2)
      continue;
    double rate = best([&] { return chain(records, value_size, k, fs::absolute(dir) / "chain"); });
    failures += std::isnan(rate);
    std::printf("(d) chain of %u nodes at process, %u links %12.0f records/s\n", k, k - 1, rate);
  }
  std::error_code ec;
  fs::remove(dir, ec); // when empty
  return failures ? 1 : 0;
}
