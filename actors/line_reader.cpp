// line_reader: see line_reader.hpp.
#include "line_reader.hpp"

#include <troupe/stage.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

namespace troupe {

namespace {
constexpr size_t read_size = 1 << 20; // bytes asked for by one read()
constexpr size_t min_free = 256 << 10; // a read needs at least this much room
constexpr size_t head_bytes = 4096;    // what is kept of a line too long to keep

transient_error io_error(const char* what, const std::string& path) {
  return transient_error(std::string(what) + " " + path + ": " + std::strerror(errno));
}
} // namespace

line_reader::~line_reader() { close(); }

void line_reader::close() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

bool line_reader::open(const std::string& path) {
  close();
  path_ = path;
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) {
    if (errno == ENOENT)
      return false;
    throw io_error("cannot open", path);
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    throw io_error("cannot stat", path);
  if (S_ISDIR(st.st_mode))
    throw permanent_error(path + " is a directory, not a file of JSON lines");
  fifo_ = S_ISFIFO(st.st_mode);
  fifo_had_writer_ = false;
  size_ = pos_ = keep_ = scanned_ = 0;
  base_ = 0;
  skipping_ = false;
  return true;
}

void line_reader::seek(uint64_t offset) {
  if (skipping_ && offset == skip_start_)
    return; // the long line being skipped: go on skipping it
  skipping_ = false;
  if (offset >= base_ + keep_ && offset <= base_ + size_) {
    pos_ = keep_ = static_cast<size_t>(offset - base_);
    scanned_ = pos_;
    return;
  }
  if (fifo_) {
    // After a restart the buffer is empty: the stream goes on from the committed offset. Bytes
    // before the buffer cannot be read again from a FIFO: carry on from where it is.
    if (offset > base_ + size_) {
      base_ = offset;
      size_ = pos_ = keep_ = scanned_ = 0;
    }
    return;
  }
  if (::lseek(fd_, static_cast<off_t>(offset), SEEK_SET) < 0)
    throw io_error("cannot seek in", path_);
  base_ = offset;
  size_ = pos_ = keep_ = scanned_ = 0;
}

line_reader::fill_result line_reader::fill() {
  if (capacity_ - size_ < min_free) {
    if (keep_ > 0) { // drop what no seek can come back to (keep_ > 0: buf_ exists)
      std::memmove(buf_.get(), buf_.get() + keep_, size_ - keep_);
      base_ += keep_;
      size_ -= keep_;
      pos_ -= keep_;
      scanned_ -= keep_;
      keep_ = 0;
    }
    if (capacity_ - size_ < min_free) {
      size_t grown = std::max(capacity_ * 2, size_ + read_size);
      std::unique_ptr<char[]> bigger(new char[grown]);
      if (size_ > 0)
        std::memcpy(bigger.get(), buf_.get(), size_);
      buf_ = std::move(bigger);
      capacity_ = grown;
    }
  }
  for (;;) {
    auto n = ::read(fd_, buf_.get() + size_, std::min(capacity_ - size_, read_size));
    if (n > 0) {
      size_ += static_cast<size_t>(n);
      fifo_had_writer_ = fifo_had_writer_ || fifo_;
      return fill_result::data;
    }
    if (n == 0) {
      if (!fifo_)
        return fill_result::end;
      // A FIFO reads 0 bytes while it has no writer: at the end only if one came and went
      // (Linux reports POLLHUP only then).
      pollfd p{fd_, POLLIN, 0};
      bool hung_up = ::poll(&p, 1, 0) > 0 && (p.revents & POLLHUP);
      return hung_up || fifo_had_writer_ ? fill_result::end : fill_result::none;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return fill_result::none; // a FIFO with a writer but no data yet
    throw io_error("cannot read", path_);
  }
}

line_reader::status line_reader::next(line_view& out, bool end_is_line) {
  for (;;) {
    if (skipping_) {
      auto* nl = pos_ < size_ ? static_cast<char*>(std::memchr(buf_.get() + pos_, '\n', size_ - pos_))
                              : nullptr;
      if (nl) {
        pos_ = static_cast<size_t>(nl - buf_.get()) + 1;
        scanned_ = pos_;
        skipping_ = false;
        out = {skip_head_, skip_start_, base_ + pos_, true};
        return status::line;
      }
      pos_ = scanned_ = size_; // skipped
      keep_ = size_;
    } else {
      auto* nl = scanned_ < size_
                   ? static_cast<char*>(std::memchr(buf_.get() + scanned_, '\n', size_ - scanned_))
                   : nullptr;
      if (nl) {
        auto at = static_cast<size_t>(nl - buf_.get());
        out = {{buf_.get() + pos_, at - pos_}, base_ + pos_, base_ + at + 1, false};
        if (at - pos_ > max_line_) {
          out.text = out.text.substr(0, head_bytes);
          out.too_long = true;
        }
        pos_ = scanned_ = at + 1;
        return status::line;
      }
      scanned_ = size_;
      if (size_ - pos_ > max_line_) { // keep its head, skip the rest up to its '\n'
        skipping_ = true;
        skip_start_ = base_ + pos_;
        skip_head_.assign(buf_.get() + pos_, std::min(head_bytes, size_ - pos_));
        continue;
      }
    }
    auto r = fill();
    if (r == fill_result::data)
      continue;
    if (r == fill_result::end && end_is_line && (skipping_ || pos_ < size_)) {
      if (skipping_) {
        skipping_ = false;
        out = {skip_head_, skip_start_, base_ + size_, true};
      } else {
        out = {{buf_.get() + pos_, size_ - pos_}, base_ + pos_, base_ + size_, false};
      }
      pos_ = scanned_ = size_;
      return status::line;
    }
    return r == fill_result::end ? status::end : status::need_more;
  }
}

} // namespace troupe
