// The node's monitor: a thread that, every second, samples the node (admin_state::sample: the
// rates and partition heads the admin endpoint shows) and checks the app's alert rules against
// each stage's figures. An alert fires once when its condition has held for its `for` (logged,
// and its `run` command started, with the alert in its environment and placeholders) and is
// logged as resolved when the condition clears. It runs whether or not the endpoint does.
#pragma once

#include "admin/admin_state.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace troupe {

class node_monitor {
public:
  explicit node_monitor(std::shared_ptr<admin_state> state);
  ~node_monitor(); // stops the thread; alert commands still running are left to finish
  node_monitor(const node_monitor&) = delete;
  node_monitor& operator=(const node_monitor&) = delete;

private:
  struct alerts;
  void run();

  std::shared_ptr<admin_state> state_;
  std::unique_ptr<alerts> alerts_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

} // namespace troupe
