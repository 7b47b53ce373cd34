// tail: jsonl_source following a growing file through rotation, as log shippers do (Filebeat,
// Fluent Bit): the file being read is known by its inode, which commits with the byte offset
// and line number of each step.
//
// - Rotation by rename (logrotate's default: app.log -> app.log.1, a new app.log): at the end of
//   the file it is reading, the stage finds another file at the path; it has read the old one to
//   its end (through its open descriptor, lines the writer added after the rename included) and
//   goes on at the start of the new one.
// - Truncation in place (logrotate's copytruncate): the file at the path is shorter than what was
//   read; the stage reads it from its start. Lines written between the copy and the truncation
//   are the copy's, not the stage's: copytruncate loses them for every reader.
// - After a restart, the committed inode is looked for at the path, then among the files beside
//   it whose name starts with the path's name (app.log.1, app.log-20261204): reading resumes
//   there at the committed offset, then moves on to the path. A file that is gone (rotated and
//   deleted or compressed while the node was down) cannot be resumed: the stage says what it
//   lost (the bytes past its offset) and reads the path from its start.
// - The path need not exist: the stage waits for it. A tail never ends.
#include "jsonl_source.hpp"

#include <sys/stat.h>

#include <filesystem>

namespace troupe {

namespace {

std::optional<struct stat> stat_of(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode))
    return std::nullopt;
  return info;
}

// A file beside `path` whose name starts with path's (app.log.1) and whose inode is `inode`.
std::optional<std::string> find_rotated(const std::string& path, uint64_t inode) {
  namespace fs = std::filesystem;
  auto name = fs::path(path).filename().string();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(path).parent_path(), ec)) {
    auto other = entry.path().filename().string();
    if (other.size() <= name.size() || other.compare(0, name.size(), name) != 0)
      continue;
    if (auto info = stat_of(entry.path().string()); info && uint64_t(info->st_ino) == inode)
      return entry.path().string();
  }
  return std::nullopt;
}

} // namespace

bool jsonl_source::tail_position(context& ctx) {
  offset_ = ctx.state().get_u64("offset").value_or(0);
  line_ = ctx.state().get_u64("line").value_or(0);
  auto committed = ctx.state().get_u64("inode");
  if (reader_.is_open() && committed.value_or(inode_) == inode_)
    return true;
  return locate(ctx);
}

bool jsonl_source::locate(context& ctx) {
  auto committed = ctx.state().get_u64("inode");
  auto at_path = stat_of(path_);
  auto open_path = [&](bool from_start) {
    if (!reader_.open(path_))
      return false; // gone again since the stat
    inode_ = uint64_t(at_path->st_ino);
    reading_ = path_;
    if (from_start)
      offset_ = line_ = 0;
    return true;
  };
  if (!committed || offset_ == 0)
    return at_path && open_path(true);
  if (at_path && uint64_t(at_path->st_ino) == *committed) {
    if (uint64_t(at_path->st_size) < offset_) {
      ctx.log_warn(path_ + " is " + std::to_string(at_path->st_size) + " bytes, shorter than the " +
                   std::to_string(offset_) + " already read: it was truncated; reading it from "
                   "its start");
      return open_path(true);
    }
    return open_path(false);
  }
  if (auto rotated = find_rotated(path_, *committed)) {
    if (!reader_.open(*rotated))
      return false;
    inode_ = *committed;
    reading_ = *rotated;
    ctx.log_info(path_ + " was rotated: resuming in " + *rotated + " at line " +
                 std::to_string(line_ + 1) + ", then the new " + path_);
    return true;
  }
  if (!at_path)
    return false; // neither: wait for the path to appear, and look again then
  ctx.log_warn("the file this stage was reading at " + path_ + " (inode " +
               std::to_string(*committed) + ", " + std::to_string(offset_) + " bytes, " +
               std::to_string(line_) + " lines read) is gone, neither there nor beside it "
               "(rotated, then removed or compressed while the node was down): whatever was "
               "written to it after byte " + std::to_string(offset_) +
               " is lost; reading the new " + path_ + " from its start");
  return open_path(true);
}

bool jsonl_source::switch_if_rotated(context& ctx) {
  auto at_path = stat_of(path_);
  if (!at_path)
    return false; // renamed away, nothing new yet: keep reading the old file
  if (uint64_t(at_path->st_ino) != inode_) {
    if (!reader_.open(path_))
      return false;
    ctx.log_info("the file that was " + reading_ + " (inode " + std::to_string(inode_) +
                 ") was read to its end (" + std::to_string(line_) + " lines); " + path_ +
                 " is a new file (rotated): reading it from its start");
    inode_ = uint64_t(at_path->st_ino);
    reading_ = path_;
    offset_ = line_ = 0;
    return true;
  }
  if (uint64_t(at_path->st_size) < offset_) {
    ctx.log_warn(path_ + " is " + std::to_string(at_path->st_size) + " bytes, shorter than the " +
                 std::to_string(offset_) + " already read: it was truncated (copytruncate?); "
                 "reading it from its start");
    if (!reader_.open(path_)) // afresh: what the buffer holds is the old content
      return false;
    offset_ = line_ = 0;
    return true;
  }
  return false;
}

} // namespace troupe
