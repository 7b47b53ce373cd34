// The stage-type registry: the one deliberate global-ish table of the project, filled explicitly
// by main() (built-ins, then plugins) and read by the config loader and the node.
#include <troupe/stage.hpp>

#include <stdexcept>

namespace troupe {

params::~params() = default;

void registry::add(stage_type type) {
  if (type.name.empty())
    throw std::invalid_argument("a stage type needs a name");
  if (types_.count(type.name) != 0)
    throw std::invalid_argument("stage type '" + type.name + "' is already registered");
  auto name = type.name;
  types_.emplace(std::move(name), std::move(type));
}

const stage_type* registry::find(std::string_view name) const {
  auto i = types_.find(name);
  return i == types_.end() ? nullptr : &i->second;
}

std::vector<std::string> registry::names() const {
  std::vector<std::string> out;
  out.reserve(types_.size());
  for (const auto& entry : types_)
    out.push_back(entry.first);
  return out; // sorted: types_ is an ordered map
}

} // namespace troupe
