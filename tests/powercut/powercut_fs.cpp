// powercut_fs: a FUSE file system that forgets what was not synced, for power-loss tests.
//
//   powercut_fs BACKING MOUNT [--keep-fraction F] [--seed S]
//
// It passes every operation through to the folder BACKING, except file contents: a write lands in
// this process's memory (a page cache of its own, 4 KiB pages) and reaches BACKING only when an
// fsync or fdatasync of that file, or a write through a handle opened O_SYNC/O_DSYNC, covers it.
// So BACKING always holds exactly what a disk would hold after a power cut at this moment, and
// the cut itself is the end of this process:
//   - SIGKILL: every unsynced write is lost (then `umount -l MOUNT` clears the dead mount);
//   - SIGTERM or SIGINT: the mount is taken down, then, with --keep-fraction F, each unsynced
//     page reaches BACKING with probability F (seeded by --seed), in no particular order, as a
//     disk that reorders its writes would leave it; without it, every unsynced write is lost.
// Mounting BACKING again is the machine coming back up. The model and its limits are in
// tests/powercut/README.md.
#define FUSE_USE_VERSION 31
#include <fuse.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr uint64_t page_size = 4096;
using page = std::vector<char>; // always page_size bytes

// What this file holds beyond what BACKING holds for it: pages written since the last sync, the
// file's size as the writers see it, and how much of the backing file still counts (a truncate
// not yet synced hides the backing bytes past it).
struct file_state {
  std::map<uint64_t, page> dirty; // page number -> its whole content as readers see it
  uint64_t size = 0;
  uint64_t backing_valid = 0;
  uint64_t backing_size = 0; // of the backing file, as last written or synced
};

struct handle {
  int fd;
  ino_t ino;
  bool sync_writes; // opened O_SYNC or O_DSYNC: each write is durable when it returns
};

struct filesystem {
  std::string backing;
  double keep_fraction = 0;
  uint64_t seed = 1;
  std::map<ino_t, file_state> files;
  uint64_t syncs = 0, pages_synced = 0;
};

filesystem fs;

std::string real(const char* path) { return fs.backing + path; }
handle& of(fuse_file_info* fi) { return *reinterpret_cast<handle*>(fi->fh); }

// The state of the file behind `fd`, made from the backing file the first time it is written.
file_state& state_of(int fd, ino_t ino) {
  auto it = fs.files.find(ino);
  if (it != fs.files.end())
    return it->second;
  struct stat st;
  uint64_t size = ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  file_state s;
  s.size = s.backing_valid = s.backing_size = size;
  return fs.files.emplace(ino, std::move(s)).first->second;
}

// Reads page `n` as readers see it, from the backing file, into `out`.
int read_backing_page(int fd, const file_state& s, uint64_t n, char* out) {
  std::memset(out, 0, page_size);
  uint64_t begin = n * page_size;
  if (begin >= s.backing_valid)
    return 0;
  uint64_t want = std::min(page_size, s.backing_valid - begin);
  uint64_t got = 0;
  while (got < want) {
    ssize_t r = ::pread(fd, out + got, want - got, static_cast<off_t>(begin + got));
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    got += static_cast<uint64_t>(r);
  }
  return 0;
}

int write_all(int fd, const char* data, uint64_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t w = ::pwrite(fd, data, len, static_cast<off_t>(offset));
    if (w < 0)
      return -errno;
    data += w;
    len -= static_cast<uint64_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return 0;
}

// Puts a truncate that was not synced yet into the backing file.
int settle_truncate(int fd, file_state& s) {
  if (s.backing_valid >= s.backing_size)
    return 0;
  if (::ftruncate(fd, static_cast<off_t>(s.backing_valid)) != 0)
    return -errno;
  s.backing_size = s.backing_valid;
  return 0;
}

// Writes bytes [begin, end) of the dirty page `n` to the backing file.
int write_page_part(int fd, file_state& s, uint64_t n, const page& p, uint64_t begin,
                    uint64_t end) {
  uint64_t at = n * page_size;
  end = std::min(end, s.size > at ? s.size - at : 0);
  if (begin >= end)
    return 0;
  if (int rc = write_all(fd, p.data() + begin, end - begin, at + begin); rc != 0)
    return rc;
  s.backing_size = std::max(s.backing_size, at + end);
  // The bytes between the old valid end and this write are a hole of zeros in the backing file,
  // as they are zeros (or dirty pages) to readers: the backing file counts up to its end again.
  s.backing_valid = s.backing_size;
  return 0;
}

// fsync: everything this file holds reaches the backing file, then the backing file's disk.
int sync_file(int fd, file_state& s) {
  if (int rc = settle_truncate(fd, s); rc != 0)
    return rc;
  for (auto& [n, p] : s.dirty)
    if (int rc = write_page_part(fd, s, n, p, 0, page_size); rc != 0)
      return rc;
  if (s.backing_size != s.size) {
    if (::ftruncate(fd, static_cast<off_t>(s.size)) != 0)
      return -errno;
    s.backing_size = s.size;
  }
  s.backing_valid = s.size;
  fs.pages_synced += s.dirty.size();
  s.dirty.clear();
  ++fs.syncs;
  return ::fdatasync(fd) == 0 ? 0 : -errno;
}

int op_getattr(const char* path, struct stat* st, fuse_file_info* fi) {
  int rc = fi ? ::fstat(of(fi).fd, st) : ::lstat(real(path).c_str(), st);
  if (rc != 0)
    return -errno;
  auto it = fs.files.find(st->st_ino);
  if (S_ISREG(st->st_mode) && it != fs.files.end()) {
    st->st_size = static_cast<off_t>(it->second.size);
    st->st_blocks = static_cast<blkcnt_t>((it->second.size + 511) / 512);
  }
  return 0;
}

int open_backing(const char* path, int flags, mode_t mode, fuse_file_info* fi, bool create) {
  bool sync_writes = (flags & (O_SYNC | O_DSYNC)) != 0;
  int backing_flags = flags & ~(O_TRUNC | O_APPEND | O_SYNC | O_DSYNC | O_ACCMODE);
  int fd = ::open(real(path).c_str(), backing_flags | O_RDWR, mode);
  if (fd < 0 && errno == EACCES)
    fd = ::open(real(path).c_str(), flags & ~(O_TRUNC | O_APPEND | O_SYNC | O_DSYNC), mode);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  if (create)
    fs.files.erase(st.st_ino); // an inode number a removed file left behind
  fi->fh = reinterpret_cast<uint64_t>(new handle{fd, st.st_ino, sync_writes});
  if (flags & O_TRUNC) {
    file_state& s = state_of(fd, st.st_ino);
    s.dirty.clear();
    s.size = 0;
    s.backing_valid = 0;
  }
  return 0;
}

int op_open(const char* path, fuse_file_info* fi) {
  return open_backing(path, fi->flags, 0, fi, false);
}

int op_create(const char* path, mode_t mode, fuse_file_info* fi) {
  return open_backing(path, fi->flags | O_CREAT, mode, fi, true);
}

int op_release(const char*, fuse_file_info* fi) {
  auto* h = &of(fi);
  ::close(h->fd);
  delete h;
  return 0;
}

int op_read(const char*, char* buf, size_t len, off_t off, fuse_file_info* fi) {
  handle& h = of(fi);
  auto it = fs.files.find(h.ino);
  if (it == fs.files.end()) { // never written here: the backing file is the truth
    ssize_t r = ::pread(h.fd, buf, len, off);
    return r < 0 ? -errno : static_cast<int>(r);
  }
  file_state& s = it->second;
  uint64_t begin = static_cast<uint64_t>(off);
  if (begin >= s.size)
    return 0;
  uint64_t end = std::min(s.size, begin + len);
  page scratch(page_size);
  for (uint64_t at = begin; at < end;) {
    uint64_t n = at / page_size, in_page = at % page_size;
    uint64_t take = std::min(page_size - in_page, end - at);
    const char* from;
    if (auto d = s.dirty.find(n); d != s.dirty.end()) {
      from = d->second.data();
    } else {
      if (int rc = read_backing_page(h.fd, s, n, scratch.data()); rc != 0)
        return rc;
      from = scratch.data();
    }
    std::memcpy(buf + (at - begin), from + in_page, take);
    at += take;
  }
  return static_cast<int>(end - begin);
}

int op_write(const char*, const char* buf, size_t len, off_t off, fuse_file_info* fi) {
  handle& h = of(fi);
  file_state& s = state_of(h.fd, h.ino);
  uint64_t begin = static_cast<uint64_t>(off), end = begin + len;
  if (end > s.size)
    s.size = end;
  if (h.sync_writes)
    if (int rc = settle_truncate(h.fd, s); rc != 0)
      return rc;
  for (uint64_t at = begin; at < end;) {
    uint64_t n = at / page_size, in_page = at % page_size;
    uint64_t take = std::min(page_size - in_page, end - at);
    auto d = s.dirty.find(n);
    if (d == s.dirty.end()) {
      page p(page_size);
      if (int rc = read_backing_page(h.fd, s, n, p.data()); rc != 0)
        return rc;
      d = s.dirty.emplace(n, std::move(p)).first;
    }
    std::memcpy(d->second.data() + in_page, buf + (at - begin), take);
    if (h.sync_writes)
      if (int rc = write_page_part(h.fd, s, n, d->second, in_page, in_page + take); rc != 0)
        return rc;
    at += take;
  }
  if (h.sync_writes && ::fdatasync(h.fd) != 0)
    return -errno;
  return static_cast<int>(len);
}

int op_truncate(const char* path, off_t size, fuse_file_info* fi) {
  int fd = fi ? of(fi).fd : ::open(real(path).c_str(), O_RDWR);
  if (fd < 0)
    return -errno;
  struct stat st;
  int rc = ::fstat(fd, &st) == 0 ? 0 : -errno;
  if (rc == 0) {
    file_state& s = state_of(fd, st.st_ino);
    uint64_t to = static_cast<uint64_t>(size);
    for (auto it = s.dirty.lower_bound((to + page_size - 1) / page_size); it != s.dirty.end();)
      it = s.dirty.erase(it);
    if (auto d = s.dirty.find(to / page_size); d != s.dirty.end())
      std::memset(d->second.data() + to % page_size, 0, page_size - to % page_size);
    s.size = to;
    s.backing_valid = std::min(s.backing_valid, to);
  }
  if (!fi)
    ::close(fd);
  return rc;
}

int op_fsync(const char*, int, fuse_file_info* fi) {
  handle& h = of(fi);
  // The kernel follows each write through an O_DSYNC handle with an fsync, without saying what
  // range it covers; that write was made durable already, and a real disk's range sync would
  // not flush the file's other writes, so this fsync covers nothing more.
  if (h.sync_writes)
    return 0;
  auto it = fs.files.find(h.ino);
  if (it == fs.files.end())
    return ::fdatasync(h.fd) == 0 ? 0 : -errno;
  return sync_file(h.fd, it->second);
}

// Directory operations are durable at once (see README.md: names are not forgotten).
int op_mkdir(const char* path, mode_t mode) {
  return ::mkdir(real(path).c_str(), mode) == 0 ? 0 : -errno;
}
int op_rmdir(const char* path) { return ::rmdir(real(path).c_str()) == 0 ? 0 : -errno; }
int op_unlink(const char* path) {
  struct stat st;
  bool known = ::lstat(real(path).c_str(), &st) == 0;
  if (::unlink(real(path).c_str()) != 0)
    return -errno;
  if (known && st.st_nlink <= 1)
    fs.files.erase(st.st_ino);
  return 0;
}
int op_rename(const char* from, const char* to, unsigned int flags) {
  if (flags != 0)
    return -EINVAL;
  struct stat st;
  if (::lstat(real(to).c_str(), &st) == 0 && st.st_nlink <= 1)
    fs.files.erase(st.st_ino);
  return ::rename(real(from).c_str(), real(to).c_str()) == 0 ? 0 : -errno;
}
int op_chmod(const char* path, mode_t mode, fuse_file_info*) {
  return ::chmod(real(path).c_str(), mode) == 0 ? 0 : -errno;
}
int op_utimens(const char* path, const struct timespec tv[2], fuse_file_info*) {
  return ::utimensat(AT_FDCWD, real(path).c_str(), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}
int op_access(const char* path, int mask) {
  return ::access(real(path).c_str(), mask) == 0 ? 0 : -errno;
}
int op_statfs(const char* path, struct statvfs* st) {
  return ::statvfs(real(path).c_str(), st) == 0 ? 0 : -errno;
}
int op_fsyncdir(const char*, int, fuse_file_info*) { return 0; }

int op_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
               fuse_readdir_flags) {
  DIR* dir = ::opendir(real(path).c_str());
  if (!dir)
    return -errno;
  while (dirent* e = ::readdir(dir)) {
    struct stat st {};
    st.st_ino = e->d_ino;
    st.st_mode = static_cast<mode_t>(e->d_type) << 12;
    if (fill(buf, e->d_name, &st, 0, static_cast<fuse_fill_dir_flags>(0)))
      break;
  }
  ::closedir(dir);
  return 0;
}

void* op_init(fuse_conn_info*, fuse_config* cfg) {
  cfg->use_ino = 1;
  cfg->hard_remove = 1; // an unlinked open file keeps its backing fd, not a .fuse_hidden name
  return nullptr;
}

// The power cut: what a disk that reorders would have kept of the unsynced pages. The backing
// fds may be closed by now, so files are found again by walking BACKING (an unlinked file's
// pages are lost with it).
void cut() {
  std::mt19937_64 rng{fs.seed};
  std::bernoulli_distribution keep{fs.keep_fraction};
  uint64_t pending = 0, kept = 0;
  for (const auto& entry : fs.files)
    pending += entry.second.dirty.size();
  std::vector<std::string> dirs{fs.backing};
  while (fs.keep_fraction > 0 && !dirs.empty()) {
    std::string dir = dirs.back();
    dirs.pop_back();
    DIR* d = ::opendir(dir.c_str());
    if (!d)
      continue;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      std::string path = dir + "/" + name;
      struct stat st;
      if (name == "." || name == ".." || ::lstat(path.c_str(), &st) != 0)
        continue;
      if (S_ISDIR(st.st_mode))
        dirs.push_back(path);
      auto it = fs.files.find(st.st_ino);
      if (!S_ISREG(st.st_mode) || it == fs.files.end())
        continue;
      int fd = ::open(path.c_str(), O_RDWR);
      if (fd < 0)
        continue;
      for (auto& [n, p] : it->second.dirty)
        if (keep(rng) && write_page_part(fd, it->second, n, p, 0, page_size) == 0)
          ++kept;
      ::fdatasync(fd);
      ::close(fd);
    }
    ::closedir(d);
  }
  std::fprintf(stderr,
               "powercut_fs: power cut: %llu pages held unsynced writes, %llu of them kept; "
               "before it, %llu fsyncs had made %llu pages durable\n",
               static_cast<unsigned long long>(pending), static_cast<unsigned long long>(kept),
               static_cast<unsigned long long>(fs.syncs),
               static_cast<unsigned long long>(fs.pages_synced));
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep-fraction" && i + 1 < argc)
      fs.keep_fraction = std::atof(argv[++i]);
    else if (a == "--seed" && i + 1 < argc)
      fs.seed = std::strtoull(argv[++i], nullptr, 10);
    else
      positional.push_back(a);
  }
  if (positional.size() != 2) {
    std::fprintf(stderr, "usage: powercut_fs BACKING MOUNT [--keep-fraction F] [--seed S]\n");
    return 2;
  }
  char* backing = ::realpath(positional[0].c_str(), nullptr);
  if (!backing) {
    std::fprintf(stderr, "powercut_fs: %s: %s\n", positional[0].c_str(), std::strerror(errno));
    return 2;
  }
  fs.backing = backing;
  std::free(backing);

  fuse_operations ops{};
  ops.init = op_init;
  ops.getattr = op_getattr;
  ops.open = op_open;
  ops.create = op_create;
  ops.release = op_release;
  ops.read = op_read;
  ops.write = op_write;
  ops.truncate = op_truncate;
  ops.fsync = op_fsync;
  ops.fsyncdir = op_fsyncdir;
  ops.mkdir = op_mkdir;
  ops.rmdir = op_rmdir;
  ops.unlink = op_unlink;
  ops.rename = op_rename;
  ops.chmod = op_chmod;
  ops.utimens = op_utimens;
  ops.access = op_access;
  ops.statfs = op_statfs;
  ops.readdir = op_readdir;

  // Foreground and single-threaded: every operation runs in order on one thread, so the state
  // above needs no lock and a cut falls between two operations.
  std::vector<std::string> args{argv[0], positional[1], "-f", "-s", "-o", "fsname=powercut"};
  std::vector<char*> fuse_argv;
  for (auto& a : args)
    fuse_argv.push_back(a.data());
  int rc = fuse_main(static_cast<int>(fuse_argv.size()), fuse_argv.data(), &ops, nullptr);
  cut();
  return rc;
}
