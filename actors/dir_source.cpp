// dir_source (see dir_source.hpp).
#include "dir_source.hpp"

#include <capnp/dynamic.h>

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>

namespace troupe {

namespace {

void check_text_field(const params& p, capnp::StructSchema s, const char* key,
                      const std::string& name) {
  KJ_IF_MAYBE (f, s.findFieldByName(name)) {
    if (f->getType().which() != capnp::schema::Type::TEXT)
      p.fail(key, "field '" + name + "' is not Text");
    return;
  }
  p.fail(key, "the output struct has no field '" + name + "'");
}

} // namespace

dir_source::dir_source(const params& p)
  : folder_(p.get_path("path")), patterns_(p.get_strings("pattern")),
    path_field_(p.get_string("path_field", "path")) {
  if (p.has("name_field"))
    name_field_ = p.get_string("name_field");
  auto out = p.output_schema("out");
  if (!out)
    p.fail("path", "dir_source writes Text fields, so its output edge must carry a struct");
  check_text_field(p, *out, "path_field", path_field_);
  if (name_field_)
    check_text_field(p, *out, "name_field", *name_field_);
}

void dir_source::open(context& ctx) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(folder_, ec))
    throw permanent_error("dir_source: " + folder_ + " is not a folder" +
                          (ec ? " (" + ec.message() + ")" : std::string{}));
  names_.clear();
  for (fs::directory_iterator it{folder_, ec}, end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.empty() || name[0] == '.' || !it->is_regular_file(ec))
      continue;
    bool match = patterns_.empty() ||
                 std::any_of(patterns_.begin(), patterns_.end(), [&](const std::string& g) {
                   return ::fnmatch(g.c_str(), name.c_str(), FNM_PERIOD) == 0;
                 });
    if (match)
      names_.push_back(std::move(name));
  }
  if (ec)
    throw permanent_error("dir_source: cannot list " + folder_ + ": " + ec.message());
  std::sort(names_.begin(), names_.end());
  next_ = 0;
  if (auto last = ctx.worker_state().get("last"))
    next_ = static_cast<size_t>(std::upper_bound(names_.begin(), names_.end(), *last) -
                                names_.begin());
}

produce_result dir_source::produce(context& ctx, size_t max_items) {
  if (next_ >= names_.size())
    return produce_result::done();
  size_t end = std::min(names_.size(), next_ + std::max<size_t>(1, max_items));
  for (; next_ < end; ++next_) {
    const auto& name = names_[next_];
    auto b = ctx.emit("out");
    b.key(name).source_position(next_ + 1);
    auto payload = b.init_payload_dynamic();
    payload.set(path_field_, capnp::Text::Reader{(std::filesystem::path{folder_} / name).c_str()});
    if (name_field_) {
      auto stem = std::filesystem::path{name}.stem().string();
      payload.set(*name_field_, capnp::Text::Reader{stem.c_str()});
    }
  }
  ctx.worker_state().put("last", names_[next_ - 1]);
  return produce_result::more();
}

} // namespace troupe
