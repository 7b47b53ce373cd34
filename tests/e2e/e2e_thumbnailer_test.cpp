// End to end: the bundled thumbnailer (apps/thumbnailer/app.yaml, unchanged) in real `troupe run`
// processes. The test makes short videos with ffmpeg's test source (names with spaces and
// Unicode, two containers), adds a corrupt one and a file the app must skip, SIGKILLs the node
// while ffmpeg runs, and runs it again to the end. The oracle is the folder: one PNG per video,
// each a whole image of the video's size (read by the test's own PNG header check and by
// ffprobe), nothing else; the corrupt video is the one dead letter, with ffmpeg's own words.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string thumbnailer_app() { return std::string(TROUPE_SOURCE_DIR) + "/apps/thumbnailer/app.yaml"; }

std::string quoted(const std::string& s) { return "'" + s + "'"; } // names hold no single quote

bool have_ffmpeg() { return std::system("ffmpeg -version > /dev/null 2>&1") == 0; }

// Width and height from a PNG's signature and IHDR chunk, if `bytes` starts as a PNG does.
std::optional<std::pair<uint32_t, uint32_t>> png_size(const std::string& bytes) {
  static const char signature[] = "\x89PNG\r\n\x1a\n";
  if (bytes.size() < 33 || bytes.compare(0, 8, signature, 8) != 0 || bytes.compare(12, 4, "IHDR") != 0)
    return std::nullopt;
  auto be32 = [&](size_t at) {
    return uint32_t(uint8_t(bytes[at])) << 24 | uint32_t(uint8_t(bytes[at + 1])) << 16 |
           uint32_t(uint8_t(bytes[at + 2])) << 8 | uint32_t(uint8_t(bytes[at + 3]));
  };
  return std::pair{be32(16), be32(20)};
}

std::set<std::string> pngs_in(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".png")
      names.insert(e.path().filename().string());
  return names;
}

struct app_env {
  app_env(const std::string& input, const std::string& out) {
    ::setenv("INPUT", input.c_str(), 1);
    ::setenv("OUT_DIR", out.c_str(), 1);
  }
  ~app_env() {
    ::unsetenv("INPUT");
    ::unsetenv("OUT_DIR");
  }
};

} // namespace

TEST_CASE("the thumbnailer makes one whole PNG per video through SIGKILLs; a corrupt video is a "
          "dead letter with ffmpeg's error",
          "[e2e][work_queue][thumbnailer]") {
  if (!have_ffmpeg())
    FAIL("ffmpeg is not installed: tools/install-deps.sh installs it");
  temp_dir dir;
  auto videos = dir / "videos", thumbs = dir / "thumbs";
  fs::create_directories(videos);
  const int count = small_scale() ? 8 : 16;
  std::set<std::string> expected;
  for (int i = 0; i < count; ++i) {
    auto name = (i % 3 == 0 ? "clip é " : "take_") + std::to_string(i);
    auto file = name + (i % 4 == 1 ? ".mkv" : ".mp4");
    auto cmd = "ffmpeg -nostdin -v error -f lavfi -i testsrc=duration=1:size=96x64:rate=10 "
               "-c:v mpeg4 " + quoted(videos + "/" + file);
    REQUIRE(std::system(cmd.c_str()) == 0);
    expected.insert(name + ".png");
  }
  std::string garbage;
  for (int i = 0; i < 100; ++i)
    garbage += "this is not a video\n";
  write_file(videos + "/broken.mp4", garbage);
  write_file(videos + "/notes.txt", "not a video, and not named like one\n");

  app_env env{videos, thumbs};
  auto data = dir / "data";
  int kills = 0;
  for (size_t at_least : {size_t(1), size_t(count / 2)}) {
    troupe_process node{thumbnailer_app(), data, dir / "node.log"};
    wait_until([&] { return pngs_in(thumbs).size() >= at_least || !node.running(); }, 60s);
    if (killed_by(node.kill_and_reap(), SIGKILL))
      ++kills;
  }
  troupe_process node{thumbnailer_app(), data, dir / "node.log"};
  REQUIRE(node.wait_for_exit(120s));
  INFO(tail_of(dir / "node.log"));
  REQUIRE(exited_ok(node.status()));
  std::cerr << "thumbnailer: " << kills << " SIGKILLs mid-run\n";

  // One thumbnail per video and nothing else: no PNG for the corrupt video or the text file, no
  // half-written file left in the folder.
  CHECK(pngs_in(thumbs) == expected);
  for (const auto& png : expected) {
    INFO(png);
    auto size = png_size(read_file(thumbs + "/" + png));
    REQUIRE(size);
    CHECK(*size == std::pair<uint32_t, uint32_t>{96, 64});
    CHECK(std::system(("ffprobe -v error " + quoted(thumbs + "/" + png) + " > /dev/null").c_str()) == 0);
  }
  CHECK(pngs_in(thumbs + "/.partial").empty());

  // The corrupt video is the one dead letter, after its two attempts, with ffmpeg's error.
  auto dead = stored_dead_letters(thumbnailer_app(), data, "thumb");
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].attempts == 2);
  CHECK_THAT(dead[0].error, Catch::Contains("broken.mp4: Invalid data found when processing input") &&
                                Catch::Contains("exited with status 1"));
  // troupectl shows it with the video's path, given the app.
  auto ctl = std::string(TROUPE_BIN_DIR) + "/troupectl";
  auto list = run_command({ctl, "--app", thumbnailer_app(), "--data", data, "dlq", "list", "thumb"});
  CHECK(exit_code(list.status) == 0);
  CHECK_THAT(list.output, Catch::Contains("1 dead letter") && Catch::Contains("broken.mp4"));
}

TEST_CASE("the thumbnailer on a folder that is not there exits 1 naming it", "[e2e][thumbnailer]") {
  temp_dir dir;
  app_env env{dir / "no such videos", dir / "thumbs"};
  auto lint = run_troupe({"lint", thumbnailer_app()});
  CHECK(exit_code(lint.status) == 0);
  CHECK_THAT(lint.output, Catch::Contains("app.yaml:16:11: warning: stages[0].path") &&
                              Catch::Contains("no such videos, which does not exist"));
  auto run = run_troupe({"run", thumbnailer_app(), "--data-dir", dir / "data"});
  CHECK(exit_code(run.status) == 1);
  CHECK_THAT(run.output, Catch::Contains("dir_source: " + dir / "no such videos" + " is not a folder"));
  CHECK(pngs_in(dir / "thumbs").empty());
}
