#include "base/error.hpp"

#include <caf/atom.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <lmdb.h>

namespace troupe {

namespace {
constexpr caf::atom_value category = caf::atom("troupe");
}

const char* to_string(errc code) {
  switch (code) {
    case errc::none: return "none";
    case errc::store_io: return "store_io";
    case errc::store_full: return "store_full";
    case errc::store_pressure: return "store_pressure";
    case errc::disk_full: return "disk_full";
    case errc::store_corrupt: return "store_corrupt";
    case errc::layout_mismatch: return "layout_mismatch";
    case errc::decode_failed: return "decode_failed";
    case errc::config_invalid: return "config_invalid";
    case errc::stage_failed: return "stage_failed";
    case errc::stopped: return "stopped";
    case errc::out_of_order: return "out_of_order";
    case errc::permanent: return "permanent";
    case errc::not_found: return "not_found";
  }
  return "unknown";
}

caf::error make_error(errc code) {
  return caf::error{static_cast<uint8_t>(code), category};
}

caf::error make_error(errc code, std::string what) {
  return caf::error{static_cast<uint8_t>(code), category, caf::make_message(std::move(what))};
}

caf::error lmdb_error(int rc, std::string_view what) {
  auto code = errc::store_io;
  if (rc == MDB_MAP_FULL)
    code = errc::store_full;
  else if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND)
    code = errc::store_corrupt;
  std::string text{what};
  text += ": ";
  text += mdb_strerror(rc);
  if (rc == MDB_MAP_FULL)
    text += " (raise store.map_size in the app's YAML; nothing was lost)";
  else if (code == errc::store_corrupt)
    text += " (the data dir is damaged; `troupe check` tells what)";
  return make_error(code, std::move(text));
}

bool is_waitable(const caf::error& e) {
  auto c = code_of(e);
  return c == errc::store_full || c == errc::store_pressure || c == errc::disk_full;
}

errc code_of(const caf::error& e) {
  if (!e || e.category() != category)
    return errc::none;
  return static_cast<errc>(e.code());
}

std::string describe(const caf::error& e) {
  if (!e)
    return "no error";
  std::string out;
  if (e.category() == category)
    out = to_string(static_cast<errc>(e.code()));
  else
    out = caf::to_string(e.category()) + ":" + std::to_string(e.code());
  const auto& ctx = e.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0)) {
    out += ": ";
    out += ctx.get_as<std::string>(0);
  } else if (!ctx.empty()) {
    out += ": ";
    out += caf::to_string(ctx);
  }
  return out;
}

} // namespace troupe
