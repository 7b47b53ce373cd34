#include <troupe/builtin_schemas.hpp>

#include "envelope.capnp.h"

namespace troupe {

capnp::StructSchema generated_schema() { return capnp::Schema::from<schema::Generated>(); }

void init_generated(record_builder& out, uint64_t index, std::string_view body) {
  auto g = out.init_payload<schema::Generated>();
  g.setIndex(index);
  g.setBody(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(body.data()), body.size()));
}

} // namespace troupe
