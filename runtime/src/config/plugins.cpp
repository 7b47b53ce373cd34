// Stage plugins: finding the shared libraries an app file names, and loading them.
#include "config/app_loader.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

#ifndef TROUPE_PLUGIN_DIR_FROM_BIN
#error "TROUPE_PLUGIN_DIR_FROM_BIN (the installed plugin folder, relative to bin/) comes from runtime/CMakeLists.txt"
#endif

namespace troupe {

namespace detail {

void app_loader::read_plugins(const YAML::Node& list) {
  if (!list.IsDefined() || list.IsNull())
    return;
  if (!list.IsSequence()) {
    r_.expected(list, "plugins", "a list of plugin names or paths");
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    auto field = index("plugins", i);
    auto entry = read_string(r_, list[i], field, "a plugin name or path");
    if (!entry)
      continue;
    std::string error;
    auto path = resolve_plugin(*entry, error);
    if (!path) {
      r_.at(list[i], field, error);
      continue;
    }
    if (std::find(app_.plugins.begin(), app_.plugins.end(), *path) != app_.plugins.end())
      continue; // listed twice: loading it again would register its types twice
    if (auto failed = load_plugin(*path, reg_))
      r_.at(list[i], field, *failed);
    else
      app_.plugins.push_back(*path);
  }
}

std::optional<std::string> app_loader::resolve_plugin(const std::string& entry,
                                                      std::string& error) {
  std::error_code ec;
  auto ends_with_so = entry.size() > 3 && entry.compare(entry.size() - 3, 3, ".so") == 0;
  bool is_path = entry.find('/') != std::string::npos || ends_with_so ||
                 entry.find(".so.") != std::string::npos;
  if (is_path) {
    fs::path p(entry);
    auto full = absolute_path(p.is_absolute() ? p : fs::path(app_.base_dir) / p);
    if (fs::is_regular_file(full, ec))
      return full;
    error = "plugin file " + full + " does not exist";
    return std::nullopt;
  }
  if (!valid_name(entry)) {
    error = "expected a plugin name made of letters, digits, '_', '.' and '-' or a path to a "
            ".so, found '" +
            entry + "'";
    return std::nullopt;
  }
  auto file = "libtroupe_" + entry + ".so";
  std::vector<std::string> dirs{app_.base_dir};
  if (const char* env = std::getenv("TROUPE_PLUGIN_PATH")) {
    std::string_view rest(env);
    while (!rest.empty()) {
      auto colon = rest.find(':');
      auto dir = rest.substr(0, colon);
      if (!dir.empty())
        dirs.push_back(absolute_path(std::string(dir)));
      rest = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
    }
  }
  // Beside the executable, wherever it was built or installed: <build>/plugins for a build
  // tree's bin/troupe, <prefix>/lib/troupe/plugins for an installed one (the path the build
  // configured, relative to bin/, so a prefix that moves still finds its plugins).
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back(absolute_path(exe.parent_path() / ".." / "plugins"));
    dirs.push_back(absolute_path(exe.parent_path() / TROUPE_PLUGIN_DIR_FROM_BIN));
  }
  for (const auto& dir : dirs) {
    auto candidate = (fs::path(dir) / file).string();
    if (fs::is_regular_file(candidate, ec))
      return candidate;
  }
  error = "plugin '" + entry + "' not found: no " + file + " in " + join(dirs) +
          " (set TROUPE_PLUGIN_PATH or give a path)";
  return std::nullopt;
}

} // namespace detail

std::optional<std::string> load_plugin(const std::string& path, registry& reg) {
  dlerror();
  // RTLD_LOCAL: plugins do not see each other's symbols, only the runtime's. A loaded plugin is
  // never closed: the stage types it registered point into its code.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    return "cannot load plugin " + path + ": " + (why ? why : "unknown error");
  }
  dlerror();
  void* entry = dlsym(handle, "troupe_plugin_register");
  if (!entry) {
    dlclose(handle);
    return "plugin " + path +
           " has no troupe_plugin_register (define it with TROUPE_PLUGIN(reg) { ... })";
  }
  using register_fn = void (*)(registry&);
  try {
    reinterpret_cast<register_fn>(entry)(reg);
  } catch (const std::exception& e) {
    return "plugin " + path + " failed to register its stage types: " + e.what();
  } catch (...) {
    return "plugin " + path + " failed to register its stage types";
  }
  return std::nullopt;
}

} // namespace troupe
