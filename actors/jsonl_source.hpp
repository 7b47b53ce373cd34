#pragma once

#include "field_path.hpp"
#include "line_reader.hpp"

#include <troupe/json.hpp>
#include <troupe/stage.hpp>

#include <optional>
#include <string>
#include <vector>

namespace troupe {

enum class line_format { json, text };

class jsonl_source : public source {
public:
  // `rotation`: the tail stage (tail.cpp): follows the file through rotation and truncation.
  explicit jsonl_source(const params& p, line_format format = line_format::json,
                        bool rotation = false);
  void open(context& ctx) override;
  produce_result produce(context& ctx, size_t max_items) override;
  std::optional<std::string> changed_since_done(context& ctx) override;

private:
  void take_line(context& ctx, const line_reader::line_view& line);
  void check_same_file(context& ctx);
  void flush_group(context& ctx); // text: emits the lines gathered so far as one record
  // tail (tail.cpp): the file at the committed position, wherever rotation moved it; false
  // while there is none to read.
  bool tail_position(context& ctx);
  bool locate(context& ctx);
  // tail, at the end of the file being read: whether the path now holds another file (rotated)
  // or a shorter one (truncated); if so the reader moves to its start.
  bool switch_if_rotated(context& ctx);
  // tail: the file's first bytes (up to 64) in state, and whether the file still starts so (a
  // copytruncate that grew past the offset before it was seen starts otherwise).
  void remember_head(context& ctx);
  // Whether the file being read at the path, `size` bytes now, was truncated in place since
  // (shorter than the offset, or other first bytes); says so. read_path_afresh: from its start.
  bool truncated(context& ctx, uint64_t size);
  bool read_path_afresh();
  bool same_head(context& ctx);
  std::string read_head(size_t n);

  line_format format_;
  std::string path_;
  bool follow_;
  uint32_t poll_ms_;
  uint64_t max_line_;
  capnp::StructSchema schema_;
  std::optional<field_path> key_;                           // none: records get no key
  bool key_required_ = false;                               // also in `required`
  std::optional<capnp::StructSchema::Field> text_field_;   // text: where a line goes
  std::string scratch_;                                     // text: the record's lines
  uint64_t lines_per_record_ = 1;                           // text: lines joined by '\n'
  uint64_t group_lines_ = 0, group_first_ = 0;              // in scratch_, and the first's number
  std::optional<json_decoder> decoder_;
  line_reader reader_;
  uint64_t offset_ = 0; // offset of the next line
  uint64_t line_ = 0;   // lines consumed so far (the next line is line_ + 1)
  uint64_t inode_ = 0;  // of the regular file being read (0: not known, or not a regular file)
  bool rotation_ = false;
  std::string reading_; // the file being read: path_, or where rotation moved it (tail)
};

// A growing file of JSON lines, followed through rotation (see tail.cpp).
class tail_source : public jsonl_source {
public:
  explicit tail_source(const params& p) : jsonl_source(p, line_format::json, true) {}
};

// Plain text lines, one record each (see jsonl_source.cpp).
class text_source : public jsonl_source {
public:
  explicit text_source(const params& p) : jsonl_source(p, line_format::text) {}
};

} // namespace troupe
