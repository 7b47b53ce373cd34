// A powercut_fs mount for a test (tests/powercut/README.md): BACKING holds what a disk would
// hold, MOUNT is where the node runs; `cut` is the power going off, a new mount the power coming
// back.
#pragma once

#include "e2e/e2e_support.hpp"

#include <catch2/catch.hpp>

#include <sys/mount.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>

namespace troupe::test {

// How the power goes off: every unsynced write lost, or a random part of them kept.
enum class cut_kind { lose_all, keep_some };

class powercut_mount {
public:
  // Mounts `mount` over `backing` (both folders made if missing); REQUIREs that it works.
  powercut_mount(const std::string& backing, const std::string& mount, const std::string& log,
                 cut_kind kind = cut_kind::lose_all, uint64_t seed = 1)
      : mount_(mount), kind_(kind) {
    std::filesystem::create_directories(backing);
    std::filesystem::create_directories(mount);
    std::vector<std::string> args{std::string(TROUPE_BIN_DIR) + "/powercut_fs", backing, mount};
    if (kind == cut_kind::keep_some)
      args.insert(args.end(), {"--keep-fraction", "0.5", "--seed", std::to_string(seed)});
    daemon_ = std::make_unique<troupe_process>(args, log);
    bool up =
      wait_until([&] { return mounted() || !daemon_->running(); }, std::chrono::seconds(20));
    INFO("powercut_fs needs /dev/fuse and root (or fusermount3); " << tail_of(log));
    REQUIRE(up);
    REQUIRE(mounted());
  }
  powercut_mount(const powercut_mount&) = delete;
  powercut_mount& operator=(const powercut_mount&) = delete;
  ~powercut_mount() {
    if (daemon_)
      cut();
  }

  // The power goes off: what was not synced is gone (or, for keep_some, partly kept), and the
  // mount is taken down. Processes using it must be killed first, as a power cut kills them.
  void cut() {
    if (kind_ == cut_kind::keep_some) {
      daemon_->signal(SIGTERM); // it unmounts, then writes the pages it keeps
      if (!daemon_->wait_for_exit(std::chrono::seconds(60)))
        daemon_->kill_and_reap();
    } else {
      daemon_->kill_and_reap();
    }
    ::umount2(mount_.c_str(), MNT_DETACH); // a SIGKILLed daemon leaves its mount behind
    wait_until([&] { return !mounted(); }, std::chrono::seconds(20));
    daemon_.reset();
  }

  bool mounted() const {
    struct stat here, parent;
    auto up = std::filesystem::path(mount_).parent_path().string();
    return ::stat(mount_.c_str(), &here) == 0 && ::stat(up.c_str(), &parent) == 0 &&
           here.st_dev != parent.st_dev;
  }

private:
  std::string mount_;
  cut_kind kind_;
  std::unique_ptr<troupe_process> daemon_;
};

} // namespace troupe::test
