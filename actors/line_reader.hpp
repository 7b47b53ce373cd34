// Whole lines of a file or FIFO, read in large chunks, with the exact byte offset of each.
//
// Never blocks: the file is opened O_NONBLOCK, so a FIFO with no data (or no writer) reports
// `need_more` at once instead of holding the thread. Lines handed out since the last seek() stay
// in the buffer, so seek() back to any of their starts (a step that did not commit) re-reads
// them without touching the file; a regular file is re-read from disk for anything older.
//
// One thread at a time. A line_view is valid until the next call to next() or seek().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace troupe {

class line_reader {
public:
  explicit line_reader(size_t max_line_bytes) : max_line_(max_line_bytes) {}
  ~line_reader();
  line_reader(const line_reader&) = delete;
  line_reader& operator=(const line_reader&) = delete;

  // Opens `path` for reading at offset 0. Returns false if it does not exist; throws
  // transient_error for any other failure.
  bool open(const std::string& path);
  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; } // the open file's descriptor (-1 when none), to fstat it
  bool is_fifo() const { return fifo_; }

  // Positions the reader at byte `offset` of the stream. Bytes before it are dropped from the
  // buffer. A FIFO cannot go back before what the buffer still holds: it then carries on from
  // where it is (documented in jsonl_source.cpp).
  void seek(uint64_t offset);

  struct line_view {
    std::string_view text; // without its '\n'; for a too-long line, its first bytes only
    uint64_t start = 0;    // offset of its first byte
    uint64_t end = 0;      // offset after its '\n' (or after its last byte, at the end)
    bool too_long = false; // longer than max_line_bytes: `text` is cut, the rest was skipped
  };
  enum class status {
    line,      // `out` holds the next line
    need_more, // no whole line yet; ask again later
    end,       // the end of the stream (a file's end; a FIFO whose writers have all gone)
  };
  // The next line. With `end_is_line` an unterminated last line is a line at the end of the
  // stream; otherwise it waits for its '\n' (a file that grows).
  status next(line_view& out, bool end_is_line);

private:
  enum class fill_result { data, none, end };
  fill_result fill(); // one read() at the end of the buffer
  void close();

  std::string path_;
  size_t max_line_;
  int fd_ = -1;
  bool fifo_ = false;
  bool fifo_had_writer_ = false;
  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;
  size_t size_ = 0;    // bytes in buf_
  size_t pos_ = 0;     // next byte not yet handed out
  size_t keep_ = 0;    // bytes before this are no longer needed (dropped at the next fill)
  size_t scanned_ = 0; // no '\n' in buf_[pos_, scanned_)
  uint64_t base_ = 0;  // stream offset of buf_[0]
  // Skipping a line longer than max_line_: its start and first bytes, while its end is sought.
  bool skipping_ = false;
  uint64_t skip_start_ = 0;
  std::string skip_head_;
};

} // namespace troupe
