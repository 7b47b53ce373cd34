// libFuzzer harness for the app loader (runtime/src/config): a YAML file as a user would write
// it, with every built-in stage type known. The loader must answer any bytes with an app or a
// list of issues, never a crash, a sanitizer report or a hang. Plugins are refused up front:
// a fuzzer that names a shared library on this machine would otherwise load it. The seeds
// (corpus/yaml) name `fuzz.capnp`, copied beside the file, so that the checks behind the
// schema's are reached.
#include "builtin_stages.hpp"
#include "config/app_config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {

const std::string& work_dir() {
  static std::string dir = [] {
    std::string tmpl = "/tmp/troupe-yaml-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
      std::abort();
    std::ifstream in{TROUPE_SOURCE_DIR "/tests/fuzz/fuzz.capnp", std::ios::binary};
    std::ofstream{tmpl + "/fuzz.capnp", std::ios::binary} << in.rdbuf();
    return tmpl;
  }();
  return dir;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text{reinterpret_cast<const char*>(data), size};
  if (text.find("plugin") != std::string::npos)
    return 0;
  auto path = work_dir() + "/app.yaml";
  {
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out << text;
  }
  troupe::registry reg;
  troupe::register_builtin_stages(reg);
  auto result = troupe::load_app(path, reg, work_dir() + "/data");
  if (!result.app && result.errors() == 0)
    std::abort(); // refused without saying why
  for (const auto& issue : result.issues)
    (void)issue.to_string();
  return 0;
}
