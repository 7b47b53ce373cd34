// The `schema:` key of an app file: the payload schema is parsed from its .capnp file (with the
// import path given) and the payload struct looked up in it, nested names included.
#include "config/app_loader.hpp"
#include "config/schema_loader.hpp"

#include <capnp/schema-parser.h>

#include <filesystem>

namespace fs = std::filesystem;

namespace troupe::detail {

namespace {

// "orders.capnp:5: Parse error." - the parser's exception names the file (by a path relative
// to some directory of its own choosing, hence only the file name here) and a 0-based line.
std::string schema_error(const kj::Exception& e) {
  std::string file = e.getFile() ? e.getFile() : "";
  std::string where;
  if (file.size() > 6 && file.compare(file.size() - 6, 6, ".capnp") == 0)
    where = fs::path(file).filename().string() + ":" + std::to_string(e.getLine() + 1) + ": ";
  return where + e.getDescription().cStr();
}

} // namespace

void app_loader::read_schema(const YAML::Node& schema) {
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

bool app_loader::read_import_path(const YAML::Node& list, std::vector<std::string>& dirs) {
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

std::optional<capnp::StructSchema>
app_loader::find_struct(capnp::ParsedSchema scope, const std::string& name, const YAML::Node& at) {
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

} // namespace troupe::detail
