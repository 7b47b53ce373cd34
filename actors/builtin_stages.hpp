// The stage types Troupe ships, registered into a node's registry by main().
#pragma once

#include <troupe/stage.hpp>

namespace troupe {

// Adds jsonl_source, jsonl_sink, generator (and the rest of actors/) to `reg`.
void register_builtin_stages(registry& reg);

} // namespace troupe
