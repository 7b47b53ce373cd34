// text_source is the same source for plain text: each line (without its '\n', a '\r' before it,
// or a byte-order mark) goes whole into one Text field (`field`, default `text`) of the struct
// its output edge carries, its bytes as they are.
//
// jsonl_source: reads a file (or FIFO) of JSON lines; each line becomes one record whose payload
// is the struct its output edge carries, decoded by troupe's JSON codec (troupe/json.hpp). Each
// record carries its line number as its source position, so that a dead letter of any stage
// downstream names the line.
//
// Params: path (required), follow (default false: the source is done at the end of the file;
// true: it waits for more lines, polling every poll_ms, default 200, and for the file itself if
// it does not exist yet), required (a list of field paths every record must have), key (a field
// path whose value becomes the record key: Text as is, an integer in decimal; implies required),
// unknown_fields (ignore, the default, or reject), max_line_bytes (default 64 MiB).
//
// Exactly once: the byte offset and line number of the next line commit with the records of
// each step, so after a crash the source resumes at the first line not yet committed. A line
// that is not a valid JSON object for the payload struct (an empty line included) goes to the
// dead-letter log with its line number and the reason ("line 12, field 'quantity': expected a
// number, found a string"). A UTF-8 byte-order mark at the start of the file is skipped.
//
// The offset means something only in the file it was taken in: the file's inode commits with the
// first step, and a source that resumes (offset > 0) in another file at the same path, or in a
// file shorter than what it already read (replaced, rotated, truncated), fails for good with a
// message instead of reading from the middle of a line of a different file.
//
// Once the whole file was read, the source is done for good: run again, it reads nothing, and if
// the file changed since (its size, its inode or its modification time differ from when it was
// read), it says so (changed_since_done).
//
// The file is read in large chunks and never blocks the source's thread (a FIFO is opened
// O_NONBLOCK; no data means an idle poll), so an orderly stop is honoured within about poll_ms.
// A FIFO cannot be read twice: lines it delivered in a step that did not commit (a crash, a
// failed commit) are lost, unlike a file's.
#include "jsonl_source.hpp"

#include <capnp/message.h>

#include <sys/stat.h>

#include <algorithm>
#include <stdexcept>

namespace troupe {

jsonl_source::jsonl_source(const params& p, line_format format, bool rotation)
  : format_(format),
    path_(p.get_path("path")),
    follow_(rotation || p.get_bool("follow", false)),
    poll_ms_(static_cast<uint32_t>(p.get_u64("poll_ms", 200))),
    max_line_(p.get_u64("max_line_bytes", 64u << 20)),
    reader_(max_line_),
    rotation_(rotation),
    reading_(path_) {
  auto schema = p.output_schema("out"); // the struct of the edge it writes
  if (!schema)
    p.fail("type", "this source needs the struct its output edge carries (edges.<edge>.type, "
                   "or schema.payload)");
  schema_ = *schema;
  if (max_line_ == 0)
    p.fail("max_line_bytes", "must be at least 1");
  if (format_ == line_format::text) {
    lines_per_record_ = p.get_u64("lines_per_record", 1);
    if (lines_per_record_ == 0 || lines_per_record_ > 1000000)
      p.fail("lines_per_record", "must be 1 to 1000000");
    auto name = p.get_string("field", "text");
    KJ_IF_MAYBE (f, schema_.findFieldByName(name)) {
      if (f->getType().which() != capnp::schema::Type::TEXT)
        p.fail("field", "'" + name + "' must be a Text field to hold a line");
      text_field_ = *f;
    } else {
      p.fail("field", std::string(schema_.getShortDisplayName().cStr()) + " has no field '" +
                        name + "'");
    }
    return;
  }
  json_decode_options options;
  auto unknown = p.get_string("unknown_fields", "ignore");
  if (unknown != "ignore" && unknown != "reject")
    p.fail("unknown_fields", "expected ignore or reject, found '" + unknown + "'");
  options.reject_unknown_fields = unknown == "reject";
  options.required = p.get_strings("required");
  try {
    decoder_.emplace(schema_, options); // checks the required paths
  } catch (const std::invalid_argument& e) {
    p.fail("required", e.what());
  }
  if (p.has("key")) {
    auto key = p.get_string("key");
    try {
      key_.emplace(schema_, key);
    } catch (const std::invalid_argument& e) {
      p.fail("key", e.what());
    }
    if (auto why = key_type_error(key_->type()); !why.empty())
      p.fail("key", "'" + key + "' " + why);
    key_required_ = std::find(options.required.begin(), options.required.end(), key) !=
                    options.required.end();
    options.required.push_back(key); // a record without its key is dead-lettered
    decoder_.emplace(schema_, options);
  }
}

void jsonl_source::open(context& ctx) {
  if (rotation_)
    return; // produce() finds the file (tail.cpp), once per step
  offset_ = ctx.state().get_u64("offset").value_or(0);
  line_ = ctx.state().get_u64("line").value_or(0);
  if (!reader_.open(path_)) {
    if (!follow_)
      throw permanent_error("cannot open " + path_ + ": no such file");
    return; // follow: produce() waits for it to appear
  }
  check_same_file(ctx);
  reader_.seek(offset_);
}

void jsonl_source::check_same_file(context& ctx) {
  struct stat info {};
  if (::stat(path_.c_str(), &info) != 0 || !S_ISREG(info.st_mode))
    return; // a FIFO has no offsets to resume at; a vanished file fails at its next read
  inode_ = static_cast<uint64_t>(info.st_ino);
  auto committed = ctx.state().get_u64("inode");
  if (offset_ == 0)
    return;
  auto what = "this stage already read " + std::to_string(offset_) + " bytes (" +
              std::to_string(line_) + " lines) of ";
  auto fix = ": restore the file it was reading, or start afresh with `troupe reset` (which "
             "clears what the app committed and the outputs its sinks own)";
  if (committed && *committed != inode_)
    throw permanent_error(path_ + " is another file than the one " + what +
                          "a file at that path (it was replaced or rotated)" + fix);
  if (static_cast<uint64_t>(info.st_size) < offset_)
    throw permanent_error(path_ + " is " + std::to_string(info.st_size) + " bytes now, but " +
                          what + "it (it was truncated or replaced)" + fix);
}

produce_result jsonl_source::produce(context& ctx, size_t max_items) {
  // Start at the committed position: a failed and retried step must not skip lines.
  if (rotation_) {
    if (!tail_position(ctx))
      return produce_result::idle(poll_ms_); // no file there yet
  } else {
    if (!reader_.is_open()) {
      if (!reader_.open(path_))
        return produce_result::idle(poll_ms_); // follow, and the file is not there yet
      check_same_file(ctx);
    }
    offset_ = ctx.state().get_u64("offset").value_or(0);
    line_ = ctx.state().get_u64("line").value_or(0);
  }
  reader_.seek(offset_);
  // tail: a file it moved to commits even before a line of it does.
  uint64_t start_inode = rotation_ ? ctx.state().get_u64("inode").value_or(0) : inode_;
  uint64_t start = offset_;
  size_t taken = 0;
  line_reader::status st = line_reader::status::line;
  size_t lines_wanted = max_items * lines_per_record_; // a record per line, or per group
  while (taken < lines_wanted) {
    line_reader::line_view line;
    st = reader_.next(line, !follow_);
    if (st != line_reader::status::line && rotation_ && switch_if_rotated(ctx))
      continue;
    if (st != line_reader::status::line)
      break;
    ++line_;
    offset_ = line.end;
    take_line(ctx, line);
    ++taken;
  }
  flush_group(ctx); // a group never spans steps: its lines commit with it
  if (offset_ != start || inode_ != start_inode) { // an idle poll commits nothing
    ctx.state().put_u64("offset", offset_);
    ctx.state().put_u64("line", line_);
    // With the first offset (a retried step writes it again), and with each file tail moves to.
    if ((start == 0 || rotation_) && inode_ != 0)
      ctx.state().put_u64("inode", inode_);
    if (rotation_)
      remember_head(ctx);
  }
  if (st == line_reader::status::end && !follow_) {
    // What the file was when it was read to its end: changed_since_done compares.
    struct stat info {};
    if (::stat(path_.c_str(), &info) == 0) {
      ctx.state().put_u64("inode", static_cast<uint64_t>(info.st_ino));
      ctx.state().put_u64("mtime_ns", static_cast<uint64_t>(info.st_mtim.tv_sec) * 1000000000u +
                                        static_cast<uint64_t>(info.st_mtim.tv_nsec));
    }
    return produce_result::done();
  }
  if (st != line_reader::status::line)
    return produce_result::idle(poll_ms_);
  return produce_result::more();
}

void jsonl_source::take_line(context& ctx, const line_reader::line_view& line) {
  std::string_view text = line.text;
  size_t skipped = 0; // bytes before `text` in the line as it is in the file
  if (line.start == 0 && text.substr(0, 3) == "\xEF\xBB\xBF") { // a byte-order mark
    text.remove_prefix(3);
    skipped = 3;
  }
  if (!text.empty() && text.back() == '\r')
    text.remove_suffix(1);
  auto where = "line " + std::to_string(line_);
  if (line.too_long) {
    ctx.dead_letter_raw(reading_, line_, line.text,
                        where + " is longer than max_line_bytes (" + std::to_string(max_line_) +
                          " bytes); its first " + std::to_string(line.text.size()) +
                          " bytes are kept here");
    return;
  }
  if (format_ == line_format::text) {
    if (group_lines_ == 0) {
      scratch_.clear();
      group_first_ = line_;
    } else {
      scratch_ += '\n';
    }
    scratch_.append(text.data(), text.size());
    if (++group_lines_ == lines_per_record_)
      flush_group(ctx);
    return;
  }
  capnp::DynamicStruct::Reader value;
  if (auto err = decoder_->decode(text, value)) {
    if (err->offset)
      *err->offset += skipped;
    if (key_ && !key_required_ && err->field == key_->text() &&
        err->message == "missing, and it is required")
      err->message = "missing, and it is the record key (key: " + key_->text() + ")";
    ctx.dead_letter_raw(reading_, line_, line.text,
                        where + (err->field.empty() ? ": " : ", ") + err->to_string());
    return;
  }
  auto out = ctx.emit("out");
  out.source_position(line_);
  if (key_)
    if (auto v = key_->get(value)) // required: always there
      out.key(key_bytes(*v));
  out.payload_any().setAs<capnp::DynamicStruct>(value);
}

void jsonl_source::flush_group(context& ctx) {
  if (group_lines_ == 0)
    return;
  auto out = ctx.emit("out");
  out.source_position(group_first_);
  // scratch_ is a std::string: the Text it makes is NUL-terminated, as Cap'n Proto wants.
  out.init_payload_dynamic().set(*text_field_, capnp::Text::Reader(scratch_.c_str(), scratch_.size()));
  group_lines_ = 0;
}

std::optional<std::string> jsonl_source::changed_since_done(context& ctx) {
  struct stat info {};
  if (::stat(path_.c_str(), &info) != 0)
    return path_ + " no longer exists";
  auto read = ctx.state().get_u64("offset").value_or(0);
  auto size = static_cast<uint64_t>(info.st_size);
  if (size > read)
    return path_ + " has grown from " + std::to_string(read) + " to " + std::to_string(size) +
           " bytes since it was read";
  if (size < read)
    return path_ + " is now " + std::to_string(size) + " bytes; it had " + std::to_string(read) +
           " when it was read";
  auto inode = ctx.state().get_u64("inode");
  auto mtime = ctx.state().get_u64("mtime_ns");
  uint64_t now_mtime = static_cast<uint64_t>(info.st_mtim.tv_sec) * 1000000000u +
                       static_cast<uint64_t>(info.st_mtim.tv_nsec);
  if ((inode && *inode != static_cast<uint64_t>(info.st_ino)) || (mtime && *mtime != now_mtime))
    return path_ + " was replaced or modified since it was read (same size)";
  return std::nullopt;
}

} // namespace troupe
