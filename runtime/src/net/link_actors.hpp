// The actors of node links (link_hub.hpp says what they do): the endpoint a node publishes, and
// one actor per peer it sends to. Private to the net module.
#pragma once

#include "net/link_hub.hpp"

#include <caf/all.hpp>

#include <memory>
#include <string>
#include <vector>

namespace troupe::net::detail {

using hello_atom = caf::atom_constant<caf::atom("lhello")>;
using push_atom = caf::atom_constant<caf::atom("lpush")>;
using send_atom = caf::atom_constant<caf::atom("lsend")>;
using answer_atom = caf::atom_constant<caf::atom("lanswer")>;
using done_atom = caf::atom_constant<caf::atom("ldone")>;

using reply_result = caf::result<uint32_t, std::string>;
constexpr auto ok_code = static_cast<uint32_t>(link_status::ok);
constexpr auto retry_code = static_cast<uint32_t>(link_status::retry);

// The fingerprint as the lines a hello carries ("part=hash"), and back.
std::vector<std::string> to_lines(const fingerprint& print);
fingerprint from_lines(const std::vector<std::string>& lines);

// What peers send to; holds the hub, which lives until the endpoint is gone.
caf::actor spawn_endpoint(caf::actor_system& sys, std::shared_ptr<link_hub> hub);
// Sends to one peer: (send_atom, edge, batch) -> (code, text); (done_atom, edge, partitions).
caf::actor spawn_peer_link(caf::actor_system& sys, std::string me, node_config peer,
                           links_config links, std::vector<std::string> print);

} // namespace troupe::net::detail
