// Parsing the payload schema from disk (see schema_loader.hpp).
#include "config/schema_loader.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace troupe {

// Reads the disk through a handle on "/" rather than kj::newDiskFilesystem(), which consults
// $PWD and warns when a parent process changed directory without updating it.
schema_loader::schema_loader(const std::vector<std::string>& import_dirs) {
  int fd = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  KJ_SYSCALL(fd, "cannot open /");
  root_ = kj::newDiskReadableDirectory(kj::AutoCloseFd(fd));
  for (const auto& dir : import_dirs) {
    KJ_IF_MAYBE (opened, root_->tryOpenSubdir(from_root(dir))) {
      dirs_.push_back(kj::mv(*opened));
      import_path_.push_back(dirs_.back().get());
    }
  }
}

capnp::ParsedSchema schema_loader::parse(const std::string& file) {
  return parser_.parseFromDirectory(*root_, from_root(file),
                                    kj::arrayPtr(import_path_.data(), import_path_.size()));
}

kj::Path schema_loader::from_root(const std::string& absolute) {
  return kj::Path(nullptr).eval(absolute.c_str());
}

} // namespace troupe
