// Tests of `nodes:`, `links:` and `node:` (runtime/src/config/app_nodes.cpp) and of a node's view
// of the app (runtime/src/net/node_view.cpp): which stages, links and edges each node runs.
#include "config_support.hpp"
#include "net/link_hub.hpp"
#include "net/node_view.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace troupe;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> names(const app_config& app) {
  std::vector<std::string> out;
  for (const auto& s : app.stages)
    out.push_back(s.name);
  std::sort(out.begin(), out.end());
  return out;
}

const edge_spec& edge(const app_config& app, const std::string& name) {
  return *std::find_if(app.edges.begin(), app.edges.end(),
                       [&](const edge_spec& e) { return e.name == name; });
}

} // namespace

TEST_CASE("nodes: every mistake is named with its line, nothing unknown passes",
          "[runtime][config]") {
  loaded l("nodes_bad.yaml");
  INFO(dump(l.issues()));
  check_issue(l, "nodes.b.address", 4, 16, "node a listens at 127.0.0.1:7401 already");
  check_issue(l, "nodes.c.address", 5, 16, "expected HOST:PORT with a port from 1 to 65535");
  check_issue(l, "nodes.d.adress", 6, 32, "unknown key 'adress' (did you mean 'address'?)");
  check_issue(l, "links.timeout", 7, 18, "expected");
  check_issue(l, "links.lingr", 7, 22, "unknown key 'lingr' (did you mean 'linger'?)");
  check_issue(l, "nodes.d", 6, 3, "no stage is placed on node d: it will run nothing");
  check_issue(l, "stages[1].node", 10, 38, "unknown node 'bb' (did you mean 'b'?); the app's "
                                           "nodes are a, b, c, d");
  check_issue(l, "stages[2].node", 11, 5, "missing key 'node': stage 'sink' must be placed on "
                                          "one of the app's nodes (a, b, c, d)");
  CHECK_FALSE(l.result.app);
}

TEST_CASE("node: and links: without nodes: are errors", "[runtime][config]") {
  loaded l("nodes_none.yaml");
  INFO(dump(l.issues()));
  check_issue(l, "links", 2, 8, "this app declares no nodes");
  check_issue(l, "stages[0].node", 4, 42, "this app declares none (nodes:)");
}

TEST_CASE("a node's view: its stages, a link per edge and peer, its own data dir and admin",
          "[runtime][config]") {
  loaded l("nodes.yaml");
  INFO(dump(l.issues()));
  REQUIRE(l.result.app);
  const auto& whole = l.app();
  REQUIRE(whole.nodes.size() == 2);
  CHECK(whole.nodes[0].data_dir == "/tmp/troupe-nodes-test/a");
  CHECK(whole.nodes[1].host == "::1");
  CHECK(whole.nodes[1].port == 7402);
  CHECK(whole.links.timeout == 3s);
  CHECK(whole.links.linger == 1s);

  auto a = net::node_view(whole, "a", l.reg);
  CHECK(names(a) == std::vector<std::string>{"gen", "here", "more<-b", "numbers->b", "sink"});
  CHECK(a.data_dir == "/tmp/troupe-nodes-test/a");
  CHECK(a.admin.port == 0);
  // numbers is read here by `here` and, for node b, by its link: two consumer groups. Its
  // partitions stay what the whole app says.
  CHECK(edge(a, "numbers").groups == std::vector<std::string>{"here", "numbers->b"});
  CHECK(edge(a, "numbers").partitions == 3);
  CHECK(edge(a, "more").groups == std::vector<std::string>{"sink"});

  auto b = net::node_view(whole, "b", l.reg);
  CHECK(names(b) == std::vector<std::string>{"mid", "more->a", "numbers<-a"});
  CHECK(b.data_dir == "/tmp/elsewhere/b");
  CHECK(b.admin.port == 9402);
  CHECK(edge(b, "numbers").groups == std::vector<std::string>{"mid"});
  CHECK(b.edges.size() == 2);
  CHECK(a.fingerprint == b.fingerprint);
}

TEST_CASE("fingerprints say which part of two apps differs", "[runtime][config]") {
  loaded one("nodes.yaml");
  loaded two("nodes.yaml", load_options{{}, {"edges.numbers.partitions=4",
                                             "stages.here.input=more"}});
  REQUIRE(one.result.app);
  REQUIRE(two.result.app);
  auto mine = net::fingerprint_of(one.app()), theirs = net::fingerprint_of(two.app());
  CHECK(net::differences(mine, mine).empty());
  CHECK(net::differences(mine, theirs) == std::vector<std::string>{"edge numbers", "stage here"});
  // Settings that are each node's own (a path, a batch size) do not count.
  loaded three("nodes.yaml", load_options{{}, {"stages.mid.batch.max_items=7"}});
  REQUIRE(three.result.app);
  CHECK(net::differences(mine, net::fingerprint_of(three.app())).empty());
}

TEST_CASE("links.tls: the CA is required, every node needs a certificate and a key, files must "
          "be readable", "[runtime][config]") {
  loaded l("nodes_tls_bad.yaml");
  INFO(dump(l.issues()));
  check_issue(l, "links.tls.ca", 5, 19, "cannot read ");
  check_issue(l, "nodes.b", 4, 3, "with links.tls, node b needs a certificate and a key");
  check_issue(l, "nodes.a.key", 3, 64, "cannot read ");
  CHECK_FALSE(l.result.app);
}
