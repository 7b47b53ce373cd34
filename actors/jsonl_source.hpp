#pragma once

#include <troupe/stage.hpp>

#include <cstdio>
#include <string>

namespace troupe {

class jsonl_source : public source {
public:
  explicit jsonl_source(const params& p);
  ~jsonl_source() override;
  void open(context& ctx) override;
  produce_result produce(context& ctx, size_t max_items) override;

private:
  bool read_line(std::string& out, bool at_end_is_line);

  std::string path_;
  bool follow_;
  uint32_t poll_ms_;
  capnp::StructSchema schema_;
  std::FILE* file_ = nullptr;
  uint64_t offset_ = 0;
  uint64_t line_ = 0; // lines consumed so far (the next line is line_ + 1)
};

} // namespace troupe
