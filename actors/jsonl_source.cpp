// jsonl_source: reads a file of JSON lines; each line becomes one record whose payload is the
// struct its output edge carries, decoded by Cap'n Proto's JSON codec.
//
// Params: path (required), follow (default false: the source is done at the end of the file;
// true: it waits for more lines, polling every poll_ms, default 200).
//
// Exactly once: the byte offset and line number of the next line commit with the records of
// each step, so after a crash the source resumes at the first line not yet committed. A line
// that is not valid JSON for the payload struct goes to the dead-letter log with its line
// number; blank lines are skipped.
#include "jsonl_source.hpp"

#include <capnp/compat/json.h>
#include <capnp/message.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace troupe {

jsonl_source::jsonl_source(const params& p)
  : path_(p.get_path("path")),
    follow_(p.get_bool("follow", false)),
    poll_ms_(static_cast<uint32_t>(p.get_u64("poll_ms", 200))) {
  auto schema = p.output_schema("out"); // the struct of the edge it writes
  if (!schema)
    p.fail("type", "jsonl_source needs a payload struct on its output edge (edges.<edge>.type "
                   "or schema.payload)");
  schema_ = *schema;
}

jsonl_source::~jsonl_source() {
  if (file_)
    std::fclose(file_);
}

void jsonl_source::open(context& ctx) {
  file_ = std::fopen(path_.c_str(), "rb");
  if (!file_)
    throw std::runtime_error("cannot open " + path_ + ": " + std::strerror(errno));
  offset_ = ctx.state().get_u64("offset").value_or(0);
  line_ = ctx.state().get_u64("line").value_or(0);
  if (std::fseek(file_, static_cast<long>(offset_), SEEK_SET) != 0)
    throw std::runtime_error("cannot seek in " + path_ + ": " + std::strerror(errno));
}

bool jsonl_source::read_line(std::string& out, bool at_end_is_line) {
  out.clear();
  auto start = std::ftell(file_);
  int c;
  while ((c = std::getc(file_)) != EOF) {
    if (c == '\n')
      return true;
    out.push_back(static_cast<char>(c));
  }
  if (std::ferror(file_))
    throw transient_error("cannot read " + path_ + ": " + std::strerror(errno));
  if (!out.empty() && at_end_is_line)
    return true;
  // An incomplete last line: leave it for later (follow) and re-read it from its start.
  std::clearerr(file_);
  std::fseek(file_, start, SEEK_SET);
  return false;
}

produce_result jsonl_source::produce(context& ctx, size_t max_items) {
  // Start at the committed position: a failed and retried step must not skip lines.
  auto committed = ctx.state().get_u64("offset").value_or(0);
  if (committed != offset_ || static_cast<uint64_t>(std::ftell(file_)) != committed) {
    offset_ = committed;
    line_ = ctx.state().get_u64("line").value_or(0);
    if (std::fseek(file_, static_cast<long>(offset_), SEEK_SET) != 0)
      throw std::runtime_error("cannot seek in " + path_ + ": " + std::strerror(errno));
  }
  capnp::JsonCodec codec;
  std::string line;
  size_t emitted = 0;
  bool at_end = false;
  while (emitted < max_items) {
    if (!read_line(line, !follow_)) {
      at_end = true;
      break;
    }
    ++line_;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos)
      continue;
    try {
      capnp::MallocMessageBuilder scratch;
      auto parsed = scratch.initRoot<capnp::DynamicStruct>(schema_);
      codec.decode(kj::ArrayPtr<const char>(line.data(), line.size()), parsed);
      ctx.emit("out").payload_any().setAs<capnp::DynamicStruct>(parsed.asReader());
    } catch (const kj::Exception& e) {
      ctx.dead_letter_raw(path_, line_, line,
                          "line " + std::to_string(line_) + " is not a valid " +
                            std::string{schema_.getShortDisplayName().cStr()} +
                            " in JSON: " + e.getDescription().cStr());
    }
    ++emitted;
  }
  auto pos = std::ftell(file_);
  if (pos < 0)
    throw transient_error("cannot tell the position in " + path_ + ": " + std::strerror(errno));
  if (static_cast<uint64_t>(pos) != offset_) { // an idle poll commits nothing
    offset_ = static_cast<uint64_t>(pos);
    ctx.state().put_u64("offset", offset_);
    ctx.state().put_u64("line", line_);
  }
  if (at_end)
    return follow_ ? produce_result::idle(poll_ms_) : produce_result::done();
  return produce_result::more();
}

} // namespace troupe
