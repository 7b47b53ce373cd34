// Opening the store (store_open.cpp): the layout version, partition counts stored with the edges,
// the shape checks on a layout, one node per data dir, and the data dir checks that refuse a
// data file that is missing, empty or cut short instead of starting afresh or dying of SIGBUS.
#include "store_support.hpp"

#include <sys/wait.h>

#include <fstream>

using namespace troupe;
using namespace troupe::store_test;

namespace {

// Writes, with bare LMDB, what an older or foreign build left in `dir`: meta's layout_version
// set to `version`, and one record stored as a bare value at seq 0 of "log/a".
void write_raw(const std::string& dir, const std::string& version) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_set_maxdbs(env, 16) == 0);
  REQUIRE(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi meta, log;
  REQUIRE(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta) == 0);
  std::string k = "layout_version";
  MDB_val kv{k.size(), k.data()}, vv{version.size(), const_cast<char*>(version.data())};
  REQUIRE(mdb_put(txn, meta, &kv, &vv, 0) == 0);
  REQUIRE(mdb_dbi_open(txn, "log/a", MDB_CREATE | MDB_INTEGERKEY, &log) == 0);
  uint64_t seq = 0;
  std::string record = rec(0);
  MDB_val sk{8, &seq}, rv{record.size(), record.data()};
  REQUIRE(mdb_put(txn, log, &sk, &rv, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
}

caf::error open_error(const std::string& dir, store_layout layout) {
  auto s = store::open(options(dir), std::move(layout));
  REQUIRE(!s);
  return s.error();
}

// Opens the store in a child process, so that a SIGBUS would kill the child, not the test.
// Returns the child's account: "refused <code>: <message>", "opened", or how it died.
std::string open_in_child(const std::string& dir, store_layout layout) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    auto s = store::open(options(dir), std::move(layout));
    std::string out =
        s ? std::string{"opened"}
          : "refused " + std::string{to_string(code_of(s.error()))} + ": " + describe(s.error());
    auto n = ::write(fds[1], out.data(), out.size());
    ::_exit(n == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status));
  return out;
}

// A store whose data file is a few MiB: records in both partitions of "a".
void fill(const std::string& dir) {
  auto s = open_store(dir, sample_layout());
  for (int i = 0; i < 40; ++i) {
    step_delta d;
    for (int k = 0; k < 10; ++k)
      add_output(d, 0, static_cast<partition_id>(k % 2), std::string(9000, 'x'));
    REQUIRE(!s->apply({&d}));
  }
}

} // namespace

TEST_CASE("a store of another layout version is refused as a layout mismatch", "[runtime][store]") {
  temp_dir dir;
  SECTION("version 2 (chunks without checksums or partitions)") {
    write_raw(dir.path, "2");
    auto err = open_error(dir.path, sample_layout());
    CHECK(code_of(err) == errc::layout_mismatch);
    CHECK(text_of(err).find("version 2") != std::string::npos);
    CHECK(text_of(err).find("only version 3") != std::string::npos);
  }
  SECTION("a version from the future") {
    open_store(dir.path, sample_layout()).reset();
    write_raw(dir.path, "99");
    auto err = open_error(dir.path, sample_layout());
    CHECK(code_of(err) == errc::layout_mismatch);
    CHECK(text_of(err).find("version 99") != std::string::npos);
  }
}

TEST_CASE("an edge's partition count is stored, may change while the edge never held a record, "
          "and is refused once it did",
          "[runtime][store]") {
  temp_dir dir;
  auto layout = [](uint32_t partitions, uint32_t fallback = 1) {
    auto l = sample_layout();
    l.edges[0].partitions = partitions;
    l.edges[0].default_partitions = fallback;
    l.stages[1].workers = 1;
    return l;
  };
  auto stored = [&](store& s) { return must(s.reader()->meta("partitions/a")); };
  {
    auto s = open_store(dir.path, layout(0, 3)); // new edge: the default
    CHECK(s->layout().edges[0].partitions == 3);
    CHECK(s->layout().stages[1].partitions == 3);
    CHECK(stored(*s) == std::optional<std::string>{"3"});
    auto c = cursor_move(0, 0, 0, 0); // a cursor at 0 is no record
    REQUIRE(!apply(*s, {&c}));
  }
  {
    auto s = open_store(dir.path, layout(5)); // never held a record: accepted
    CHECK(s->layout().edges[0].partitions == 5);
    CHECK(stored(*s) == std::optional<std::string>{"5"});
  }
  {
    auto s = open_store(dir.path, layout(0, 2)); // 0: what is stored, not the default
    CHECK(s->layout().edges[0].partitions == 5);
    auto d = outputs(0, 4, 0, 1);
    REQUIRE(!apply(*s, {&d}));
    auto m = cursor_move(0, 0, 4, 1), m2 = cursor_move(0, 1, 4, 1);
    REQUIRE(!apply(*s, {&m, &m2}));
    REQUIRE(s->trim_all());
  }
  // Held a record (trimmed or not, it had sequence numbers): the count is fixed.
  auto err = open_error(dir.path, layout(4));
  CHECK(code_of(err) == errc::layout_mismatch);
  CHECK(text_of(err).find("edge 'a' holds data in 5 partitions") != std::string::npos);
  CHECK(text_of(err).find("asks for 4") != std::string::npos);
  CHECK(text_of(err).find("edges.a.partitions back to 5") != std::string::npos);
  auto s = open_store(dir.path, layout(5));
  CHECK(stored(*s) == std::optional<std::string>{"5"});
  check_contiguous(read_all(*s->reader(), 0, 4), 4, 0, 1);
}

TEST_CASE("a stage whose inputs differ in partition count, or with more workers than partitions, "
          "is refused",
          "[runtime][store]") {
  temp_dir dir;
  SECTION("inputs partitioned unlike") {
    auto l = sample_layout();
    l.stages[2].inputs = {0, 1}; // s3 reads a (2 partitions) and b (1)
    l.edges[1].groups.push_back("s3");
    auto err = open_error(dir.path, l);
    CHECK(code_of(err) == errc::config_invalid);
    CHECK(text_of(err).find("'s3' reads edges with different partition counts (a: 2, b: 1)") !=
          std::string::npos);
  }
  SECTION("more workers than partitions") {
    auto l = sample_layout();
    l.stages[1].workers = 3;
    auto err = open_error(dir.path, l);
    CHECK(code_of(err) == errc::config_invalid);
    CHECK(text_of(err).find("'s2' has 3 workers but its input has 2 partitions") !=
          std::string::npos);
  }
  SECTION("a source may have any number of workers, with one state partition") {
    auto l = sample_layout();
    l.stages[0].workers = 4;
    auto s = open_store(dir.path, l);
    CHECK(s->layout().stages[0].partitions == 1);
    step_delta d;
    d.stage = 0;
    d.state.push_back({state_scope::worker, 3, state_space::user, "pos", std::string{"9"}});
    REQUIRE(!apply(*s, {&d}));
  }
}

TEST_CASE("a bad layout or too few databases is refused as invalid config", "[runtime][store]") {
  temp_dir dir;
  auto o = options(dir.path + "/nested/dir"); // created with its parents
  auto refused = [&](store_layout l) {
    auto s = store::open(o, std::move(l));
    REQUIRE(!s);
    INFO(describe(s.error()));
    return code_of(s.error()) == errc::config_invalid;
  };
  auto l = sample_layout();
  l.edges.push_back(edge("a", {}));
  CHECK(refused(l));
  l = sample_layout();
  l.stages.push_back(make_stage("s1"));
  CHECK(refused(l));
  l = sample_layout();
  l.edges[0].name = std::string("bad\0name", 8);
  CHECK(refused(l));
  l = sample_layout();
  l.edges[0].groups[0] = "";
  CHECK(refused(l));
  l = sample_layout();
  l.stages[0].name = std::string(201, 's');
  CHECK(refused(l));
  l = sample_layout();
  l.stages[2].inputs = {7};
  CHECK(refused(l));
  o.max_dbs = 4 + 2 + 2 * 4 - 1; // 4, one per edge, two per stage
  CHECK(refused(sample_layout()));
  o.max_dbs += 1;
  l = sample_layout();
  l.stages[0].name = std::string(200, 's');
  CHECK(store::open(o, l));
}

TEST_CASE("a data dir is open in one store at a time", "[runtime][store]") {
  temp_dir dir;
  auto s = open_store(dir.path, sample_layout());
  auto err = open_error(dir.path, sample_layout());
  CHECK(code_of(err) == errc::store_io);
  CHECK(text_of(err).find("is in use") != std::string::npos);
  s.reset();
  CHECK(store::open(options(dir.path), sample_layout()));
}

TEST_CASE("a data dir that held a store is refused when its data file is missing or empty",
          "[runtime][store]") {
  temp_dir dir;
  fill(dir.path);
  namespace fs = std::filesystem;
  REQUIRE(fs::exists(dir.path + "/troupe.store"));
  REQUIRE(fs::exists(dir.path + "/lock.mdb"));
  auto refused = [&](const char* how, const char* beside) {
    auto err = open_error(dir.path, sample_layout());
    CHECK(code_of(err) == errc::store_corrupt);
    CHECK(text_of(err).find(std::string{"its data.mdb is "} + how) != std::string::npos);
    CHECK(text_of(err).find(std::string{"("} + beside + " is there)") != std::string::npos);
    CHECK((!fs::exists(dir.data_file()) || fs::file_size(dir.data_file()) == 0)); // nothing made
  };
  SECTION("deleted") {
    fs::remove(dir.data_file());
    refused("missing", "troupe.store");
  }
  SECTION("emptied") {
    fs::resize_file(dir.data_file(), 0);
    refused("empty", "troupe.store");
  }
  SECTION("deleted, and the marker with it: lock.mdb still tells") {
    fs::remove(dir.data_file());
    fs::remove(dir.path + "/troupe.store");
    refused("missing", "lock.mdb");
  }
  SECTION("a dir with other files but no store opens as a new store") {
    fs::remove_all(dir.path);
    fs::create_directories(dir.path);
    std::ofstream{dir.path + "/notes.txt"} << "not a store\n";
    auto s = open_store(dir.path, sample_layout());
    CHECK(part(*s->reader(), 0, 0).head == 0);
  }
}

TEST_CASE("a data file cut short is refused with a message, not read into a SIGBUS",
          "[runtime][store]") {
  temp_dir dir;
  fill(dir.path);
  namespace fs = std::filesystem;
  auto size = fs::file_size(dir.data_file());
  REQUIRE(size > 400 * 9000);
  SECTION("to 8 KiB (the two meta pages)") {
    fs::resize_file(dir.data_file(), 8192);
  }
  SECTION("by 12,345 bytes") {
    fs::resize_file(dir.data_file(), size - 12345);
  }
  SECTION("to 6,000 bytes (inside the second meta page)") {
    fs::resize_file(dir.data_file(), 6000);
  }
  SECTION("to 2,000 bytes (inside the first meta page): LMDB itself refuses it, as damage") {
    fs::resize_file(dir.data_file(), 2000);
    auto account = open_in_child(dir.path, sample_layout());
    INFO(account);
    CHECK(account.rfind("refused store_corrupt: ", 0) == 0);
    CHECK(account.find("File is not an LMDB file") != std::string::npos);
    return;
  }
  auto account = open_in_child(dir.path, sample_layout());
  INFO(account);
  CHECK(account.rfind("refused store_corrupt: ", 0) == 0);
  CHECK(account.find("/data.mdb holds " + std::to_string(fs::file_size(dir.data_file())) +
                     " bytes but its last page ends at byte") != std::string::npos);
  CHECK(account.find("cut short") != std::string::npos);
}

TEST_CASE("a data file LMDB cannot read, or one that lost its layout version, is damage, not a "
          "new store",
          "[runtime][store]") {
  temp_dir dir;
  fill(dir.path);
  SECTION("pages of noise where the meta pages were (a power cut at `process`)") {
    std::string noise(3 * 4096, '\0');
    for (size_t i = 0; i < noise.size(); ++i)
      noise[i] = static_cast<char>((i * 2654435761u) >> 13);
    std::ofstream{dir.data_file(), std::ios::binary | std::ios::trunc} << noise;
    auto err = open_error(dir.path, sample_layout());
    CHECK(code_of(err) == errc::store_corrupt);
    CHECK(text_of(err).find("LMDB cannot open") != std::string::npos);
  }
  SECTION("an LMDB file without troupe's meta, in a dir whose marker says it held a store") {
    std::filesystem::remove(dir.data_file());
    std::filesystem::remove(dir.path + "/lock.mdb");
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    REQUIRE(mdb_env_set_maxdbs(env, 4) == 0);
    REQUIRE(mdb_env_open(env, dir.path.c_str(), 0, 0644) == 0);
    MDB_txn* txn = nullptr;
    MDB_dbi dbi;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    REQUIRE(mdb_dbi_open(txn, "heads", MDB_CREATE, &dbi) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    auto err = open_error(dir.path, sample_layout());
    CHECK(code_of(err) == errc::store_corrupt);
    CHECK(text_of(err).find("has no layout version") != std::string::npos);
  }
}

TEST_CASE("TROUPE_TEST_FAULT names only a fault troupe knows", "[runtime][store]") {
  temp_dir dir;
  ::setenv("TROUPE_TEST_FAULT", "skip-every-sync", 1);
  auto err = open_error(dir.path, sample_layout());
  ::unsetenv("TROUPE_TEST_FAULT");
  CHECK(text_of(err).find("TROUPE_TEST_FAULT=skip-every-sync is not a fault") != std::string::npos);
}

TEST_CASE("after a run at `process` that left the store open, the data file is verified before "
          "it is read",
          "[runtime][store]") {
  temp_dir dir;
  fill(dir.path);
  auto lock_file = dir.path + "/troupe.lock";
  auto read_lock = [&] {
    std::ifstream in{lock_file};
    return std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  };
  CHECK(read_lock().empty()); // closed cleanly
  auto left_open = [&](const char* mode) {
    std::ofstream{lock_file, std::ios::trunc} << "open, durability " << mode << ", pid 1\n";
  };
  struct fault {
    explicit fault(const char* name) { ::setenv("TROUPE_TEST_FAULT", name, 1); }
    ~fault() { ::unsetenv("TROUPE_TEST_FAULT"); }
  };
  SECTION("a whole file opens, and the note says what is open until it closes") {
    left_open("process");
    {
      auto s = open_store(dir.path, sample_layout());
      CHECK(read_lock() == "open, durability process, pid " + std::to_string(::getpid()) + "\n");
    }
    CHECK(read_lock().empty());
  }
  SECTION("a verifier that dies of a signal, as LMDB can on noise, is damage") {
    left_open("process");
    fault f{"crash-in-verify"};
    auto err = open_error(dir.path, sample_layout());
    CHECK(code_of(err) == errc::store_corrupt);
    // Signal 11, or 6 where ASan turns the SIGSEGV into an abort.
    CHECK(text_of(err).find("crashed LMDB (signal ") != std::string::npos);
    CHECK(text_of(err).find("(open, durability process, pid 1)") != std::string::npos);
  }
  SECTION("noise past the meta pages is refused as damage, naming what was found") {
    left_open("process");
    auto size = std::filesystem::file_size(dir.data_file());
    {
      std::fstream f{dir.data_file(), std::ios::binary | std::ios::in | std::ios::out};
      f.seekp(2 * 4096);
      for (uint64_t i = 2 * 4096; i < size; ++i)
        f.put(static_cast<char>((i * 2654435761u) >> 13));
    }
    auto said = open_in_child(dir.path, sample_layout());
    CHECK(said.rfind("refused store_corrupt: ", 0) == 0);
    CHECK(said.find("ended without closing the store") != std::string::npos);
  }
  SECTION("verified before threads start (as troupe run does), the file is trusted by the open") {
    left_open("process");
    CHECK(!store::verify_if_left_open(dir.path));
    CHECK(read_lock().rfind("verified whole after an unclean end (open, durability process, pid "
                            "1), pid ", 0) == 0);
    fault f{"crash-in-verify"}; // a second verify would fail
    CHECK(open_in_child(dir.path, sample_layout()) == "opened");
  }
  SECTION("verified before threads start, noise is refused there") {
    left_open("process");
    {
      std::fstream f{dir.data_file(), std::ios::binary | std::ios::in | std::ios::out};
      f.seekp(2 * 4096);
      for (int i = 0; i < 3 * 4096; ++i)
        f.put(static_cast<char>((i * 2654435761u) >> 13));
    }
    auto err = store::verify_if_left_open(dir.path);
    CHECK(code_of(err) == errc::store_corrupt);
    CHECK(read_lock() == "open, durability process, pid 1\n"); // still to verify next time
  }
  SECTION("not after a clean close, nor after a run at `sync`") {
    fault f{"crash-in-verify"};
    CHECK(open_in_child(dir.path, sample_layout()) == "opened");
    left_open("sync");
    CHECK(open_in_child(dir.path, sample_layout()) == "opened");
  }
}
