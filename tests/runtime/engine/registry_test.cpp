// Tests of runtime/src/engine/registry.cpp: registering stage types by named fields, and the
// contradictions a registration is refused for.
#include <troupe/stage.hpp>

#include <catch2/catch.hpp>

using namespace troupe;

namespace {

class some_op : public stage {
public:
  explicit some_op(const params&) {}
};
class some_source : public source {
public:
  explicit some_source(const params&) {}
  produce_result produce(context&, size_t) override { return produce_result::done(); }
};

} // namespace

TEST_CASE("a stage type is registered by named fields", "[runtime][registry]") {
  registry reg;
  reg.add_operator<some_op>("x.price")
      .outputs({"out"})
      .optional_outputs({"review"})
      .params({"review_above"})
      .owns_paths({"report"})
      .reads_paths({"prices"})
      .blocking();
  const stage_type* t = reg.find("x.price");
  REQUIRE(t != nullptr);
  CHECK(t->kind == stage_kind::op);
  CHECK(t->outputs == std::vector<std::string>{"out"});
  CHECK(t->optional_outputs == std::vector<std::string>{"review"});
  // A path param is a param too.
  CHECK(t->params == std::vector<std::string>{"review_above", "report", "prices"});
  CHECK(t->owned_paths == std::vector<std::string>{"report"});
  CHECK(t->read_paths == std::vector<std::string>{"prices"});
  CHECK(t->blocking);
  CHECK_FALSE(t->single_worker);
  REQUIRE(t->make);
  CHECK(t->make);
}

TEST_CASE("sources and operators default to one port 'out', sinks to none", "[runtime][registry]") {
  registry reg;
  reg.add_source<some_source>("x.src");
  reg.add_operator<some_op>("x.op");
  reg.add_sink<some_op>("x.sink").single_worker();
  CHECK(reg.find("x.src")->kind == stage_kind::source);
  CHECK(reg.find("x.src")->outputs == std::vector<std::string>{"out"});
  CHECK(reg.find("x.op")->outputs == std::vector<std::string>{"out"});
  CHECK(reg.find("x.sink")->outputs.empty());
  CHECK(reg.find("x.sink")->single_worker);
  CHECK(reg.find("x.op")->params.empty()); // declares none: takes none
  CHECK(reg.names() == std::vector<std::string>{"x.op", "x.sink", "x.src"});
}

TEST_CASE("a contradictory registration is refused with the type's name", "[runtime][registry]") {
  registry reg;
  CHECK_THROWS_WITH(reg.add_sink<some_op>("x.sink").outputs({"out"}),
                    "stage type 'x.sink': a sink has no output ports");
  CHECK_THROWS_WITH(reg.add_operator<some_op>("x.op").params({"workers"}),
                    "stage type 'x.op': 'workers' is a key the runtime owns, not a param of "
                    "the type");
  CHECK_THROWS_WITH(reg.add_operator<some_op>("x.op"), "stage type 'x.op' is already registered");
  CHECK_THROWS_WITH(reg.add_operator<some_op>(""), "a stage type needs a name");
  CHECK_THROWS_AS(reg.add(stage_type{}), std::invalid_argument);
}
