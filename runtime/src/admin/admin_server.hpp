// The node's admin endpoint: one HTTP server (cpp-httplib) per node, on the address of the app's
// `admin:` (loopback by default; port 0 picks a free one, which is logged and written, with the
// pid, to <data_dir>/admin.json for troupectl). It serves a small versioned JSON API (/v1/...),
// /metrics in Prometheus's text format, and the dashboard at /. Requests that change anything
// need the configured token as a bearer token (401 without it); reading does too with
// `read: token`. What the routes are and return: runtime/ADMIN_API.md.
#pragma once

#include "admin/admin_state.hpp"

#include <caf/expected.hpp>

#include <memory>
#include <string>

namespace troupe {

class admin_server {
public:
  // Binds the address and starts serving on threads of its own; an error names the address.
  static caf::expected<std::unique_ptr<admin_server>> start(std::shared_ptr<admin_state> state);
  ~admin_server(); // stops serving, joins its threads, removes admin.json
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;

  const std::string& address() const { return address_; } // "127.0.0.1:41234", as bound

private:
  struct impl;
  explicit admin_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
  std::string address_;
};

} // namespace troupe
