// End to end: data dirs damaged on disk the ways disks and copies damage them (a file cut to
// 8 KiB, 12,345 bytes cut from its end, 64 bits flipped at a seed, the data file deleted) are
// refused with a message and a non-zero exit, and nothing downstream is written from damaged
// data: every line of the output, before and after, is what the oracle says it must be.
//
// The app: generator -> e2e.running (a running sum per bucket) -> jsonl_sink, stopped by SIGKILL
// a third of the way, so the data dir holds logs, cursors and state of every kind.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>

namespace fs = std::filesystem;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t records = 300'000;

std::string app_yaml(const std::string& out) {
  std::ostringstream y;
  y << "app: damage\n"
    << "schema: {file: " << TROUPE_SOURCE_DIR << "/tests/e2e/plugin/e2e.capnp, payload: Item}\n"
    << "plugins: [e2e]\n"
    << "stages:\n"
    << "  - {name: gen, type: generator, count: " << records << ", payload_size: 16, output: items}\n"
    << "  - {name: running, type: e2e.running, input: items, output: totals}\n"
    << "  - {name: write, type: jsonl_sink, input: totals, path: " << out << "}\n";
  return y.str();
}

// How many leading lines of `path` are exactly what e2e.running must write; `bad` counts the
// whole lines that are not (any, anywhere, is a wrong record).
struct verdict {
  size_t good = 0, bad = 0, total = 0;
};
verdict judge(const std::string& path) {
  verdict v;
  bool complete = true;
  auto text = read_file(path);
  auto lines = split_lines(text, complete);
  // A node SIGKILLed while its sink wrote leaves a last line cut short past the committed length
  // (the next start cuts the file back to that length): it is not a record, so it is not judged.
  if (!complete && !lines.empty())
    lines.pop_back();
  uint32_t running[16] = {};
  for (uint32_t i = 0; i < lines.size(); ++i) {
    running[i % 16] += i % 1000;
    auto obj = parse_flat_json(lines[i]);
    auto field = [&](const char* name) -> std::optional<uint32_t> {
      auto it = obj->find(name);
      return it == obj->end() ? std::optional<uint32_t>(0) : json_u32(it->second);
    };
    bool ok = obj && field("index") == i && field("bucket") == i % 16 &&
              field("running") == running[i % 16];
    (ok && v.bad == 0 ? v.good : v.bad) += 1;
  }
  v.total = lines.size();
  return v;
}

// A data dir and output at a third of the run, made once and copied for each kind of damage.
struct stopped_run {
  temp_dir dir;
  std::string data = dir / "data", out = dir / "out.jsonl";
  stopped_run() {
    write_file(dir / "app.yaml", app_yaml(out));
    troupe_process node{dir / "app.yaml", data, dir / "log"};
    bool reached = wait_until([&] {
      return !node.running() || size_of(out) >= uint64_t{records} / 3 * 40;
    }, 5min);
    REQUIRE(reached);
    REQUIRE(killed_by(node.kill_and_reap(), SIGKILL));
    auto v = judge(out);
    REQUIRE(v.bad == 0);
    // The store was left open: the next open verifies the data file before it reads it.
    REQUIRE(read_file(data + "/troupe.lock").rfind("open, durability process, pid ", 0) == 0);
  }
};

struct damaged_copy {
  temp_dir dir;
  std::string data = dir / "data", out = dir / "out.jsonl", log = dir / "log";
  explicit damaged_copy(const stopped_run& from) {
    fs::copy(from.data, data, fs::copy_options::recursive);
    fs::copy_file(from.out, out);
    write_file(dir / "app.yaml", app_yaml(out));
  }
  std::string data_file() const { return data + "/data.mdb"; }
  // Runs the node on the damaged data dir to its end.
  int run() {
    troupe_process node{dir / "app.yaml", data, log};
    bool ended = node.wait_for_exit(5min);
    INFO(tail_of(log));
    REQUIRE(ended);
    return node.status();
  }
  // `troupe check` on the data dir: its exit status and what it printed.
  std::pair<int, std::string> check() {
    auto cmd = std::string(TROUPE_BIN_DIR) + "/troupe check " + data + " > " + dir / "check" +
               " 2>&1";
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(dir / "check")};
  }
};

void cut_to(const std::string& file, uint64_t size) { fs::resize_file(file, size); }

} // namespace

TEST_CASE("a damaged data dir is refused with a message, and no wrong record is written",
          "[e2e][damage]") {
  stopped_run base;
  auto before = judge(base.out);
  std::cerr << "e2e damage: stopped at " << before.total << " of " << records << " lines\n";

  SECTION("data.mdb cut to 8 KiB") {
    damaged_copy c{base};
    cut_to(c.data_file(), 8192);
    int status = c.run();
    auto log = read_file(c.log);
    INFO(log);
    CHECK(describe_status(status) == "exit 1"); // a message, not SIGBUS
    CHECK(log.find("cut short") != std::string::npos);
    CHECK(judge(c.out).bad == 0);
    CHECK(judge(c.out).total == before.total); // nothing more was written
    CHECK(c.check().first == 1);
  }
  SECTION("12,345 bytes cut from the end of data.mdb") {
    damaged_copy c{base};
    cut_to(c.data_file(), fs::file_size(c.data_file()) - 12345);
    int status = c.run();
    auto log = read_file(c.log);
    INFO(log);
    // A node killed mid-commit leaves pages past the last one in use at the end of the file;
    // when the cut takes only those, nothing is lost and the run must end exactly right.
    // Otherwise the open must refuse the file. Never a wrong line.
    CHECK(judge(c.out).bad == 0);
    if (describe_status(status) == "exit 0") {
      CHECK(judge(c.out).total == records);
      CHECK(c.check().first == 0);
    } else {
      CHECK(describe_status(status) == "exit 1");
      CHECK(log.find("cut short") != std::string::npos);
      CHECK(judge(c.out).total == before.total);
    }
  }
  SECTION("data.mdb deleted") {
    damaged_copy c{base};
    fs::remove(c.data_file());
    int status = c.run();
    auto log = read_file(c.log);
    INFO(log);
    CHECK(describe_status(status) == "exit 1"); // not taken for a new, empty store
    CHECK(log.find("data.mdb is missing") != std::string::npos);
    CHECK(judge(c.out).total == before.total);
  }
  SECTION("64 bits flipped at a seed") {
    auto seed = pick_seed();
    INFO("seed " << seed << " (TROUPE_E2E_SEED repeats it)");
    std::cerr << "e2e damage: bits flipped with seed " << seed << "\n"; // CI cuts INFO short
    damaged_copy c{base};
    {
      auto bytes = read_file(c.data_file());
      std::mt19937_64 rng{seed};
      // Past the two meta pages: a flipped meta page is LMDB's own business (it falls back to the
      // other one), the rest is the data the checksums guard.
      std::uniform_int_distribution<size_t> at{2 * 4096, bytes.size() - 1};
      for (int i = 0; i < 64; ++i)
        bytes[at(rng)] ^= static_cast<char>(1 << (rng() % 8));
      write_file(c.data_file(), bytes);
    }
    int status = c.run();
    auto log = read_file(c.log);
    auto v = judge(c.out);
    INFO(tail_of(c.log));
    CHECK(log.find("ended without closing the store: verifying its data file") !=
          std::string::npos);
    // Flips that land in free pages harm nothing: then the run must end exactly right. Otherwise
    // it must stop with a message. Either way no line of the output may be wrong.
    CHECK(v.bad == 0);
    if (describe_status(status) == "exit 0") {
      CHECK(v.total == records);
    } else {
      CHECK(describe_status(status) == "exit 1");
      bool says = log.find("damaged") != std::string::npos ||
                  log.find("store_corrupt") != std::string::npos ||
                  log.find("MDB_CORRUPTED") != std::string::npos ||
                  log.find("MDB_PAGE_NOTFOUND") != std::string::npos;
      CHECK(says);
      CHECK(c.check().first == 1); // troupe check finds it too
    }
  }
}
