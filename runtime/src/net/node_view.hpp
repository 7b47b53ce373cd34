// The app as one of its nodes runs it (`troupe run APP --node NAME`): the stages placed on that
// node, and for each edge between one of them and a stage on another node, a link stage: on the
// producer's node a link_out per consuming node (named "<edge>-><node>"), on a consumer's node
// a link_in per producing node ("<edge><-<node>"). Only the edges its stages touch; the node's
// data dir and admin address. See link_hub.hpp for how links carry the records.
#pragma once

#include "config/app_config.hpp"

#include <string>

namespace troupe::net {

// `whole` must have nodes and `node` must be one of them. The link stages' types are added to
// `reg` (the registry `whole` was loaded with, which must outlive the view).
app_config node_view(const app_config& whole, const std::string& node, registry& reg);

} // namespace troupe::net
