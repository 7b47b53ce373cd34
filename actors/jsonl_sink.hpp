#pragma once

#include "record_json.hpp"

#include <troupe/stage.hpp>

#include <chrono>
#include <optional>

#include <map>
#include <string>

namespace troupe {

class jsonl_sink : public stage {
public:
  explicit jsonl_sink(const params& p);
  ~jsonl_sink() override;
  void open(context& ctx) override;
  void process_batch(context& ctx, const batch& records) override;
  bool drained(context& ctx) override;
  void close(context& ctx) override;

private:
  void cut_back(context& ctx); // to the committed length
  void write_all(const std::string& bytes);
  void check_unsynced_tail(context& ctx, uint64_t committed);

  std::string path_;
  record_json json_;
  int fd_ = -1;
  uint64_t length_ = 0; // bytes in the file as this object last left it
  std::chrono::steady_clock::time_point last_sync_;
  std::string buffer_;
};

} // namespace troupe
