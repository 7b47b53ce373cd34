// End to end: the dashboard a running node serves at `/`, loaded by headless Chromium (Debian's
// chromium, which runs the page's script): every stage of the app is drawn with its edges, and
// its counters move as records flow.
#include "e2e_support.hpp"
#include "node_fixture.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <regex>

#include <unistd.h>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

const char* chromium = "/usr/bin/chromium";

// The page after its script ran for a few seconds of virtual time, as HTML.
std::string rendered(const temp_dir& dir, const std::string& url) {
  auto r = run_command({chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--user-data-dir=" + dir / "chromium", "--virtual-time-budget=2500",
                        "--dump-dom", url});
  return r.output;
}

// The number shown after "in " on the card of `stage` ("in 14.9k (2019/s)"), in records.
std::optional<double> records_in(const std::string& dom, const std::string& stage) {
  auto at = dom.find("data-stage=\"" + stage + "\"");
  if (at == std::string::npos)
    return std::nullopt;
  std::smatch m;
  std::string card = dom.substr(at, 1000);
  if (!std::regex_search(card, m, std::regex(R"(>in ([0-9.]+)([kM]?) \()")))
    return std::nullopt;
  double n = std::stod(m[1].str());
  return m[2] == "k" ? n * 1e3 : m[2] == "M" ? n * 1e6 : n;
}

} // namespace

TEST_CASE("the dashboard shows every stage of a running app and its counters move",
          "[e2e][admin][dashboard]") {
  if (::access(chromium, X_OK) != 0)
    FAIL("chromium is not installed: tools/install-deps.sh installs it");
  temp_dir dir;
  write_file(dir / "tick.capnp", "@0xa1b2c3d4e5f60719;\nstruct Tick { n @0 :UInt64; note @1 :Text; }\n");
  write_file(dir / "app.yaml",
             "app: board\n"
             "schema: {file: tick.capnp, payload: Tick}\n"
             "stages:\n"
             "  - {name: gen, type: generator, count: 0, rate: 2000, payload_size: 8, output: raw}\n"
             "  - {name: copy, type: copier, workers: 2, input: raw, outputs: {a: copied}}\n"
             "  - {name: sink, type: jsonl_sink, input: copied, path: out.jsonl}\n");
  troupe_process node{dir / "app.yaml", dir / "data", dir / "node.log"};
  REQUIRE(wait_until([&] { return size_of(dir / "data/admin.json") > 0 || !node.running(); }, 30s));
  REQUIRE(node.running());
  auto address = nlohmann::json::parse(read_file(dir / "data/admin.json")).at("address").get<std::string>();
  auto url = "http://" + address + "/";

  auto first = rendered(dir, url);
  INFO(first.substr(0, 4000));
  for (const char* stage : {"gen", "copy", "sink"})
    CHECK_THAT(first, Catch::Contains(std::string("data-stage=\"") + stage + "\""));
  CHECK_THAT(first, Catch::Contains("copier · 2 workers"));
  // Counted in the drawing (the script's own text holds the markup too).
  auto svg_at = first.find("<svg id=\"svg\"");
  REQUIRE(svg_at != std::string::npos);
  auto svg = first.substr(svg_at, first.find("</svg>", svg_at) - svg_at);
  size_t edges = 0;
  for (auto at = svg.find("class=\"edge\""); at != std::string::npos; at = svg.find("class=\"edge\"", at + 1))
    ++edges;
  CHECK(edges == 2);
  auto before = records_in(first, "sink");
  REQUIRE(before);
  REQUIRE(wait_until([&] {
    auto now = records_in(rendered(dir, url), "sink");
    return now && *now > *before;
  }, 60s));
}
