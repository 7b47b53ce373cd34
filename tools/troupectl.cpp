// troupectl: look inside a node. This first part works offline, on a stopped node's data dir,
// read-only (LMDB's MDB_RDONLY; a node that has the dir open is told about, not disturbed):
//
//   troupectl --data DIR dlq list [STAGE]      dead letters of one stage, or of every stage
//   troupectl --data DIR dlq show STAGE ID     one dead letter in full, with its record
//   --json                                     one JSON object per dead letter instead of a table
//
// Exit codes: 0 ok; 1 the store cannot be read (damaged: see `troupe check`); 2 no such store,
// stage or dead letter; 64 bad command line.
#include "store/format.hpp"

#include "envelope.capnp.h"

#include <capnp/serialize.h>
#include <CLI/CLI.hpp>
#include <lmdb.h>

#include <sys/file.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr int exit_ok = 0, exit_failed = 1, exit_not_found = 2, exit_usage = 64;

struct dead_letter {
  std::string stage;
  uint64_t id = 0;
  std::string error, input;
  uint32_t attempts = 0, partition = 0;
  int64_t failed_at = 0;
  uint64_t input_seq = 0, source_position = 0;
  std::string record;
};

// A JSON string, escaped as RFC 8259 wants (bytes that are not UTF-8 pass through: the reasons
// are the runtime's own text).
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string time_text(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// What the record of a dead letter is: a source's raw input as text, else an Envelope.
std::string describe_record(const std::string& bytes) {
  if (bytes.size() >= 8 && bytes.size() % 8 == 0) {
    auto words = kj::heapArray<capnp::word>(bytes.size() / 8);
    std::memcpy(words.begin(), bytes.data(), bytes.size());
    try {
      capnp::FlatArrayMessageReader msg{words.asPtr()};
      auto env = msg.getRoot<troupe::schema::Envelope>();
      auto id = env.getId();
      std::string key(reinterpret_cast<const char*>(env.getKey().begin()), env.getKey().size());
      return "an Envelope of " + std::to_string(bytes.size()) + " bytes: id " +
             id.getOrigin().cStr() + "/" + std::to_string(id.getSeq()) +
             (env.hasKey() ? ", key " + json_string(key) : ", no key");
    } catch (const kj::Exception&) {
    }
  }
  return "raw input: " + json_string(bytes);
}

class offline_store {
public:
  // nullopt and a message when the dir holds no readable store.
  static std::optional<offline_store> open(const std::string& dir, std::string& why, int& code) {
    if (!fs::exists(fs::path(dir) / "data.mdb")) {
      why = dir + " holds no troupe store (no data.mdb)";
      code = exit_not_found;
      return std::nullopt;
    }
    offline_store s;
    int rc = mdb_env_create(&s.env_);
    if (rc == 0)
      rc = mdb_env_set_maxdbs(s.env_, 1 << 16);
    if (rc == 0)
      rc = mdb_env_open(s.env_, dir.c_str(), MDB_RDONLY | MDB_NOTLS, 0644);
    if (rc == 0)
      rc = mdb_txn_begin(s.env_, nullptr, MDB_RDONLY, &s.txn_);
    if (rc != 0) {
      why = "cannot read the store in " + dir + ": " + mdb_strerror(rc) + " (try `troupe check " +
            dir + "`)";
      code = exit_failed;
      return std::nullopt;
    }
    return s;
  }
  offline_store(offline_store&& o) noexcept : env_(o.env_), txn_(o.txn_) { o.env_ = nullptr, o.txn_ = nullptr; }
  ~offline_store() {
    if (txn_)
      mdb_txn_abort(txn_);
    if (env_)
      mdb_env_close(env_);
  }

  std::vector<std::string> stages_with_dead_letters() {
    std::vector<std::string> out;
    MDB_dbi main;
    MDB_cursor* c = nullptr;
    if (mdb_dbi_open(txn_, nullptr, 0, &main) != 0 || mdb_cursor_open(txn_, main, &c) != 0)
      return out;
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      std::string name(static_cast<const char*>(k.mv_data), k.mv_size);
      if (name.rfind("dead/", 0) == 0)
        out.push_back(name.substr(5));
    }
    mdb_cursor_close(c);
    return out;
  }

  // The stage's dead letters (all, or the one numbered `only`); false when the stage has no log.
  bool dead_letters(const std::string& stage, std::optional<uint64_t> only,
                    std::vector<dead_letter>& out, std::string& problem) {
    MDB_dbi dbi;
    if (mdb_dbi_open(txn_, ("dead/" + stage).c_str(), MDB_INTEGERKEY, &dbi) != 0)
      return false;
    MDB_cursor* c = nullptr;
    if (int rc = mdb_cursor_open(txn_, dbi, &c); rc != 0) {
      problem = mdb_strerror(rc);
      return true;
    }
    MDB_val k, v;
    size_t id = only.value_or(0);
    k = {sizeof id, &id};
    int rc = mdb_cursor_get(c, &k, &v, only ? MDB_SET_KEY : MDB_FIRST);
    for (; rc == 0; rc = only ? MDB_NOTFOUND : mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      std::memcpy(&id, k.mv_data, sizeof id);
      std::string_view key(static_cast<const char*>(k.mv_data), k.mv_size);
      auto body = troupe::store_format::unseal(key, {static_cast<const char*>(v.mv_data), v.mv_size});
      if (!body || body->size() % 8 != 0) {
        problem = "dead letter " + std::to_string(id) + " of stage '" + stage +
                  "' is damaged (it fails its checksum): run `troupe check`";
        break;
      }
      auto words = kj::heapArray<capnp::word>(body->size() / 8);
      std::memcpy(words.begin(), body->data(), body->size());
      try {
        capnp::FlatArrayMessageReader msg{words.asPtr()};
        auto dl = msg.getRoot<troupe::schema::DeadLetter>();
        auto rec = dl.getRecord();
        out.push_back({stage, id, dl.getError().cStr(), dl.getInput().cStr(), dl.getAttempts(),
                       dl.getPartition(), dl.getFailedAt(), dl.getInputSeq(),
                       dl.getSourcePosition(),
                       std::string(reinterpret_cast<const char*>(rec.begin()), rec.size())});
      } catch (const kj::Exception& e) {
        problem = "dead letter " + std::to_string(id) + " does not decode: " + e.getDescription().cStr();
        break;
      }
    }
    mdb_cursor_close(c);
    return true;
  }

private:
  offline_store() = default;
  MDB_env* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
};

void print(const dead_letter& d, bool json, bool full) {
  auto line = d.source_position ? d.source_position : 0;
  if (json) {
    std::cout << "{\"stage\":" << json_string(d.stage) << ",\"id\":" << d.id << ",\"error\":"
              << json_string(d.error) << ",\"attempts\":" << d.attempts << ",\"failed_at\":"
              << json_string(time_text(d.failed_at)) << ",\"input\":" << json_string(d.input)
              << ",\"partition\":" << d.partition << ",\"position\":" << d.input_seq
              << ",\"source_line\":" << line << ",\"record\":" << json_string(describe_record(d.record))
              << "}\n";
    return;
  }
  std::cout << d.stage << " #" << d.id << "  " << time_text(d.failed_at) << "  " << d.input;
  if (d.partition)
    std::cout << " (partition " << d.partition << ")";
  std::cout << " at " << d.input_seq;
  if (line && line != d.input_seq)
    std::cout << ", line " << line;
  std::cout << "  attempts " << d.attempts << "\n  " << d.error << "\n";
  if (full)
    std::cout << "  record: " << describe_record(d.record) << "\n";
}

} // namespace

int main(int argc, char** argv) {
  CLI::App cli{"troupectl: look inside a troupe node (offline: a stopped node's data dir)"};
  cli.set_version_flag("--version", "troupectl " TROUPE_VERSION);
  std::string data;
  bool json = false;
  cli.add_option("--data", data, "a stopped node's data dir, read-only")->required();
  cli.add_flag("--json", json, "one JSON object per line");
  cli.require_subcommand(1);
  auto* dlq = cli.add_subcommand("dlq", "dead letters");
  dlq->require_subcommand(1);
  std::string stage;
  uint64_t id = 0;
  auto* list = dlq->add_subcommand("list", "the dead letters of STAGE, or of every stage");
  list->add_option("stage", stage, "a stage");
  auto* show = dlq->add_subcommand("show", "one dead letter in full");
  show->add_option("stage", stage, "its stage")->required();
  show->add_option("id", id, "its number (from dlq list)")->required();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    cli.exit(e);
    return exit_usage;
  }
  std::string why;
  int code = exit_ok;
  auto store = offline_store::open(data, why, code);
  if (!store) {
    std::cerr << "troupectl: " << why << "\n";
    return code;
  }
  std::vector<std::string> stages = stage.empty() ? store->stages_with_dead_letters()
                                                  : std::vector<std::string>{stage};
  std::vector<dead_letter> found;
  std::string problem;
  for (const auto& s : stages)
    if (!store->dead_letters(s, show->parsed() ? std::optional<uint64_t>(id) : std::nullopt, found,
                             problem)) {
      std::cerr << "troupectl: the store in " << data << " has no stage '" << s << "'";
      auto known = store->stages_with_dead_letters();
      std::string all;
      for (const auto& k : known)
        all += (all.empty() ? "" : ", ") + k;
      std::cerr << " (its stages: " << (all.empty() ? "none" : all) << ")\n";
      return exit_not_found;
    }
  for (const auto& d : found)
    print(d, json, show->parsed());
  if (!problem.empty()) {
    std::cerr << "troupectl: " << problem << "\n";
    return exit_failed;
  }
  if (show->parsed() && found.empty()) {
    std::cerr << "troupectl: stage '" << stage << "' has no dead letter " << id << "\n";
    return exit_not_found;
  }
  if (!json && !show->parsed())
    std::cout << found.size() << " dead letter" << (found.size() == 1 ? "" : "s") << "\n";
  return exit_ok;
}
