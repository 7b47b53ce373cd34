// Troupe's own payload structs (schemas/envelope.capnp), for stages that need a payload when the
// edge they write carries no struct of the app's.
#pragma once

#include <troupe/stage.hpp>

#include <cstdint>
#include <string_view>

namespace troupe {

// struct Generated { index @0 :UInt64; body @1 :Data; }: what the generator emits on an edge
// that carries no struct.
capnp::StructSchema generated_schema();
// Initialises `out`'s payload as a Generated with these fields.
void init_generated(record_builder& out, uint64_t index, std::string_view body);

} // namespace troupe
