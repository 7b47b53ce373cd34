// Tests of runtime/src/config/app_paths.cpp: the files stages own (write) and read.
#include "config_support.hpp"

#include <catch2/catch.hpp>

using namespace troupe;
using namespace troupe::test;

namespace {

// A sink owning the file named by `path`, and a source reading the file named by `path`.
void add_file_types(registry& reg) {
  reg.add(type("test.file_sink", stage_kind::sink)).owns_paths({"path"});
  reg.add(type("test.file_source", stage_kind::source)).outputs({"out"}).reads_paths({"path"});
}

} // namespace

TEST_CASE("two stages writing one file is an error naming both", "[runtime][config]") {
  temp_dir d;
  fs::create_directories(d.path / "real");
  fs::create_directory_symlink(d.path / "real", d.path / "link");
  auto file = d.write("app.yaml", "app: two-writers\n"
                                  "stages:\n"
                                  "  - {name: gen, type: test.source, output: x}\n"
                                  "  - name: w1\n"
                                  "    type: test.file_sink\n"
                                  "    input: x\n"
                                  "    path: real/out.jsonl\n"
                                  "  - name: w2\n"
                                  "    type: test.file_sink\n"
                                  "    input: x\n"
                                  "    path: ./real/../real/out.jsonl\n"
                                  "  - name: w3\n"
                                  "    type: test.file_sink\n"
                                  "    input: x\n"
                                  "    path: link/out.jsonl\n"
                                  "  - name: w4\n"
                                  "    type: test.file_sink\n"
                                  "    input: x\n"
                                  "    path: real/other.jsonl\n");
  loaded l(file, load_options{}, add_file_types);
  auto out = fs::weakly_canonical(d.path / "real/out.jsonl").string();
  check_issue(l, "stages[2].path", 11, 11,
              "file " + out +
                  " is also written by stage 'w1' (stages[1].path, line 7); two "
                  "stages writing one file interleave their lines and lose some");
  check_issue(l, "stages[3].path", 15, 11,
              "is also written by stage 'w1' (stages[1].path, line 7)");
  CHECK(l.issues().size() == 2);
}

TEST_CASE("the files a stage owns are resolved into its config", "[runtime][config]") {
  temp_dir d;
  auto file =
      d.write("app.yaml", "app: one-writer\n"
                          "stages:\n"
                          "  - {name: gen, type: test.source, output: x}\n"
                          "  - {name: w, type: test.file_sink, input: x, path: out/o.jsonl}\n");
  loaded l(file, load_options{}, add_file_types);
  INFO(dump(l.issues()));
  REQUIRE(l.result.app);
  CHECK(l.app().stages[1].owned_paths ==
        std::vector<std::string>{fs::weakly_canonical(d.path / "out/o.jsonl").string()});
  CHECK(l.app().stages[0].owned_paths.empty());
}

TEST_CASE("a file a stage reads that does not exist is a warning, and the app still loads",
          "[runtime][config]") {
  temp_dir d;
  d.write("here.jsonl", "{}\n");
  auto file = d.write("app.yaml",
                      "app: readers\n"
                      "stages:\n"
                      "  - {name: a, type: test.file_source, path: gone.jsonl, output: x}\n"
                      "  - {name: b, type: test.file_source, path: here.jsonl, output: y}\n"
                      "  - {name: c, type: test.file_source, path: o.jsonl, output: z}\n"
                      "  - {name: w, type: test.file_sink, inputs: [x, y, z], path: o.jsonl}\n");
  loaded l(file, load_options{}, add_file_types);
  INFO(dump(l.issues()));
  REQUIRE(l.issues().size() == 2);
  CHECK(l.result.errors() == 0);
  CHECK(l.result.warnings() == 2);
  REQUIRE(l.result.app); // warnings do not stop an app
  const auto& gone = l.issues()[0];
  CHECK(gone.severity == issue_severity::warning);
  CHECK(gone.line == 3);
  CHECK(gone.field == "stages[0].path");
  CHECK_THAT(gone.to_string(),
             Catch::EndsWith(": warning: stages[0].path: stage 'a' reads " +
                             (fs::weakly_canonical(d.path) / "gone.jsonl").string() +
                             ", which does not exist"));
  CHECK_THAT(l.issues()[1].message,
             Catch::Contains("which stage 'w' writes (stages[3].path, line 6)"));
}
