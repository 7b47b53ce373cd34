// tcp_source: JSON lines over TCP, each answered once committed (see tcp_source.cpp for the
// protocol, and runtime/CONFIG.md, "tcp_source").
#pragma once

#include <troupe/stage.hpp>

#include <memory>
#include <vector>

namespace troupe {

class tcp_source : public source {
public:
  explicit tcp_source(const params& p);
  ~tcp_source() override;
  void open(context& ctx) override;
  void close(context& ctx) override;
  produce_result produce(context& ctx, size_t max_items) override;

  struct settings;   // fixed once built
  struct connection; // a client, shared by the server thread and the answers of steps
  struct chunk;      // records decoded from one read of a connection, waiting for a step
  struct intake;     // the chunks waiting, shared by the server thread and the stage

private:
  std::shared_ptr<const settings> settings_;
  std::shared_ptr<intake> intake_;
  std::vector<std::shared_ptr<chunk>> carry_; // taken by a step attempt that threw
  struct server;
  std::unique_ptr<server> server_;
};

} // namespace troupe
