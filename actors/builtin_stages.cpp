// The one place where Troupe's own stage types are named, with the params each takes.
#include "builtin_stages.hpp"

#include "generator.hpp"
#include "jsonl_sink.hpp"
#include "jsonl_source.hpp"

namespace troupe {

void register_builtin_stages(registry& reg) {
  reg.add_source<jsonl_source>("jsonl_source")
    .reads_paths({"path"})
    .params({"follow", "poll_ms", "required", "key", "unknown_fields"});
  reg.add_source<generator>("generator").params({"count", "rate", "payload_size"});
  reg.add_sink<jsonl_sink>("jsonl_sink")
    .owns_paths({"path"})
    .params({"envelope"})
    .blocking()
    .single_worker();
}

} // namespace troupe
