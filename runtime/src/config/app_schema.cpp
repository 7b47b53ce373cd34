// The `schema:` key of an app file: the .capnp files are parsed (with the import path given),
// the default payload struct looked up in them, and the structs that edges name
// (`edges.<e>.type`) too; see app_payload_checks.cpp for what is done with them.
//
// A struct is named by its path in a file, dotted for nested structs (`Order.Line`). A name is
// looked up in every file; found in two, it is ambiguous, and `file:Path` (the file as listed,
// or its name alone: `billing.capnp:Invoice`) says which.
#include "config/app_loader.hpp"
#include "config/schema_loader.hpp"

#include <capnp/schema-parser.h>

#include <filesystem>

namespace fs = std::filesystem;

namespace troupe {

std::string struct_name(capnp::StructSchema s) {
  std::string display = s.getProto().getDisplayName().cStr();
  auto colon = display.find(':');
  if (colon == std::string::npos)
    return display;
  return fs::path(display.substr(0, colon)).filename().string() + display.substr(colon);
}

namespace detail {

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

const char* kind_of(const capnp::schema::Node::Reader& node) {
  switch (node.which()) {
  case capnp::schema::Node::ENUM:
    return "an enum";
  case capnp::schema::Node::INTERFACE:
    return "an interface";
  case capnp::schema::Node::CONST:
    return "a constant";
  case capnp::schema::Node::ANNOTATION:
    return "an annotation";
  default:
    return "not a struct";
  }
}

// The declaration at dotted `path` in `scope`; nullopt with `missing` (the part not found) and
// `known` (what is there instead) when there is none.
std::optional<capnp::ParsedSchema> walk(capnp::ParsedSchema scope, std::string_view path,
                                        std::string& walked, std::string& missing,
                                        std::vector<std::string>& known) {
  while (true) {
    auto dot_at = path.find('.');
    std::string part(path.substr(0, dot_at));
    KJ_IF_MAYBE (next, scope.findNested(part)) {
      scope = *next;
    } else {
      missing = part;
      for (auto nested : scope.getAllNested())
        known.push_back(nested.getShortDisplayName().cStr());
      return std::nullopt;
    }
    walked += (walked.empty() ? "" : ".") + part;
    if (dot_at == std::string_view::npos)
      return scope;
    path = path.substr(dot_at + 1);
  }
}

} // namespace

void app_loader::read_schema(const YAML::Node& schema) {
  if (!open_map(r_, schema, "schema"))
    return;
  schema_given_ = true;
  check_keys(r_, schema, "schema", {"file", "files", "payload", "import_path"});
  const YAML::Node file_node = schema["file"];
  const YAML::Node files_node = schema["files"];
  const YAML::Node payload_node = schema["payload"];
  struct named_file {
    std::string text;
    YAML::Node node;
    std::string field;
  };
  std::vector<named_file> files;
  bool files_ok = true;
  if (file_node.IsDefined() && files_node.IsDefined()) {
    r_.at(files_node, "schema.files", "give either 'file' or 'files', not both");
    files_ok = false;
  } else if (file_node.IsDefined()) {
    if (auto f = read_string(r_, file_node, "schema.file", "a .capnp file"))
      files.push_back({*f, file_node, "schema.file"});
    else
      files_ok = false;
  } else if (files_node.IsDefined()) {
    if (!files_node.IsSequence() || files_node.size() == 0) {
      r_.expected(files_node, "schema.files", "a non-empty list of .capnp files");
      files_ok = false;
    }
    for (size_t i = 0; files_ok && i < files_node.size(); ++i) {
      auto field = index("schema.files", i);
      if (auto f = read_string(r_, files_node[i], field, "a .capnp file"))
        files.push_back({*f, files_node[i], field});
      else
        files_ok = false;
    }
  } else {
    r_.at(schema, "schema.files",
          "missing required key 'files' (a list of .capnp files; 'file' for one)");
    files_ok = false;
  }
  std::optional<std::string> payload;
  if (payload_node.IsDefined())
    payload = read_string(r_, payload_node, "schema.payload", "a struct name");

  std::vector<std::string> import_dirs;
  bool imports_ok = read_import_path(schema["import_path"], import_dirs);
  import_dirs.push_back("/usr/include"); // so that `import "/capnp/c++.capnp"` works
  if (!files_ok || !imports_ok || (payload_node.IsDefined() && !payload))
    return;

  schemas_ = std::make_shared<schema_loader>(import_dirs);
  bool parsed_all = true;
  for (const auto& f : files) {
    auto path = absolute_path(fs::path(app_.base_dir) / f.text);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      r_.at(f.node, f.field, "schema file " + path + " does not exist");
      parsed_all = false;
      continue;
    }
    try {
      parsed_files_.push_back({f.text, path, schemas_->parse(path)});
      app_.schema_files.push_back(path);
    } catch (const kj::Exception& e) {
      r_.at(f.node, f.field, "cannot parse schema " + path + ": " + schema_error(e));
      parsed_all = false;
    }
  }
  if (!parsed_all)
    return;
  schema_failed_ = false;
  if (payload) {
    if (auto found = resolve_struct(*payload, payload_node, "schema.payload")) {
      app_.payload_type = *payload;
      app_.payload_schema = *found;
    } else {
      schema_failed_ = true;
    }
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
app_loader::resolve_struct(const std::string& name, const YAML::Node& at, const std::string& field) {
  std::vector<const parsed_file*> scope;
  std::string path = name;
  if (auto colon = name.find(':'); colon != std::string::npos) {
    std::string file = name.substr(0, colon);
    path = name.substr(colon + 1);
    std::vector<std::string> listed;
    for (const auto& f : parsed_files_) {
      listed.push_back(f.text);
      if (f.text == file || fs::path(f.path).filename() == file)
        scope.push_back(&f);
    }
    if (scope.empty()) {
      r_.at(at, field,
            "no schema file '" + file + "' in schema.files" + suggest(file, listed) +
                "; the files: " + join(listed));
      return std::nullopt;
    }
  } else {
    for (const auto& f : parsed_files_)
      scope.push_back(&f);
  }
  struct found {
    const parsed_file* file;
    capnp::ParsedSchema decl;
  };
  std::vector<found> hits;
  std::vector<std::string> known, missing_parts;
  std::string deepest; // the longest walked prefix, for a message about the right scope
  for (const auto* f : scope) {
    std::string walked, missing;
    if (auto d = walk(f->parsed, path, walked, missing, known)) {
      hits.push_back({f, *d});
    } else {
      missing_parts.push_back(missing);
      if (walked.size() > deepest.size())
        deepest = walked;
    }
  }
  if (hits.empty()) {
    auto part = missing_parts.empty() ? path : missing_parts.front();
    std::string where = !deepest.empty() ? deepest
                        : parsed_files_.size() == 1 ? std::string("the schema file")
                                                    : "the schema files";
    r_.at(at, field,
          "no declaration '" + part + "' in " + where + suggest(part, known) +
              "; found: " + (known.empty() ? "nothing" : join(known)));
    return std::nullopt;
  }
  if (hits.size() > 1) {
    std::vector<std::string> qualified;
    for (const auto& h : hits)
      qualified.push_back(fs::path(h.file->path).filename().string() + ":" + path);
    r_.at(at, field,
          "'" + path + "' is declared in more than one schema file; write one of " +
              join(qualified, " or ") + " to say which");
    return std::nullopt;
  }
  auto decl = hits.front().decl;
  if (!decl.getProto().isStruct()) {
    r_.at(at, field, "expected a struct, found '" + name + "', " + kind_of(decl.getProto()));
    return std::nullopt;
  }
  return decl.asStruct();
}

} // namespace detail

} // namespace troupe
