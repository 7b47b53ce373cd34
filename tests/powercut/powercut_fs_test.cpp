// powercut_fs's model (tests/powercut/README.md), checked with plain system calls: what a cut
// keeps and what it forgets. The e2e tests trust this; here it is shown.
#include "node_fixture.hpp"
#include "powercut/powercut_mount.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

using namespace troupe::test;

namespace {

void write_at(int fd, const std::string& bytes, off_t at) {
  REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), at) == static_cast<ssize_t>(bytes.size()));
}

int open_rw(const std::string& path, int extra = 0) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | extra, 0644);
  REQUIRE(fd >= 0);
  return fd;
}

} // namespace

TEST_CASE("powercut_fs: a cut forgets what no sync covered and keeps what one did",
          "[powercut]") {
  temp_dir dir;
  auto disk = dir / "disk", mnt = dir / "mnt", log = dir / "fs.log";
  {
    powercut_mount power{disk, mnt, log};
    int fd = open_rw(mnt + "/synced");
    write_at(fd, std::string(10000, 'A'), 0);
    REQUIRE(::fdatasync(fd) == 0);
    write_at(fd, std::string(5000, 'B'), 8000); // over the synced tail and past it
    REQUIRE(::ftruncate(fd, 3000) == 0);        // and cut, unsynced
    write_at(fd, "C", 2999);
    // Readers see the newest contents before any sync, through read and through a map.
    REQUIRE(read_file(mnt + "/synced") == std::string(2999, 'A') + "C");
    void* map = ::mmap(nullptr, 3000, PROT_READ, MAP_SHARED, fd, 0);
    REQUIRE(map != MAP_FAILED);
    CHECK(static_cast<const char*>(map)[2999] == 'C');
    ::munmap(map, 3000);
    ::close(fd);

    int dsync = open_rw(mnt + "/dsync", O_DSYNC);
    write_at(dsync, "durable", 0);
    ::close(dsync);
    int plain = open_rw(mnt + "/plain");
    write_at(plain, "volatile", 0);
    ::close(plain); // a close is no sync
  }
  powercut_mount power{disk, mnt, log};
  CHECK(read_file(mnt + "/synced") == std::string(10000, 'A'));
  CHECK(read_file(mnt + "/dsync") == "durable");
  CHECK(read_file(mnt + "/plain").empty()); // its name survives, not its contents
}

TEST_CASE("powercut_fs: a cut that keeps some pages keeps whole pages, some and not all",
          "[powercut]") {
  temp_dir dir;
  auto disk = dir / "disk", mnt = dir / "mnt", log = dir / "fs.log";
  const int pages = 200;
  {
    powercut_mount power{disk, mnt, log, cut_kind::keep_some, 42};
    int fd = open_rw(mnt + "/f");
    for (int p = 0; p < pages; ++p)
      write_at(fd, std::string(4096, static_cast<char>('a' + p % 26)), p * 4096);
    ::close(fd);
  }
  powercut_mount power{disk, mnt, log};
  auto text = read_file(mnt + "/f");
  REQUIRE(text.size() % 4096 == 0);
  int kept = 0;
  for (size_t p = 0; p < text.size() / 4096; ++p) {
    auto page = text.substr(p * 4096, 4096);
    bool zeros = page == std::string(4096, '\0');
    bool whole = page == std::string(4096, static_cast<char>('a' + p % 26));
    INFO("page " << p);
    CHECK((zeros || whole)); // never torn, never another page's bytes
    kept += whole;
  }
  INFO(kept << " of " << pages << " pages kept");
  CHECK(kept > 0);
  CHECK(kept < pages);
}
