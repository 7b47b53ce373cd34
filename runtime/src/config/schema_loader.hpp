// The payload schema files. Owns the parser and every directory it reads, for as long as a
// StructSchema taken from it is in use.
#pragma once

#include <capnp/schema-parser.h>
#include <kj/filesystem.h>

#include <string>
#include <vector>

namespace troupe {

class schema_loader {
public:
  // Absolute imports (`import "/x.capnp"`) are searched in `import_dirs` (absolute, existing),
  // in order.
  explicit schema_loader(const std::vector<std::string>& import_dirs = {});

  // Parses `file` (absolute); files parsed by one loader share their imports. Throws
  // kj::Exception on any error.
  capnp::ParsedSchema parse(const std::string& file);

private:
  static kj::Path from_root(const std::string& absolute);

  kj::Own<const kj::ReadableDirectory> root_;
  std::vector<kj::Own<const kj::ReadableDirectory>> dirs_;
  std::vector<const kj::ReadableDirectory*> import_path_;
  capnp::SchemaParser parser_; // declared last: destroyed first, while the directories exist
};

} // namespace troupe
