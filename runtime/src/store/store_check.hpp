// Verifying a data dir without the app that wrote it (`troupe check DIR`): every value of every
// database against its checksum and shape, every partition's chunks against its head and tail,
// and the files LMDB needs, read-only. Meant for a stopped node's data dir: on a running node the
// databases are read at slightly different commits, and the report says the dir is in use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct check_report {
  uint64_t entries = 0;              // values verified
  uint64_t records = 0;              // records in verified chunks
  std::vector<std::string> problems; // one line each: where, and what is wrong
  std::vector<std::string> notes;    // what was found, for the reader (edges, stages, sizes)
  bool no_store = false;             // the dir is missing or holds no trace of a store
  bool ok() const { return problems.empty(); }
};

// Walks the data dir `dir`. Problems that stop the walk (no data file, a file cut short, an
// environment LMDB cannot open) are problems too. `stopped`: the caller holds the node's lock
// (a node opening the dir), so no node writes while the walk reads; otherwise the walk takes a
// shared hold of it, and when a node holds it, says so and skips the page count (which only adds
// up in one commit).
check_report check_data_dir(const std::string& dir, bool stopped = false);

} // namespace troupe
