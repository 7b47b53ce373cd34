// How the admin module's operations answer (op_result, admin_state.hpp): a status and a JSON
// body. For the module's .cpp files only: it brings nlohmann's header along.
#pragma once

#include "admin/admin_state.hpp"

#include <nlohmann/json.hpp>

namespace troupe {

using ordered_json = nlohmann::ordered_json;

inline op_result op_answer(int status, const ordered_json& body) {
  return {status, body.dump(-1, ' ', false, ordered_json::error_handler_t::replace) + "\n"};
}

inline op_result op_failure(int status, const std::string& why) {
  return op_answer(status, ordered_json{{"error", why}});
}

} // namespace troupe
