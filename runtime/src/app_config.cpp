// Loading an app's YAML file (the format is documented in runtime/CONFIG.md).
//
// load_app reads the whole file and checks all of it before giving up, so that one run reports
// every mistake: each becomes a config_issue with the file, line, column and field path it is
// about. Checks that would only repeat an earlier mistake are skipped (a stage of an unknown
// type gets no port checks; stages are not built when the payload schema failed to load).
//
// Passes, in order: the top-level settings; plugins (so their types are known); the payload
// schema; `edges:` overrides; each stage on its own; the graph of edges across stages; finally
// each stage is built once through its type's `make` (constructors only read their params) so
// that parameter errors surface at load time, as `troupe lint` needs.
//
// Also here: the yaml-backed troupe::params (a plain copy of the stage's keys, so nothing of
// yaml-cpp is touched after loading and any worker thread may read it), the schema loader and
// plugin loading.
#include "app_config.hpp"

#include <capnp/schema-parser.h>
#include <kj/filesystem.h>
#include <yaml-cpp/yaml.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

namespace fs = std::filesystem;

namespace troupe {

// ---------------------------------------------------------------------------------------------
// The payload schema. Owns the parser and every directory it reads, for as long as a
// StructSchema taken from it is in use.

class schema_loader {
public:
  // Reads the disk through a handle on "/" rather than kj::newDiskFilesystem(), which consults
  // $PWD and warns when a parent process changed directory without updating it.
  schema_loader() {
    int fd = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    KJ_SYSCALL(fd, "cannot open /");
    root_ = kj::newDiskReadableDirectory(kj::AutoCloseFd(fd));
  }

  // Parses `file` (absolute). Absolute imports (`import "/x.capnp"`) are searched in
  // `import_dirs` (absolute, existing), in order. Throws kj::Exception on any error.
  capnp::ParsedSchema parse(const std::string& file, const std::vector<std::string>& import_dirs) {
    for (const auto& dir : import_dirs) {
      KJ_IF_MAYBE (opened, root_->tryOpenSubdir(from_root(dir))) {
        dirs_.push_back(kj::mv(*opened));
        import_path_.push_back(dirs_.back().get());
      }
    }
    return parser_.parseFromDirectory(*root_, from_root(file),
                                      kj::arrayPtr(import_path_.data(), import_path_.size()));
  }

private:
  static kj::Path from_root(const std::string& absolute) {
    return kj::Path(nullptr).eval(absolute.c_str());
  }

  kj::Own<const kj::ReadableDirectory> root_;
  std::vector<kj::Own<const kj::ReadableDirectory>> dirs_;
  std::vector<const kj::ReadableDirectory*> import_path_;
  capnp::SchemaParser parser_; // declared last: destroyed first, while the directories exist
};

namespace {

// A config_error that knows where it is: thrown by yaml_params, so that the loader can report
// the exact key even though the error passed through a stage's constructor.
class located_config_error : public config_error {
public:
  explicit located_config_error(config_issue issue)
      : config_error(issue.to_string()), issue_(std::move(issue)) {}
  const config_issue& issue() const { return issue_; }

private:
  config_issue issue_;
};

// ---------------------------------------------------------------------------------------------
// Scalars

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos)
    return {};
  auto e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<uint64_t> parse_uint(std::string_view s) {
  if (!all_digits(s))
    return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    uint64_t d = uint64_t(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10)
      return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<double> parse_double(const std::string& s) {
  if (s.empty())
    return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "true" || s == "yes" || s == "on")
    return true;
  if (s == "false" || s == "no" || s == "off")
    return false;
  return std::nullopt;
}

bool valid_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : sep) + item;
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" when one of `choices` is a likely intended spelling of `word`.
std::string suggest(std::string_view word, const std::vector<std::string>& choices) {
  const std::string* best = nullptr;
  size_t best_distance = 3; // beyond two edits it is a different word
  for (const auto& choice : choices) {
    size_t d = edit_distance(word, choice);
    if (d < best_distance && d < std::max<size_t>(word.size(), 2)) {
      best = &choice;
      best_distance = d;
    }
  }
  return best ? " (did you mean '" + *best + "'?)" : "";
}

std::string absolute_path(const fs::path& p) {
  auto out = fs::absolute(p.empty() ? fs::path(".") : p).lexically_normal();
  if (!out.has_filename() && out.has_parent_path() && out != out.root_path())
    out = out.parent_path(); // "a/b/" -> "a/b"
  return out.string();
}

// ---------------------------------------------------------------------------------------------
// The params a stage sees: its own keys, copied out of the YAML tree.

class yaml_params final : public params {
public:
  struct value {
    enum class kind { null, scalar, map, list } what = kind::null;
    std::string text; // the scalar's text
    int line = 0;
    int column = 0;
  };

  yaml_params(std::string file, std::string field, int line, int column, std::string base_dir,
              std::map<std::string, value, std::less<>> values,
              std::shared_ptr<schema_loader> schemas, std::optional<capnp::StructSchema> schema)
      : file_(std::move(file)), field_(std::move(field)), line_(line), column_(column),
        base_dir_(std::move(base_dir)), values_(std::move(values)), schemas_(std::move(schemas)),
        schema_(schema) {}

  bool has(std::string_view key) const override {
    auto* v = find(key);
    return v && v->what != value::kind::null;
  }

  std::string get_string(std::string_view key) const override {
    auto* v = find(key);
    if (!v || v->what == value::kind::null)
      throw_missing(key, "a string");
    return scalar(key, *v, "a string");
  }

  std::string get_string(std::string_view key, std::string_view fallback) const override {
    auto* v = find(key);
    if (!v || v->what == value::kind::null)
      return std::string(fallback);
    return scalar(key, *v, "a string");
  }

  uint64_t get_u64(std::string_view key, uint64_t fallback) const override {
    auto* v = find(key);
    if (!v || v->what == value::kind::null)
      return fallback;
    auto parsed = parse_uint(scalar(key, *v, "a non-negative integer"));
    if (!parsed)
      throw_at(*v, key, "expected a non-negative integer, found " + describe(*v));
    return *parsed;
  }

  double get_double(std::string_view key, double fallback) const override {
    auto* v = find(key);
    if (!v || v->what == value::kind::null)
      return fallback;
    auto parsed = parse_double(scalar(key, *v, "a number"));
    if (!parsed)
      throw_at(*v, key, "expected a number, found " + describe(*v));
    return *parsed;
  }

  bool get_bool(std::string_view key, bool fallback) const override {
    auto* v = find(key);
    if (!v || v->what == value::kind::null)
      return fallback;
    auto parsed = parse_bool(scalar(key, *v, "true or false"));
    if (!parsed)
      throw_at(*v, key, "expected true or false, found " + describe(*v));
    return *parsed;
  }

  std::string get_path(std::string_view key) const override {
    auto text = get_string(key);
    if (text.empty())
      throw_at(*find(key), key, "expected a path, found ''");
    fs::path p(text);
    return absolute_path(p.is_absolute() ? p : fs::path(base_dir_) / p);
  }

  std::optional<capnp::StructSchema> payload_schema() const override { return schema_; }

  [[noreturn]] void fail(std::string_view key, std::string_view message) const override {
    if (auto* v = find(key))
      throw_at(*v, key, std::string(message));
    throw located_config_error({file_, line_, column_, field_of(key), std::string(message)});
  }

private:
  const value* find(std::string_view key) const {
    auto i = values_.find(key);
    return i == values_.end() ? nullptr : &i->second;
  }

  std::string field_of(std::string_view key) const {
    return key.empty() ? field_ : field_ + "." + std::string(key);
  }

  static std::string describe(const value& v) {
    switch (v.what) {
    case value::kind::null:
      return "nothing";
    case value::kind::scalar:
      return "'" + v.text + "'";
    case value::kind::map:
      return "a map";
    case value::kind::list:
      return "a list";
    }
    return "?";
  }

  const std::string& scalar(std::string_view key, const value& v, const char* expected) const {
    if (v.what != value::kind::scalar)
      throw_at(v, key, std::string("expected ") + expected + ", found " + describe(v));
    return v.text;
  }

  [[noreturn]] void throw_at(const value& v, std::string_view key, std::string message) const {
    throw located_config_error({file_, v.line, v.column, field_of(key), std::move(message)});
  }

  [[noreturn]] void throw_missing(std::string_view key, const char* expected) const {
    throw located_config_error(
        {file_, line_, column_, field_of(key),
         "missing key '" + std::string(key) + "' (expected " + expected + ")"});
  }

  std::string file_;
  std::string field_; // "stages[3]"
  int line_, column_; // of the stage's map
  std::string base_dir_;
  std::map<std::string, value, std::less<>> values_;
  std::shared_ptr<schema_loader> schemas_; // keeps schema_ valid
  std::optional<capnp::StructSchema> schema_;
};

// ---------------------------------------------------------------------------------------------
// Reading YAML nodes, reporting what is wrong with them

int line_of(const YAML::Mark& m) {
  return m.is_null() ? 0 : m.line + 1;
}
int column_of(const YAML::Mark& m) {
  return m.is_null() ? 0 : m.column + 1;
}

YAML::Mark mark_of(const YAML::Node& n) {
  return n.IsDefined() ? n.Mark() : YAML::Mark::null_mark();
}

std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull())
    return "nothing";
  if (n.IsScalar())
    return "'" + n.Scalar() + "'";
  if (n.IsMap())
    return n.size() == 0 ? "an empty map" : "a map";
  if (n.IsSequence())
    return n.size() == 0 ? "an empty list" : "a list";
  return "something else";
}

std::string index(const std::string& field, size_t i) {
  return field + "[" + std::to_string(i) + "]";
}

std::string dot(const std::string& field, const std::string& key) {
  return field.empty() ? key : field + "." + key;
}

class reporter {
public:
  explicit reporter(std::string file) : file_(std::move(file)) {}

  void at(const YAML::Mark& m, std::string field, std::string message) {
    issues_.push_back({file_, line_of(m), column_of(m), std::move(field), std::move(message)});
  }
  void at(const YAML::Node& n, std::string field, std::string message) {
    at(mark_of(n), std::move(field), std::move(message));
  }
  void expected(const YAML::Node& n, const std::string& field, const std::string& what) {
    at(n, field, "expected " + what + ", found " + describe(n));
  }
  void add(config_issue issue) { issues_.push_back(std::move(issue)); }

  const std::string& file() const { return file_; }
  size_t count() const { return issues_.size(); }
  std::vector<config_issue> take() {
    std::stable_sort(issues_.begin(), issues_.end(), [](const auto& a, const auto& b) {
      return std::make_pair(a.line, a.column) < std::make_pair(b.line, b.column);
    });
    return std::move(issues_);
  }

private:
  std::string file_;
  std::vector<config_issue> issues_;
};

// True when `n` is a map to read; null counts as an empty map (nothing to read).
bool open_map(reporter& r, const YAML::Node& n, const std::string& field) {
  if (!n.IsDefined() || n.IsNull())
    return false;
  if (!n.IsMap()) {
    r.expected(n, field, "a map");
    return false;
  }
  return true;
}

// Reports keys given twice and, unless `allowed` is empty, keys not in `allowed`.
void check_keys(reporter& r, const YAML::Node& map, const std::string& field,
                const std::vector<std::string>& allowed) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    YAML::Node key = entry.first;
    if (!key.IsScalar()) {
      r.expected(key, field, "a plain key");
      continue;
    }
    const auto& name = key.Scalar();
    if (!seen.insert(name).second)
      r.at(key, dot(field, name), "key '" + name + "' is given twice");
    else if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end())
      r.at(key, dot(field, name),
           "unknown key '" + name + "'" + suggest(name, allowed) + "; expected one of " +
               join(allowed));
  }
}

std::string range_text(uint64_t min, uint64_t max) {
  if (max == std::numeric_limits<uint64_t>::max())
    return min == 0 ? "a non-negative integer" : "an integer >= " + std::to_string(min);
  return "an integer from " + std::to_string(min) + " to " + std::to_string(max);
}

std::optional<uint64_t> read_uint(reporter& r, const YAML::Node& n, const std::string& field,
                                  uint64_t min, uint64_t max) {
  std::optional<uint64_t> v = n.IsScalar() ? parse_uint(trim(n.Scalar())) : std::nullopt;
  if (!v || *v < min || *v > max) {
    r.expected(n, field, range_text(min, max));
    return std::nullopt;
  }
  return v;
}

std::optional<uint32_t> read_u32(reporter& r, const YAML::Node& n, const std::string& field,
                                 uint32_t min,
                                 uint32_t max = std::numeric_limits<uint32_t>::max()) {
  auto v = read_uint(r, n, field, min, max);
  return v ? std::optional<uint32_t>(uint32_t(*v)) : std::nullopt;
}

std::optional<std::chrono::milliseconds> read_duration(reporter& r, const YAML::Node& n,
                                                       const std::string& field, bool positive) {
  auto v = n.IsScalar() ? parse_duration(n.Scalar()) : std::nullopt;
  if (!v || (positive && v->count() == 0)) {
    r.expected(n, field,
               std::string("a duration") + (positive ? " > 0" : "") +
                   " such as 250ms, 2s, 5m, 1h or 1h30m");
    return std::nullopt;
  }
  return v;
}

std::optional<double> read_fraction(reporter& r, const YAML::Node& n, const std::string& field) {
  auto v = n.IsScalar() ? parse_double(trim(n.Scalar())) : std::nullopt;
  if (!v || *v < 0 || *v > 1) {
    r.expected(n, field, "a number from 0 to 1");
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> read_string(reporter& r, const YAML::Node& n, const std::string& field,
                                       const char* what = "a string") {
  if (!n.IsScalar() || n.Scalar().empty()) {
    r.expected(n, field, what);
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::string> read_name(reporter& r, const YAML::Node& n, const std::string& field,
                                     const char* what) {
  if (!n.IsScalar() || !valid_name(n.Scalar())) {
    r.expected(n, field, std::string(what) + " made of letters, digits, '_', '.' and '-'");
    return std::nullopt;
  }
  return n.Scalar();
}

template <class T>
std::optional<T> read_enum(reporter& r, const YAML::Node& n, const std::string& field,
                           const std::vector<std::pair<std::string, T>>& choices) {
  std::vector<std::string> names;
  for (const auto& [name, v] : choices) {
    if (n.IsScalar() && n.Scalar() == name)
      return v;
    names.push_back(name);
  }
  auto hint = n.IsScalar() ? suggest(n.Scalar(), names) : "";
  r.at(n, field, "expected one of " + join(names, " | ") + ", found " + describe(n) + hint);
  return std::nullopt;
}

// The three policy maps: each overlays the keys it names onto `into`, so that a stage inherits
// from `defaults:` (and supervision from the top-level `supervision:`) key by key.

void read_batch(reporter& r, const YAML::Node& n, const std::string& field, batch_config& into) {
  if (!open_map(r, n, field))
    return;
  check_keys(r, n, field, {"max_items", "max_delay"});
  if (auto v = n["max_items"]; v.IsDefined())
    if (auto x = read_u32(r, v, field + ".max_items", 1))
      into.max_items = *x;
  if (auto v = n["max_delay"]; v.IsDefined())
    if (auto x = read_duration(r, v, field + ".max_delay", false))
      into.max_delay = *x;
}

void read_retry(reporter& r, const YAML::Node& n, const std::string& field, retry_config& into) {
  if (!open_map(r, n, field))
    return;
  check_keys(r, n, field, {"max_attempts", "backoff"});
  if (auto v = n["max_attempts"]; v.IsDefined())
    if (auto x = read_u32(r, v, field + ".max_attempts", 1))
      into.max_attempts = *x;
  if (auto v = n["backoff"]; v.IsDefined())
    if (auto x = read_duration(r, v, field + ".backoff", false))
      into.backoff = *x;
}

void read_supervision(reporter& r, const YAML::Node& n, const std::string& field,
                      supervision_config& into) {
  if (!open_map(r, n, field))
    return;
  check_keys(r, n, field, {"strategy", "max_restarts", "within", "backoff"});
  if (auto v = n["strategy"]; v.IsDefined())
    if (auto x = read_enum<restart_strategy>(r, v, field + ".strategy",
                                             {{"one_for_one", restart_strategy::one_for_one},
                                              {"one_for_all", restart_strategy::one_for_all},
                                              {"rest_for_one", restart_strategy::rest_for_one}}))
      into.strategy = *x;
  if (auto v = n["max_restarts"]; v.IsDefined())
    if (auto x = read_u32(r, v, field + ".max_restarts", 0))
      into.max_restarts = *x;
  if (auto v = n["within"]; v.IsDefined())
    if (auto x = read_duration(r, v, field + ".within", true))
      into.within = *x;
  const YAML::Node backoff = n["backoff"];
  auto bfield = field + ".backoff";
  if (!open_map(r, backoff, bfield))
    return;
  check_keys(r, backoff, bfield, {"min", "max", "jitter"});
  bool ok = true;
  if (auto v = backoff["min"]; v.IsDefined()) {
    auto x = read_duration(r, v, bfield + ".min", false);
    ok = ok && x;
    if (x)
      into.backoff_min = *x;
  }
  if (auto v = backoff["max"]; v.IsDefined()) {
    auto x = read_duration(r, v, bfield + ".max", false);
    ok = ok && x;
    if (x)
      into.backoff_max = *x;
  }
  if (auto v = backoff["jitter"]; v.IsDefined())
    if (auto x = read_fraction(r, v, bfield + ".jitter"))
      into.jitter = *x;
  if (ok && into.backoff_min > into.backoff_max)
    r.at(backoff, bfield,
         "expected min <= max, found min " + std::to_string(into.backoff_min.count()) +
             "ms and max " + std::to_string(into.backoff_max.count()) + "ms");
}

// ---------------------------------------------------------------------------------------------
// The loader

const std::vector<std::string> top_keys = {"app",     "data_dir", "durability",  "store",
                                           "plugins", "schema",   "supervision", "defaults",
                                           "edges",   "stages"};
// The keys of a stage the runtime owns; every other key is the stage's own parameter.
const std::vector<std::string> stage_keys = {"name",   "type",    "inputs", "input", "outputs",
                                             "output", "workers", "batch",  "retry", "supervision"};
constexpr uint32_t max_workers = 4096;

struct edge_ref {
  std::string edge;
  std::string field; // "stages[1].inputs[0]", "stages[1].outputs.out"
  YAML::Mark mark;
};

struct stage_draft {
  stage_config cfg;
  std::string field; // "stages[i]"
  YAML::Mark mark;
  std::map<std::string, yaml_params::value, std::less<>> own; // the stage's params
  std::vector<edge_ref> inputs;
  std::vector<std::pair<std::string, edge_ref>> outputs; // port -> edge
  // As written (input or inputs, ...); optional because a default YAML::Node is a defined null.
  std::optional<YAML::Node> inputs_key, outputs_key, workers_value;
};

struct edge_override {
  edge_spec spec;
  std::string field;
  YAML::Mark mark;
};

class app_loader {
public:
  app_loader(const std::string& path, registry& reg, const std::string& data_dir_override)
      : r_(path), reg_(reg), data_dir_override_(data_dir_override) {
    app_.file = path;
  }

  load_result run() {
    load_result out;
    try {
      load();
    } catch (const std::exception& e) { // a bug of the loader; never let it escape
      r_.at(YAML::Mark::null_mark(), "", std::string("internal error while loading: ") + e.what());
    }
    out.schemas = schemas_;
    out.issues = r_.take();
    if (out.issues.empty())
      out.app = std::move(app_);
    return out;
  }

private:
  void load() {
    YAML::Node root;
    std::error_code ec;
    if (!fs::is_regular_file(app_.file, ec)) {
      r_.at(YAML::Mark::null_mark(), "",
            "cannot read the app file: it does not exist or is not a file");
      return;
    }
    try {
      root = YAML::LoadFile(app_.file);
    } catch (const YAML::ParserException& e) {
      r_.at(e.mark, "", "YAML syntax error: " + e.msg);
      return;
    } catch (const YAML::BadFile&) {
      r_.at(YAML::Mark::null_mark(), "", "cannot read the app file");
      return;
    }
    if (!root.IsMap()) {
      r_.expected(root, "", "a map of app settings (app, stages, ...)");
      return;
    }
    app_.base_dir = absolute_path(fs::path(app_.file).parent_path());
    check_keys(r_, root, "", top_keys);
    read_settings(root);
    read_plugins(root["plugins"]);
    read_schema(root["schema"]);
    read_edges(root["edges"]);
    read_stages(root);
    check_graph();
    build_stages();
  }

  void read_settings(const YAML::Node& root) {
    if (auto v = root["app"]; !v.IsDefined())
      r_.at(root, "app", "missing required key 'app' (the app's name)");
    else if (auto name = read_name(r_, v, "app", "an app name"))
      app_.name = *name;

    std::string data_dir = data_dir_override_;
    if (auto v = root["data_dir"]; v.IsDefined())
      if (auto dir = read_string(r_, v, "data_dir", "a directory"); dir && data_dir.empty())
        data_dir = *dir;
    if (data_dir.empty())
      data_dir = "troupe-data/" + app_.name;
    app_.data_dir = absolute_path(data_dir);

    if (auto v = root["durability"]; v.IsDefined())
      if (auto d = read_enum<durability>(
              r_, v, "durability", {{"process", durability::process}, {"sync", durability::sync}}))
        app_.mode = *d;

    if (const YAML::Node store = root["store"]; open_map(r_, store, "store")) {
      check_keys(r_, store, "store", {"map_size", "flush_interval"});
      if (auto v = store["map_size"]; v.IsDefined()) {
        auto size = v.IsScalar() ? parse_size(v.Scalar()) : std::nullopt;
        if (!size || *size == 0)
          r_.expected(v, "store.map_size", "a size > 0 such as 4096, 512MiB or 1GiB");
        else
          app_.map_size = *size;
      }
      if (auto v = store["flush_interval"]; v.IsDefined())
        if (auto d = read_duration(r_, v, "store.flush_interval", true))
          app_.flush_interval = *d;
    }

    read_supervision(r_, root["supervision"], "supervision", app_.node_supervision);
    default_supervision_ = app_.node_supervision;
    if (const YAML::Node defaults = root["defaults"]; open_map(r_, defaults, "defaults")) {
      check_keys(r_, defaults, "defaults", {"batch", "retry", "supervision"});
      read_batch(r_, defaults["batch"], "defaults.batch", default_batch_);
      read_retry(r_, defaults["retry"], "defaults.retry", default_retry_);
      read_supervision(r_, defaults["supervision"], "defaults.supervision", default_supervision_);
    }
  }

  // ---- plugins

  void read_plugins(const YAML::Node& list) {
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

  std::optional<std::string> resolve_plugin(const std::string& entry, std::string& error) {
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
    auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec)
      dirs.push_back(absolute_path(exe.parent_path() / ".." / "plugins"));
    for (const auto& dir : dirs) {
      auto candidate = (fs::path(dir) / file).string();
      if (fs::is_regular_file(candidate, ec))
        return candidate;
    }
    error = "plugin '" + entry + "' not found: no " + file + " in " + join(dirs) +
            " (set TROUPE_PLUGIN_PATH or give a path)";
    return std::nullopt;
  }

  // ---- schema

  void read_schema(const YAML::Node& schema) {
    if (!open_map(r_, schema, "schema"))
      return;
    schema_given_ = true;
    check_keys(r_, schema, "schema", {"file", "payload", "import_path"});
    const YAML::Node file_node = schema["file"];
    const YAML::Node payload_node = schema["payload"];
    std::optional<std::string> file, payload;
    if (!file_node.IsDefined())
      r_.at(schema, "schema.file", "missing required key 'file' (the .capnp file)");
    else
      file = read_string(r_, file_node, "schema.file", "a .capnp file");
    if (!payload_node.IsDefined())
      r_.at(schema, "schema.payload", "missing required key 'payload' (a struct in the file)");
    else
      payload = read_string(r_, payload_node, "schema.payload", "a struct name");

    std::vector<std::string> import_dirs;
    bool imports_ok = read_import_path(schema["import_path"], import_dirs);
    import_dirs.push_back("/usr/include"); // so that `import "/capnp/c++.capnp"` works
    if (!file || !payload || !imports_ok)
      return;

    auto path = absolute_path(fs::path(app_.base_dir) / *file);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      r_.at(file_node, "schema.file", "schema file " + path + " does not exist");
      return;
    }
    schemas_ = std::make_shared<schema_loader>();
    capnp::ParsedSchema parsed;
    try {
      parsed = schemas_->parse(path, import_dirs);
    } catch (const kj::Exception& e) {
      r_.at(file_node, "schema.file", "cannot parse schema " + path + ": " + schema_error(e));
      return;
    }
    if (auto found = find_struct(parsed, *payload, payload_node)) {
      app_.schema_file = path;
      app_.payload_type = *payload;
      app_.payload_schema = *found;
      schema_failed_ = false;
    }
  }

  // "orders.capnp:5: Parse error." - the parser's exception names the file (by a path relative
  // to some directory of its own choosing, hence only the file name here) and a 0-based line.
  static std::string schema_error(const kj::Exception& e) {
    std::string file = e.getFile() ? e.getFile() : "";
    std::string where;
    if (file.size() > 6 && file.compare(file.size() - 6, 6, ".capnp") == 0)
      where = fs::path(file).filename().string() + ":" + std::to_string(e.getLine() + 1) + ": ";
    return where + e.getDescription().cStr();
  }

  bool read_import_path(const YAML::Node& list, std::vector<std::string>& dirs) {
    if (!list.IsDefined() || list.IsNull())
      return true;
    if (!list.IsSequence()) {
      r_.expected(list, "schema.import_path", "a list of directories");
      return false;
    }
    bool ok = true;
    for (size_t i = 0; i < list.size(); ++i) {
      auto field = index("schema.import_path", i);
      auto dir = read_string(r_, list[i], field, "a directory");
      if (!dir) {
        ok = false;
        continue;
      }
      auto full = absolute_path(fs::path(app_.base_dir) / *dir);
      std::error_code ec;
      if (!fs::is_directory(full, ec)) {
        r_.at(list[i], field, "import directory " + full + " does not exist");
        ok = false;
        continue;
      }
      dirs.push_back(full);
    }
    return ok;
  }

  std::optional<capnp::StructSchema> find_struct(capnp::ParsedSchema scope, const std::string& name,
                                                 const YAML::Node& at) {
    std::string_view rest(name);
    std::string walked;
    while (true) {
      auto dot_at = rest.find('.');
      std::string part(rest.substr(0, dot_at));
      std::vector<std::string> known;
      for (auto nested : scope.getAllNested())
        known.push_back(nested.getShortDisplayName().cStr());
      KJ_IF_MAYBE (next, scope.findNested(part)) {
        scope = *next;
      } else {
        r_.at(at, "schema.payload",
              "no declaration '" + part + "' in " + (walked.empty() ? "the schema file" : walked) +
                  suggest(part, known) + "; found: " + (known.empty() ? "nothing" : join(known)));
        return std::nullopt;
      }
      walked += (walked.empty() ? "" : ".") + part;
      if (dot_at == std::string_view::npos)
        break;
      rest = rest.substr(dot_at + 1);
    }
    if (!scope.getProto().isStruct()) {
      const char* kind = "not a struct";
      switch (scope.getProto().which()) {
      case capnp::schema::Node::ENUM:
        kind = "an enum";
        break;
      case capnp::schema::Node::INTERFACE:
        kind = "an interface";
        break;
      case capnp::schema::Node::CONST:
        kind = "a constant";
        break;
      case capnp::schema::Node::ANNOTATION:
        kind = "an annotation";
        break;
      default:
        break;
      }
      r_.at(at, "schema.payload", "expected a struct, found '" + name + "', " + kind);
      return std::nullopt;
    }
    return scope.asStruct();
  }

  // ---- edges

  void read_edges(const YAML::Node& edges) {
    if (!open_map(r_, edges, "edges"))
      return;
    check_keys(r_, edges, "edges", {});
    for (const auto& entry : edges) {
      YAML::Node key = entry.first;
      if (!key.IsScalar())
        continue;
      auto field = "edges." + key.Scalar();
      if (!valid_name(key.Scalar())) {
        read_name(r_, key, field, "an edge name");
        continue;
      }
      if (edge_overrides_.count(key.Scalar()))
        continue; // reported as given twice
      edge_override e{{}, field, key.Mark()};
      e.spec.name = key.Scalar();
      read_edge(entry.second, field, e.spec);
      edge_overrides_.emplace(e.spec.name, std::move(e));
    }
  }

  void read_edge(const YAML::Node& n, const std::string& field, edge_spec& spec) {
    if (!open_map(r_, n, field))
      return;
    check_keys(r_, n, field, {"max_records", "retention"});
    if (auto v = n["max_records"]; v.IsDefined())
      if (auto x =
              read_uint(r_, v, field + ".max_records", 1, std::numeric_limits<uint64_t>::max()))
        spec.max_records = *x;
    const YAML::Node keep = n["retention"];
    auto kfield = field + ".retention";
    if (!open_map(r_, keep, kfield))
      return;
    check_keys(r_, keep, kfield, {"count", "age"});
    if (auto v = keep["count"]; v.IsDefined())
      if (auto x = read_uint(r_, v, kfield + ".count", 0, std::numeric_limits<uint64_t>::max()))
        spec.keep.count = *x;
    if (auto v = keep["age"]; v.IsDefined())
      if (auto x = read_duration(r_, v, kfield + ".age", false))
        spec.keep.age_ms = uint64_t(x->count());
  }

  // ---- stages

  void read_stages(const YAML::Node& root) {
    const YAML::Node list = root["stages"];
    if (!list.IsDefined()) {
      r_.at(root, "stages", "missing required key 'stages' (a non-empty list of stages)");
      return;
    }
    if (!list.IsSequence() || list.size() == 0) {
      r_.expected(list, "stages", "a non-empty list of stages");
      return;
    }
    std::map<std::string, int> first_line;
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node n = list[i];
      auto field = index("stages", i);
      if (!n.IsMap()) {
        r_.expected(n, field, "a map with the stage's name, type, inputs and outputs");
        continue;
      }
      stage_draft s = read_stage(n, field);
      if (!s.cfg.name.empty()) {
        auto [at, fresh] = first_line.emplace(s.cfg.name, s.cfg.line);
        if (!fresh)
          r_.at(n["name"], field + ".name",
                "duplicate stage name '" + s.cfg.name + "' (first used at line " +
                    std::to_string(at->second) + ")");
      }
      check_ports(s);
      stages_.push_back(std::move(s));
    }
  }

  stage_draft read_stage(const YAML::Node& n, const std::string& field) {
    stage_draft s;
    s.field = field;
    s.mark = n.Mark();
    s.cfg.line = line_of(s.mark);
    check_keys(r_, n, field, {});

    if (auto v = n["name"]; !v.IsDefined())
      r_.at(n, field + ".name", "missing required key 'name'");
    else if (auto name = read_name(r_, v, field + ".name", "a stage name"))
      s.cfg.name = *name;

    if (auto v = n["type"]; !v.IsDefined())
      r_.at(n, field + ".type", "missing required key 'type'");
    else if (auto type = read_string(r_, v, field + ".type", "a stage type")) {
      s.cfg.type = *type;
      s.cfg.type_info = reg_.find(*type);
      if (!s.cfg.type_info) {
        auto known = reg_.names();
        r_.at(v, field + ".type",
              "unknown stage type '" + *type + "'" + suggest(*type, known) + "; known types: " +
                  (known.empty() ? "none (is a plugin missing?)" : join(known)));
      }
    }

    read_inputs(n, s);
    read_outputs(n, s);

    if (auto v = n["workers"]; v.IsDefined()) {
      s.workers_value = v;
      if (auto w = read_u32(r_, v, field + ".workers", 1, max_workers))
        s.cfg.workers = *w;
    }
    s.cfg.batch = default_batch_;
    s.cfg.retry = default_retry_;
    s.cfg.supervision = default_supervision_;
    read_batch(r_, n["batch"], field + ".batch", s.cfg.batch);
    read_retry(r_, n["retry"], field + ".retry", s.cfg.retry);
    read_supervision(r_, n["supervision"], field + ".supervision", s.cfg.supervision);

    for (const auto& entry : n) {
      if (!entry.first.IsScalar())
        continue;
      std::string key = entry.first.Scalar();
      if (std::find(stage_keys.begin(), stage_keys.end(), key) != stage_keys.end())
        continue;
      yaml_params::value v;
      YAML::Node node = entry.second;
      auto m = node.Mark();
      v.line = line_of(m);
      v.column = column_of(m);
      if (node.IsScalar()) {
        v.what = yaml_params::value::kind::scalar;
        v.text = node.Scalar();
      } else if (node.IsMap()) {
        v.what = yaml_params::value::kind::map;
      } else if (node.IsSequence()) {
        v.what = yaml_params::value::kind::list;
      }
      s.own.emplace(key, std::move(v)); // a key given twice is reported by check_keys
    }
    return s;
  }

  void read_inputs(const YAML::Node& n, stage_draft& s) {
    const YAML::Node list = n["inputs"];
    const YAML::Node one = n["input"];
    if (list.IsDefined() && one.IsDefined())
      r_.at(one, s.field + ".input", "give either 'input' or 'inputs', not both");
    if (one.IsDefined()) {
      s.inputs_key = one;
      if (auto edge = read_name(r_, one, s.field + ".input", "an edge name"))
        s.inputs.push_back({*edge, s.field + ".input", one.Mark()});
      return;
    }
    if (!list.IsDefined())
      return;
    s.inputs_key = list;
    if (!list.IsSequence()) {
      r_.expected(list, s.field + ".inputs", "a list of edge names");
      return;
    }
    for (size_t i = 0; i < list.size(); ++i) {
      auto field = index(s.field + ".inputs", i);
      auto edge = read_name(r_, list[i], field, "an edge name");
      if (!edge)
        continue;
      auto twice = std::find_if(s.inputs.begin(), s.inputs.end(),
                                [&](const edge_ref& e) { return e.edge == *edge; });
      if (twice != s.inputs.end()) {
        r_.at(list[i], field,
              "stage reads edge '" + *edge + "' twice (also at " + twice->field + ")");
        continue;
      }
      s.inputs.push_back({*edge, field, list[i].Mark()});
    }
  }

  void read_outputs(const YAML::Node& n, stage_draft& s) {
    const YAML::Node map = n["outputs"];
    const YAML::Node one = n["output"];
    if (map.IsDefined() && one.IsDefined())
      r_.at(one, s.field + ".output", "give either 'output' or 'outputs', not both");
    if (one.IsDefined()) {
      s.outputs_key = one;
      if (auto edge = read_name(r_, one, s.field + ".output", "an edge name"))
        s.outputs.push_back({"out", {*edge, s.field + ".output", one.Mark()}});
      return;
    }
    if (!map.IsDefined())
      return;
    s.outputs_key = map;
    if (!map.IsMap()) {
      r_.expected(map, s.field + ".outputs", "a map of output port to edge name");
      return;
    }
    check_keys(r_, map, s.field + ".outputs", {});
    for (const auto& entry : map) {
      if (!entry.first.IsScalar())
        continue;
      std::string port = entry.first.Scalar();
      auto field = s.field + ".outputs." + port;
      if (!valid_name(port)) {
        read_name(r_, entry.first, field, "a port name");
        continue;
      }
      auto twice = std::find_if(s.outputs.begin(), s.outputs.end(),
                                [&](const auto& o) { return o.first == port; });
      if (twice != s.outputs.end())
        continue; // reported as given twice
      if (auto edge = read_name(r_, entry.second, field, "an edge name"))
        s.outputs.push_back({port, {*edge, field, entry.second.Mark()}});
    }
  }

  // What the stage's type allows: a source reads nothing, a sink writes nothing, every port
  // exists and every required port is connected.
  void check_ports(stage_draft& s) {
    const stage_type* t = s.cfg.type_info;
    if (!t)
      return; // unknown type: already reported, and nothing to check against
    const auto& type = t->name;
    if (t->kind == stage_kind::source) {
      if (s.inputs_key)
        r_.at(*s.inputs_key, s.field + ".inputs",
              "a source (type '" + type + "') reads no edges; expected no inputs, found " +
                  describe(*s.inputs_key));
      if (s.cfg.workers != 1 && s.workers_value)
        r_.expected(*s.workers_value, s.field + ".workers", "1 (a source runs exactly one worker)");
    } else if (!s.inputs_key) {
      r_.at(s.mark, s.field + ".inputs",
            std::string(t->kind == stage_kind::sink ? "a sink" : "an operator") + " (type '" +
                type +
                "') needs at least one input; expected 'inputs: [edge]' or "
                "'input: edge', found none");
    } else if (s.inputs_key->IsSequence() && s.inputs_key->size() == 0) {
      r_.expected(*s.inputs_key, s.field + ".inputs", "at least one input edge");
    }

    if (t->kind == stage_kind::sink) {
      if (s.outputs_key)
        r_.at(*s.outputs_key, s.field + ".outputs",
              "a sink (type '" + type + "') writes no edges; expected no outputs, found " +
                  describe(*s.outputs_key));
      return;
    }
    std::vector<std::string> ports = t->outputs;
    for (const auto& p : t->optional_outputs)
      if (std::find(ports.begin(), ports.end(), p) == ports.end())
        ports.push_back(p);
    for (const auto& [port, ref] : s.outputs)
      if (std::find(ports.begin(), ports.end(), port) == ports.end())
        r_.at(ref.mark, ref.field,
              "type '" + type + "' has no output port '" + port + "'" + suggest(port, ports) +
                  "; its ports: " + (ports.empty() ? "none" : join(ports)));
    for (const auto& port : t->outputs) {
      bool optional = std::find(t->optional_outputs.begin(), t->optional_outputs.end(), port) !=
                      t->optional_outputs.end();
      bool connected = std::any_of(s.outputs.begin(), s.outputs.end(),
                                   [&](const auto& o) { return o.first == port; });
      if (!optional && !connected)
        r_.at(s.outputs_key ? s.outputs_key->Mark() : s.mark, s.field + ".outputs." + port,
              "required output port '" + port + "' of type '" + type +
                  "' is not connected; expected 'outputs: {" + port + ": <edge>}'");
    }
  }

  // Every edge has exactly one producer and at least one consumer; `edges:` names only edges
  // that exist. Edges are listed in order of first mention.
  void check_graph() {
    struct producer {
      size_t stage;
      const edge_ref* ref;
    };
    std::map<std::string, producer> producers;
    std::map<std::string, std::vector<size_t>> consumers;
    std::vector<std::string> order;
    auto mention = [&](const std::string& edge) {
      if (std::find(order.begin(), order.end(), edge) == order.end())
        order.push_back(edge);
    };
    for (size_t i = 0; i < stages_.size(); ++i) {
      for (const auto& in : stages_[i].inputs) {
        consumers[in.edge].push_back(i);
        mention(in.edge);
      }
      for (const auto& [port, ref] : stages_[i].outputs) {
        mention(ref.edge);
        auto [at, fresh] = producers.emplace(ref.edge, producer{i, &ref});
        if (!fresh)
          r_.at(ref.mark, ref.field,
                "edge '" + ref.edge + "' is already written by stage '" +
                    stages_[at->second.stage].cfg.name + "' (" + at->second.ref->field + ", line " +
                    std::to_string(line_of(at->second.ref->mark)) +
                    "); an edge has exactly one producer");
      }
    }
    for (const auto& s : stages_)
      for (const auto& in : s.inputs)
        if (!producers.count(in.edge))
          r_.at(in.mark, in.field,
                "dangling edge '" + in.edge + "': read here but written by no stage");
    for (const auto& [edge, p] : producers)
      if (!consumers.count(edge))
        r_.at(p.ref->mark, p.ref->field,
              "dangling edge '" + edge + "': written here but read by no stage");
    for (const auto& [edge, e] : edge_overrides_)
      if (std::find(order.begin(), order.end(), edge) == order.end())
        r_.at(e.mark, e.field,
              "unknown edge '" + edge + "': no stage reads or writes it" + suggest(edge, order));

    for (const auto& edge : order) {
      auto o = edge_overrides_.find(edge);
      edge_spec spec = o == edge_overrides_.end() ? edge_spec{} : o->second.spec;
      spec.name = edge;
      for (size_t i : consumers[edge])
        for (uint32_t w = 0; w < stages_[i].cfg.workers; ++w)
          spec.groups.push_back(stages_[i].cfg.name + "/" + std::to_string(w));
      app_.edges.push_back(std::move(spec));
    }
  }

  // Gives every stage its params and builds each once, to surface parameter errors now.
  void build_stages() {
    bool lint = !(schema_given_ && schema_failed_); // else every schema user would fail too
    for (auto& s : stages_) {
      auto p = std::make_shared<yaml_params>(r_.file(), s.field, line_of(s.mark), column_of(s.mark),
                                             app_.base_dir, s.own, schemas_, app_.payload_schema);
      s.cfg.stage_params = p;
      for (const auto& in : s.inputs)
        s.cfg.inputs.push_back(in.edge);
      for (const auto& [port, ref] : s.outputs)
        s.cfg.outputs.emplace_back(port, ref.edge);
      if (lint && s.cfg.type_info && s.cfg.type_info->make)
        try_make(s, *p);
      app_.stages.push_back(std::move(s.cfg));
    }
  }

  void try_make(const stage_draft& s, const params& p) {
    auto fail = [&](const std::string& what) {
      r_.at(s.mark, s.field, "stage '" + s.cfg.name + "' (type '" + s.cfg.type + "'): " + what);
    };
    try {
      s.cfg.type_info->make(p);
    } catch (const located_config_error& e) {
      r_.add(e.issue());
    } catch (const config_error& e) {
      fail(e.what());
    } catch (const kj::Exception& e) {
      fail(std::string("constructor failed: ") + e.getDescription().cStr());
    } catch (const std::exception& e) {
      fail(std::string("constructor failed: ") + e.what());
    } catch (...) {
      fail("constructor failed with an unknown exception");
    }
  }

  reporter r_;
  registry& reg_;
  std::string data_dir_override_;
  app_config app_;
  std::shared_ptr<schema_loader> schemas_;
  bool schema_given_ = false;
  bool schema_failed_ = true; // until the payload struct is found
  batch_config default_batch_;
  retry_config default_retry_;
  supervision_config default_supervision_;
  std::map<std::string, edge_override> edge_overrides_;
  std::vector<stage_draft> stages_;
};

} // namespace

// ---------------------------------------------------------------------------------------------

std::string config_issue::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0)
      out += ":" + std::to_string(column);
  }
  out += ": ";
  if (!field.empty())
    out += field + ": ";
  return out + message;
}

load_result load_app(const std::string& path, registry& reg, const std::string& data_dir_override) {
  return app_loader(path, reg, data_dir_override).run();
}

// Sizes: an integer, optionally followed by a binary unit (K = KiB = 1024, M, G, T).
std::optional<uint64_t> parse_size(const std::string& text) {
  auto s = trim(text);
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9')
    ++digits;
  auto number = parse_uint(std::string_view(s).substr(0, digits));
  if (!number)
    return std::nullopt;
  auto unit = trim(std::string_view(s).substr(digits));
  static const std::vector<std::pair<std::string, int>> units = {
      {"", 0},     {"B", 0},  {"K", 10},   {"KiB", 10}, {"M", 20},
      {"MiB", 20}, {"G", 30}, {"GiB", 30}, {"T", 40},   {"TiB", 40}};
  for (const auto& [name, shift] : units) {
    if (unit != name)
      continue;
    if (*number > (std::numeric_limits<uint64_t>::max() >> shift))
      return std::nullopt;
    return *number << shift;
  }
  return std::nullopt;
}

// Durations: "0", or one or more <integer><unit> parts (ms, s, m, h, d), e.g. "1h30m".
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  auto s = trim(text);
  if (s == "0")
    return std::chrono::milliseconds(0);
  if (s.empty())
    return std::nullopt;
  static const std::vector<std::pair<std::string, uint64_t>> units = {
      {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  uint64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9')
      ++i;
    auto number = parse_uint(std::string_view(s).substr(start, i - start));
    start = i;
    while (i < s.size() && ((s[i] >= 'a' && s[i] <= 'z')))
      ++i;
    auto unit = s.substr(start, i - start);
    auto u =
        std::find_if(units.begin(), units.end(), [&](const auto& e) { return e.first == unit; });
    if (!number || u == units.end())
      return std::nullopt;
    constexpr uint64_t limit = uint64_t(std::numeric_limits<int64_t>::max());
    if (*number > limit / u->second || total > limit - *number * u->second)
      return std::nullopt;
    total += *number * u->second;
  }
  return std::chrono::milliseconds(int64_t(total));
}

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

store_layout layout_of(const app_config& app) {
  store_layout layout;
  layout.edges = app.edges;
  for (const auto& s : app.stages)
    layout.stages.push_back({s.name, s.workers});
  return layout;
}

} // namespace troupe
