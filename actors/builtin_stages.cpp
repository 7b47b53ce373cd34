#include "builtin_stages.hpp"

namespace troupe {

void register_builtin_stages(registry&) {}

} // namespace troupe
