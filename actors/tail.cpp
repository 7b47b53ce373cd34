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
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <vector>

namespace troupe {

namespace {

std::optional<struct stat> stat_of(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode))
    return std::nullopt;
  return info;
}

int64_t mtime_ns(const struct stat& s) {
  return int64_t(s.st_mtim.tv_sec) * 1000000000 + s.st_mtim.tv_nsec;
}

// The files of the rotation: `path` and those beside it whose name starts with path's
// (app.log.1, app.log-20261204), each with its stat.
std::vector<std::pair<std::string, struct stat>> rotation_files(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, struct stat>> out;
  auto name = fs::path(path).filename().string();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(path).parent_path(), ec)) {
    auto other = entry.path().filename().string();
    if (other.compare(0, name.size(), name) != 0)
      continue;
    if (auto info = stat_of(entry.path().string()))
      out.emplace_back(entry.path().string(), *info);
  }
  return out;
}

// The file of the rotation whose inode is `inode`.
std::optional<std::string> find_rotated(const std::string& path, uint64_t inode) {
  for (auto& [name, info] : rotation_files(path))
    if (uint64_t(info.st_ino) == inode)
      return name;
  return std::nullopt;
}

// The file written after the one just read to its end (last modified at `done_mtime`): of the
// rotation's files not read yet (`read`: the inodes read to their end, the newest last), the one
// modified first at or after it, the lower inode first when the times tie (file times are
// coarse: two files written within a few ms have the same). Rotated twice before the stage
// caught up (app.log.2 read, app.log.1 not yet), that is app.log.1, not app.log.
std::optional<std::pair<std::string, struct stat>>
next_in_rotation(const std::string& path, const std::vector<uint64_t>& read, int64_t done_mtime) {
  std::optional<std::pair<std::string, struct stat>> best;
  auto order = [](const struct stat& s) { return std::make_pair(mtime_ns(s), s.st_ino); };
  for (auto& f : rotation_files(path)) {
    if (mtime_ns(f.second) < done_mtime ||
        std::find(read.begin(), read.end(), uint64_t(f.second.st_ino)) != read.end())
      continue;
    if (!best || order(f.second) < order(best->second))
      best = f;
  }
  return best;
}

// The inodes read to their end ("read" in state: u64s, the newest last, at most 32).
std::vector<uint64_t> inodes_read(const state_store& st) {
  std::vector<uint64_t> out;
  if (auto v = st.get("read"))
    for (size_t at = 0; at + 8 <= v->size(); at += 8) {
      uint64_t x = 0;
      std::memcpy(&x, v->data() + at, 8);
      out.push_back(x);
    }
  return out;
}

void put_inodes_read(state_store st, std::vector<uint64_t> read) {
  if (read.size() > 32)
    read.erase(read.begin(), read.end() - 32);
  std::string v(read.size() * 8, '\0');
  std::memcpy(v.data(), read.data(), v.size());
  st.put("read", v);
}

} // namespace

bool jsonl_source::tail_position(context& ctx) {
  offset_ = ctx.state().get_u64("offset").value_or(0);
  line_ = ctx.state().get_u64("line").value_or(0);
  auto committed = ctx.state().get_u64("inode");
  if (!reader_.is_open() || committed.value_or(inode_) != inode_)
    return locate(ctx);
  // Before reading on at the offset: a copytruncate that has grown past it since starts with
  // other bytes (reading on would take the middle of some line).
  struct stat now {};
  if (offset_ > 0 && reading_ == path_ && ::fstat(reader_.fd(), &now) == 0 &&
      truncated(ctx, uint64_t(now.st_size)))
    return read_path_afresh();
  return true;
}

bool jsonl_source::truncated(context& ctx, uint64_t size) {
  bool shorter = size < offset_;
  if (!shorter && same_head(ctx))
    return false;
  ctx.log_warn(path_ + (shorter ? " is " + std::to_string(size) + " bytes, shorter than the " +
                                    std::to_string(offset_) + " already read"
                                : " no longer starts with the bytes it started with") +
               ": it was truncated (copytruncate?); reading it from its start");
  ctx.state().erase("head");
  return true;
}

bool jsonl_source::read_path_afresh() {
  if (!reader_.open(path_)) // afresh: what the buffer holds is the old content
    return false;
  offset_ = line_ = 0;
  return true;
}

bool jsonl_source::locate(context& ctx) {
  auto committed = ctx.state().get_u64("inode");
  struct stat any {};
  if (::stat(path_.c_str(), &any) == 0 && S_ISDIR(any.st_mode))
    throw permanent_error(path_ + " is a directory, not a file of JSON lines to follow");
  auto at_path = stat_of(path_);
  auto open_path = [&](bool from_start) {
    if (!reader_.open(path_))
      return false; // gone again since the stat
    inode_ = uint64_t(at_path->st_ino);
    reading_ = path_;
    if (from_start) {
      offset_ = line_ = 0;
      ctx.state().erase("head");
    }
    return true;
  };
  if (!committed || offset_ == 0)
    return at_path && open_path(true);
  if (at_path && uint64_t(at_path->st_ino) == *committed) {
    if (!open_path(false))
      return false;
    return !truncated(ctx, uint64_t(at_path->st_size)) || open_path(true);
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

std::string jsonl_source::read_head(size_t n) {
  std::string head(n, '\0');
  auto got = ::pread(reader_.fd(), head.data(), n, 0);
  head.resize(got > 0 ? size_t(got) : 0);
  return head;
}

void jsonl_source::remember_head(context& ctx) {
  constexpr size_t head_bytes = 64;
  auto want = std::min<uint64_t>(head_bytes, offset_);
  auto kept = ctx.state().get("head");
  if (kept && kept->size() >= want)
    return;
  ctx.state().put("head", read_head(want));
}

bool jsonl_source::same_head(context& ctx) {
  auto kept = ctx.state().get("head");
  return !kept || kept->empty() || read_head(kept->size()) == *kept;
}

bool jsonl_source::switch_if_rotated(context& ctx) {
  auto at_path = stat_of(path_);
  if (!at_path || uint64_t(at_path->st_ino) != inode_) { // this file was rotated away
    struct stat done {};
    if (::fstat(reader_.fd(), &done) != 0)
      return false;
    auto read = inodes_read(ctx.state());
    read.push_back(inode_);
    auto next = next_in_rotation(path_, read, mtime_ns(done));
    if (!next)
      return false; // nothing new yet: keep reading this one
    // Written no more: a last line without its '\n' is a line.
    line_reader::line_view last;
    if (reader_.next(last, true) == line_reader::status::line) {
      ++line_;
      offset_ = last.end;
      take_line(ctx, last);
    }
    if (!reader_.open(next->first))
      return false;
    ctx.log_info("the file that was " + reading_ + " (inode " + std::to_string(inode_) +
                 ") was read to its end (" + std::to_string(line_) + " lines); reading " +
                 (next->first == path_ ? "the new " + path_ : next->first + ", rotated since") +
                 " from its start");
    put_inodes_read(ctx.state(), std::move(read));
    inode_ = uint64_t(next->second.st_ino);
    reading_ = next->first;
    offset_ = line_ = 0;
    ctx.state().erase("head");
    return true;
  }
  return truncated(ctx, uint64_t(at_path->st_size)) && read_path_afresh();
}

} // namespace troupe
