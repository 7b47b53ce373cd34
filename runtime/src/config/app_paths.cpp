// The files an app's stages write and read, as their types declare them (stage_type's
// owned_paths and read_paths): no two stages may write one file (their lines would interleave
// and some be lost), and a file a stage reads that does not exist is worth a warning.
//
// Paths are compared after resolving them against the YAML's directory and through any symbolic
// links on the way (std::filesystem::weakly_canonical), so `out.jsonl`, `./out.jsonl` and the
// same file reached through a linked folder are one file. A param given as anything but a
// non-empty string is left to the stage's constructor to report.
#include "config/app_loader.hpp"

#include <filesystem>
#include <map>

namespace fs = std::filesystem;

namespace troupe::detail {

namespace {

struct owner {
  const stage_draft* stage;
  std::string field;
  int line;
};

std::string resolve(const std::string& base_dir, const std::string& text) {
  fs::path p(text);
  auto full = absolute_path(p.is_absolute() ? p : fs::path(base_dir) / p);
  std::error_code ec;
  auto canonical = fs::weakly_canonical(full, ec);
  return ec ? full : canonical.string();
}

} // namespace

void app_loader::check_paths() {
  std::map<std::string, owner> owners;
  struct reader {
    const stage_draft* stage;
    std::string field, path;
    YAML::Mark mark;
  };
  std::vector<reader> readers;
  for (auto& s : stages_) {
    const stage_type* t = s.cfg.type_info;
    if (!t)
      continue;
    auto value_of = [&](const std::string& key) -> const yaml_params::value* {
      auto v = s.own.find(key);
      if (v == s.own.end() || v->second.what != yaml_params::value::kind::scalar ||
          v->second.text.empty())
        return nullptr;
      return &v->second;
    };
    auto mark_of_value = [](const yaml_params::value& v) {
      YAML::Mark m;
      m.line = v.line - 1;
      m.column = v.column - 1;
      return m;
    };
    for (const auto& key : t->owned_paths) {
      const auto* v = value_of(key);
      if (!v)
        continue;
      auto path = resolve(app_.base_dir, v->text);
      auto field = s.field + "." + key;
      s.cfg.owned_paths.push_back(path);
      auto [at, fresh] = owners.emplace(path, owner{&s, field, v->line});
      if (!fresh)
        r_.at(mark_of_value(*v), field,
              "file " + path + " is also written by stage '" + at->second.stage->cfg.name + "' (" +
                  at->second.field + ", line " + std::to_string(at->second.line) +
                  "); two stages writing one file interleave their lines and lose some");
    }
    for (const auto& key : t->read_paths)
      if (const auto* v = value_of(key))
        readers.push_back(
            {&s, s.field + "." + key, resolve(app_.base_dir, v->text), mark_of_value(*v)});
  }
  for (const auto& in : readers) {
    if (auto o = owners.find(in.path); o != owners.end()) {
      r_.warn(in.mark, in.field,
              "stage '" + in.stage->cfg.name + "' reads " + in.path + ", which stage '" +
                  o->second.stage->cfg.name + "' writes (" + o->second.field + ", line " +
                  std::to_string(o->second.line) + "): the app reads its own output");
      continue;
    }
    std::error_code ec;
    if (!fs::exists(in.path, ec))
      r_.warn(in.mark, in.field,
              "stage '" + in.stage->cfg.name + "' reads " + in.path + ", which does not exist");
  }
}

} // namespace troupe::detail
