// The payload schema. Owns the parser and every directory it reads, for as long as a
// StructSchema taken from it is in use.
#pragma once

#include <capnp/schema-parser.h>
#include <kj/filesystem.h>

#include <string>
#include <vector>

namespace troupe {

class schema_loader {
public:
  schema_loader();

  // Parses `file` (absolute). Absolute imports (`import "/x.capnp"`) are searched in
  // `import_dirs` (absolute, existing), in order. Throws kj::Exception on any error.
  capnp::ParsedSchema parse(const std::string& file, const std::vector<std::string>& import_dirs);

private:
  static kj::Path from_root(const std::string& absolute);

  kj::Own<const kj::ReadableDirectory> root_;
  std::vector<kj::Own<const kj::ReadableDirectory>> dirs_;
  std::vector<const kj::ReadableDirectory*> import_path_;
  capnp::SchemaParser parser_; // declared last: destroyed first, while the directories exist
};

} // namespace troupe
