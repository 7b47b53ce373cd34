// The one place where Troupe's own stage types are named, with the params each takes. They are
// schema-agnostic: none declares the struct it reads or emits; the JSON ones need some struct.
#include "builtin_stages.hpp"

#include "batch.hpp"
#include "delay.hpp"
#include "dir_source.hpp"
#include "generator.hpp"
#include "http_sink.hpp"
#include "http_source.hpp"
#include "jsonl_sink.hpp"
#include "jsonl_source.hpp"
#include "mapreduce.hpp"
#include "rate_limit.hpp"
#include "routing.hpp"
#include "sequence.hpp"
#include "tcp_source.hpp"
#include "window.hpp"
#include "work_queue.hpp"

namespace troupe {

void register_builtin_stages(registry& reg) {
  reg.add_source<jsonl_source>("jsonl_source")
    .needs_payload_struct()
    .reads_paths({"path"})
    .params({"follow", "poll_ms", "required", "key", "unknown_fields", "max_line_bytes"})
    .blocking();
  reg.add_source<tail_source>("tail")
    .needs_payload_struct()
    .reads_paths({"path"})
    .params({"poll_ms", "required", "key", "unknown_fields", "max_line_bytes"})
    .blocking();
  reg.add_source<text_source>("text_source")
    .needs_payload_struct()
    .reads_paths({"path"})
    .params({"follow", "poll_ms", "field", "max_line_bytes", "lines_per_record"})
    .blocking();
  reg.add_source<dir_source>("dir_source")
    .needs_payload_struct()
    .reads_paths({"path"})
    .params({"pattern", "path_field", "name_field"});
  reg.add_source<http_source>("http_source")
    .needs_payload_struct()
    .single_worker()
    .params({"address", "path", "token", "max_body_bytes", "full_wait", "commit_timeout",
             "max_waiting_records", "idempotency_window", "max_connections", "required", "key",
             "id_field", "unknown_fields"});
  reg.add_source<tcp_source>("tcp_source")
    .needs_payload_struct()
    .single_worker()
    .params({"address", "max_line_bytes", "max_waiting_records", "max_connections", "required",
             "key", "id_field", "idempotency_window", "unknown_fields"});
  reg.add_source<generator>("generator").params({"count", "rate", "payload_size"});
  reg.add_sink<jsonl_sink>("jsonl_sink")
    .needs_payload_struct()
    .owns_paths({"path"})
    .params({"envelope"})
    .blocking()
    .single_worker();
  register_http_sink(reg);
  register_routing_stages(reg);
  register_sequence_stage(reg);
  register_batch_stage(reg);
  register_delay_stage(reg);
  register_rate_limit_stage(reg);
  register_window_stage(reg);
  register_mapreduce_stages(reg);
  register_work_queue(reg);
}

} // namespace troupe
