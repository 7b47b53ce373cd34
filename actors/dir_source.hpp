// dir_source: the files of a folder as records, one per file, in name order.
//
//   path        the folder (required; relative to the YAML)
//   pattern     glob patterns the file names must match, any of them (default: every file)
//   path_field  a Text field of the output struct for the file's path (default `path`)
//   name_field  a Text field for its name without the last extension (default: none)
//
// Only regular files directly in the folder count (no subfolders, no names starting with '.').
// The folder is listed once, when the source opens: each step emits the next files in byte order
// of their names and commits the last name emitted, so a restart goes on after it (files added
// since with names after it are picked up; earlier ones are not). The record key is the file's
// name; its source position is its place in the listing (from 1). A missing folder fails the
// stage for good (a permanent_error naming it).
#pragma once

#include <troupe/stage.hpp>

#include <optional>
#include <string>
#include <vector>

namespace troupe {

class dir_source : public source {
public:
  explicit dir_source(const params& p);
  void open(context& ctx) override;
  produce_result produce(context& ctx, size_t max_items) override;

private:
  std::string folder_;
  std::vector<std::string> patterns_;
  std::string path_field_;
  std::optional<std::string> name_field_;
  std::vector<std::string> names_; // listed at open, sorted
  size_t next_ = 0;                // the first name not yet emitted
};

} // namespace troupe
