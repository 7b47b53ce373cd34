#pragma once

#include "line_reader.hpp"

#include <troupe/json.hpp>
#include <troupe/stage.hpp>

#include <optional>
#include <string>
#include <vector>

namespace troupe {

class jsonl_source : public source {
public:
  explicit jsonl_source(const params& p);
  void open(context& ctx) override;
  produce_result produce(context& ctx, size_t max_items) override;
  std::optional<std::string> changed_since_done(context& ctx) override;

private:
  void take_line(context& ctx, const line_reader::line_view& line);
  std::string key_of(capnp::DynamicStruct::Reader value) const;
  void check_same_file(context& ctx);

  std::string path_;
  bool follow_;
  uint32_t poll_ms_;
  uint64_t max_line_;
  capnp::StructSchema schema_;
  std::vector<capnp::StructSchema::Field> key_path_; // empty: records get no key
  std::optional<json_decoder> decoder_;
  line_reader reader_;
  uint64_t offset_ = 0; // offset of the next line
  uint64_t line_ = 0;   // lines consumed so far (the next line is line_ + 1)
  uint64_t inode_ = 0;  // of the regular file being read (0: not known, or not a regular file)
};

} // namespace troupe
