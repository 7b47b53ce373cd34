// http_sink: POSTs records as JSON to a URL, one record (or a batch) per request, each request
// with an Idempotency-Key made from the ids of the records it carries (see http_sink.cpp, and
// runtime/CONFIG.md, "http_sink").
#pragma once

#include "record_json.hpp"

#include <troupe/stage.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace httplib {
class Client;
}

namespace troupe {

class http_sink : public stage {
public:
  explicit http_sink(const params& p);
  ~http_sink() override;
  void open(context& ctx) override;
  void process_batch(context& ctx, const batch& records) override;
  void close(context& ctx) override;

private:
  // POSTs records [from, to) of `records`; throws as the answer says (see http_sink.cpp).
  void post(const batch& records, size_t from, size_t to);

  std::string url_, origin_, path_; // url_ = origin_ + path_, as configured
  std::string token_;
  size_t per_request_;
  record_json json_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<httplib::Client> client_;
  std::string body_;
};

void register_http_sink(registry& reg);

} // namespace troupe
