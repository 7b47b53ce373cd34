// What must agree between the nodes of one app (link_hub.hpp, fingerprint): a hash per part.
#include "net/link_hub.hpp"

#include <xxhash.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace troupe::net {

namespace {

std::string hex_hash(std::string_view bytes) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(bytes.data(), bytes.size())));
  return out;
}

} // namespace

fingerprint fingerprint_of(const app_config& whole) {
  fingerprint print;
  std::string nodes;
  for (const auto& n : whole.nodes)
    nodes += n.name + "@" + n.host + ":" + std::to_string(n.port) + ";";
  print["nodes"] = hex_hash(nodes);
  for (const auto& s : whole.stages) {
    std::string text = s.type + "|";
    for (const auto& n : s.nodes)
      text += n + ",";
    text += "|in:";
    for (const auto& in : s.inputs)
      text += in + ",";
    text += "|out:";
    for (const auto& [port, edge] : s.outputs)
      text += port + "=" + edge + ",";
    print["stage " + s.name] = hex_hash(text);
  }
  for (const auto& e : whole.edges) {
    std::string text = std::to_string(e.partitions) + "|";
    if (auto p = whole.edge_payloads.find(e.name); p != whole.edge_payloads.end())
      text += p->second.name;
    print["edge " + e.name] = hex_hash(text);
  }
  for (const auto& file : whole.schema_files) {
    std::ifstream in{file, std::ios::binary};
    std::ostringstream bytes;
    bytes << in.rdbuf();
    auto name = file.substr(file.rfind('/') + 1);
    print["schema " + name] = hex_hash(bytes.str());
  }
  return print;
}

std::vector<std::string> differences(const fingerprint& mine, const fingerprint& theirs) {
  std::vector<std::string> out;
  for (const auto& [part, hash] : mine) {
    auto i = theirs.find(part);
    if (i == theirs.end())
      out.push_back(part + " (theirs has none)");
    else if (i->second != hash)
      out.push_back(part);
  }
  for (const auto& [part, hash] : theirs)
    if (!mine.count(part))
      out.push_back(part + " (this node's has none)");
  return out;
}

} // namespace troupe::net
