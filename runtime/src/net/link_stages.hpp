// The stage types of node links: link_out sends an edge to a peer, link_in receives it.
// node_view adds them to a node's view; an app's YAML cannot name them (they are registered
// only then).
#pragma once

#include <troupe/stage.hpp>

namespace troupe::net {

inline constexpr const char* link_out_type = "link_out";
inline constexpr const char* link_in_type = "link_in";

// Adds both types to `reg` (once).
void register_link_stages(registry& reg);

} // namespace troupe::net
