// The project's one error vocabulary. Errors are values (caf::error) carrying a troupe::errc
// code and a human-readable text; exceptions stop at one boundary each (decode, step, config).
#pragma once

#include <caf/error.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace troupe {

enum class errc : uint8_t {
  none = 0,
  store_io,        // LMDB or the file system failed (I/O error, permissions, ...)
  store_full,      // the LMDB map is full: intake stops until store.map_size grows
  store_pressure,  // the map is nearly full: intake is refused so that consumers can free room
  disk_full,       // the file system has no room: the node waits for space, nothing is lost
  store_corrupt,   // a stored value failed its checksum or shape: the data dir is damaged
  layout_mismatch, // the data dir was written by an incompatible layout version or app shape
  decode_failed,   // malformed or oversized Cap'n Proto bytes
  config_invalid,  // the app's YAML is wrong
  stage_failed,    // a stage's code failed beyond its retry budget, or open() failed
  stopped,         // the component was shut down
  out_of_order,    // a step refused because an earlier step of its worker was refused
  permanent,       // a failure no restart heals: the stage is given up at once
  not_found,       // what a request names is not there (a dead letter retried meanwhile)
};

const char* to_string(errc code);

caf::error make_error(errc code);
caf::error make_error(errc code, std::string what);

// An LMDB return code as an error; `what` says what was being done. MDB_MAP_FULL is store_full,
// MDB_CORRUPTED and MDB_PAGE_NOTFOUND are store_corrupt, anything else store_io.
caf::error lmdb_error(int rc, std::string_view what);

// Whether a failure of this kind heals by waiting (a full map or disk, pressure) rather than by
// a restart.
bool is_waitable(const caf::error& e);

// The error's code (errc::none for errors of other categories) and its text.
errc code_of(const caf::error& e);
std::string describe(const caf::error& e);

} // namespace troupe
