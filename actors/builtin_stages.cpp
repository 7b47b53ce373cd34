// The one place where Troupe's own stage types are named.
#include "builtin_stages.hpp"

#include "generator.hpp"
#include "jsonl_sink.hpp"
#include "jsonl_source.hpp"

namespace troupe {

void register_builtin_stages(registry& reg) {
  reg.add_source<jsonl_source>("jsonl_source", {"out"}, /*blocking=*/true);
  reg.add_source<generator>("generator");
  reg.add_sink<jsonl_sink>("jsonl_sink", /*blocking=*/true, /*single_worker=*/true);
}

} // namespace troupe
