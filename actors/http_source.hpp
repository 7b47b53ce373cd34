// http_source: an HTTP server that takes records from other programs and answers only once they
// are committed (see http_source.cpp for the protocol, and runtime/CONFIG.md, "http_source").
#pragma once

#include "field_path.hpp"

#include <troupe/json.hpp>
#include <troupe/stage.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

class http_source : public source {
public:
  explicit http_source(const params& p);
  ~http_source() override;
  void open(context& ctx) override;
  void close(context& ctx) override;
  produce_result produce(context& ctx, size_t max_items) override;

  struct settings; // what the server threads read: fixed once built
  struct intake;   // what they share with the stage: requests waiting for a step
  struct request;

private:
  void remember(context& ctx, const std::string& key); // the bounded dedupe window
  void stop_serving(const char* why);

  std::shared_ptr<const settings> settings_;
  std::shared_ptr<intake> intake_;
  std::vector<std::shared_ptr<request>> carry_; // taken by a step attempt that did not finish
  struct server;
  std::unique_ptr<server> server_;
};

} // namespace troupe
