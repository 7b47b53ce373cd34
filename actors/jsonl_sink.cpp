// jsonl_sink: writes each record's payload as one JSON line.
//
// Params: path (required; parent directories are created), envelope (default false: write only
// the payload; true: {"origin":...,"seq":...,"key":...,"payload":{...}}, the id being an
// idempotency key for whoever reads the file).
//
// Exactly once, in order, after any number of crashes: the file's length commits in the same
// step as the input cursor. A step first cuts the file back to the committed length (undoing a
// step that wrote but never committed), then appends its lines, then (at `sync` durability)
// fdatasyncs before the step commits. On open the file is cut back the same way, except a file
// this store never wrote (an earlier run's): that one is replaced at the first write (or when an
// input that brought nothing ends), so a run that fails first leaves it as it was. The sink holds
// an exclusive flock on the file while open: a second node writing it is refused.
//
// At `process` durability the file is synced only now and then (every 8 MiB or second), but the
// store's flush may make a committed length durable before the bytes it counts reached the
// disk: after a power loss the file can hold a hole of zeros, or old bytes, where committed
// lines were. So the state also keeps how much of the file is known synced and a CRC-32 of the
// committed bytes past it; on open those bytes are read back and checked, and a file that lost
// them is refused by name instead of being appended to.
//
// A record the codec cannot write (Text that is not UTF-8, a set AnyPointer) fails its step: it
// is retried and dead-lettered like any record a stage throws on, and never reaches the file.
#include "jsonl_sink.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <stdexcept>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

namespace troupe {

namespace {

transient_error io_error(const std::string& what, const std::string& path) {
  return transient_error(what + " " + path + ": " + std::strerror(errno));
}

// At `process`: the most unsynced bytes, and the longest time, a file goes without an fdatasync.
constexpr uint64_t unsynced_bytes_max = 8 << 20;
constexpr auto unsynced_time_max = std::chrono::seconds(1);

uint32_t crc_of(uint32_t crc, const char* data, size_t n) {
  while (n > 0) { // zlib takes the length as a uInt
    auto part = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = static_cast<uint32_t>(::crc32(crc, reinterpret_cast<const Bytef*>(data), part));
    data += part;
    n -= part;
  }
  return crc;
}

} // namespace

// Each input edge's struct comes with its records (record::payload_dynamic); the loader has
// refused an app whose input edges carry none.
jsonl_sink::jsonl_sink(const params& p)
  : path_(p.get_path("path")), json_(p.get_bool("envelope", false)) {}

jsonl_sink::~jsonl_sink() {
  if (fd_ >= 0)
    ::close(fd_);
}

void jsonl_sink::open(context& ctx) {
  auto parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty())
    std::filesystem::create_directories(parent);
  // Read and written: check_unsynced_tail reads the file's tail back.
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw io_error("cannot open", path_);
  // Another node (another data dir) writing the file would cut it back to its own length. A
  // transient error: an instance of this very stage that has not quite gone yet lets go soon;
  // another node does not, and this stage is given up with the message.
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    if (e == EWOULDBLOCK)
      throw transient_error(path_ + " is being written by another troupe node (another data "
                            "dir or another app writes the same file); give each sink a file "
                            "of its own");
    errno = e;
    throw io_error("cannot lock", path_);
  }
  auto ever = ctx.worker_state().get_u64("length"); // nullopt: this store never wrote the file
  auto committed = ever.value_or(0);
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    throw io_error("cannot stat", path_);
  if (!ever && st.st_size > 0) {
    // A file this store never wrote (an earlier run's, with a store since reset or another
    // one's): replaced at the first write, or at the end of an input that brings nothing; kept
    // as it is by a run that fails before either.
    length_ = static_cast<uint64_t>(st.st_size);
    last_sync_ = std::chrono::steady_clock::now();
    return;
  }
  if (static_cast<uint64_t>(st.st_size) < committed) // no restart can bring the lines back
    throw permanent_error(
      path_ + " holds " + std::to_string(st.st_size) + " bytes but " +
      std::to_string(committed) + " were committed: the file was cut or replaced outside troupe "
      "(or lost in an OS crash at `durability: process`); restore it, or start the app afresh "
      "with `troupe reset`");
  check_unsynced_tail(ctx, committed);
  if (static_cast<uint64_t>(st.st_size) > committed && // lines of a step that never committed
      ::ftruncate(fd_, static_cast<off_t>(committed)) != 0)
    throw io_error("cannot truncate", path_);
  length_ = committed;
  last_sync_ = std::chrono::steady_clock::now();
}

// The committed bytes past the synced length must be the ones written (see the top of the file).
void jsonl_sink::check_unsynced_tail(context& ctx, uint64_t committed) {
  auto state = ctx.worker_state();
  auto synced = state.get_u64("synced").value_or(length_); // length_: the committed length here
  if (synced >= committed)
    return;
  std::string bytes(committed - synced, '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    auto n = ::pread(fd_, bytes.data() + got, bytes.size() - got, static_cast<off_t>(synced + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      throw io_error("cannot read", path_);
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  if (got == bytes.size() &&
      crc_of(0, bytes.data(), bytes.size()) == state.get_u64("unsynced_crc").value_or(0))
    return;
  throw permanent_error(
    path_ + ": bytes " + std::to_string(synced) + " to " + std::to_string(committed) +
    " were committed but are not what was written: they were lost in an OS crash or power loss "
    "before they reached the disk (at `durability: process` the file is synced now and then); "
    "restore it, or start the app afresh with `troupe reset`");
}

void jsonl_sink::write_all(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    auto n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done,
                      static_cast<off_t>(length_ + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw io_error("cannot write", path_);
    }
    done += static_cast<size_t>(n);
  }
  length_ += done;
}

void jsonl_sink::cut_back(context& ctx) {
  auto committed = ctx.worker_state().get_u64("length").value_or(0);
  if (length_ != committed) { // a step that wrote but did not commit (or a file not ours): undo
    if (::ftruncate(fd_, static_cast<off_t>(committed)) != 0)
      throw io_error("cannot truncate", path_);
    length_ = committed;
  }
}

bool jsonl_sink::drained(context& ctx) {
  cut_back(ctx); // an input that brought nothing: the file holds nothing
  return true;
}

void jsonl_sink::process_batch(context& ctx, const batch& records) {
  cut_back(ctx);
  buffer_.clear();
  for (size_t i = 0; i < records.size(); ++i) {
    json_.append(buffer_, records[i]);
    buffer_ += '\n';
  }
  auto state = ctx.worker_state();
  auto synced = state.get_u64("synced").value_or(length_); // length_: the committed length here
  auto crc = static_cast<uint32_t>(state.get_u64("unsynced_crc").value_or(0));
  write_all(buffer_);
  crc = crc_of(crc, buffer_.data(), buffer_.size());
  auto now = std::chrono::steady_clock::now();
  if (ctx.durability() == durability::sync || length_ - synced > unsynced_bytes_max ||
      now - last_sync_ > unsynced_time_max) {
    if (::fdatasync(fd_) != 0)
      throw io_error("cannot sync", path_);
    synced = length_;
    crc = 0;
    last_sync_ = now;
  }
  state.put_u64("length", length_);
  state.put_u64("synced", synced);
  state.put_u64("unsynced_crc", crc);
}

void jsonl_sink::close(context&) {
  if (fd_ >= 0) {
    ::fsync(fd_);
    ::close(fd_);
    fd_ = -1;
  }
}

} // namespace troupe
