// The work queue's command worker (see work_queue.hpp).
#include "work_queue.hpp"

#include <capnp/dynamic.h>

#include <filesystem>
#include <stdexcept>

namespace troupe {

// Splits "--in={path}.mp4" into its literal text and field paths.
std::vector<command_worker::piece> command_worker::parse_argument(const params& p,
                                                                  const std::string& arg,
                                                                  size_t index,
                                                                  capnp::StructSchema input) {
  std::vector<piece> out;
  std::string text;
  for (size_t i = 0; i < arg.size(); ++i) {
    if ((arg[i] == '{' || arg[i] == '}') && i + 1 < arg.size() && arg[i + 1] == arg[i]) {
      text.push_back(arg[i++]); // {{ and }} are literal braces
      continue;
    }
    if (arg[i] != '{') {
      text.push_back(arg[i]);
      continue;
    }
    auto end = arg.find('}', i);
    if (end == std::string::npos)
      p.fail("command", "argument " + std::to_string(index) + " ('" + arg +
                          "') opens a '{' it does not close; a field is written {field.path}, "
                          "a literal brace {{ or }}");
    if (!text.empty())
      out.push_back({std::move(text), std::nullopt});
    text.clear();
    auto path = arg.substr(i + 1, end - i - 1);
    try {
      field_path f{input, path};
      if (auto why = key_type_error(f.type()); !why.empty())
        p.fail("command", "argument " + std::to_string(index) + ": field '" + path + "' " + why);
      out.push_back({{}, std::move(f)});
    } catch (const std::invalid_argument& e) {
      p.fail("command", "argument " + std::to_string(index) + ": " + e.what());
    }
    i = end;
  }
  if (!text.empty() || out.empty())
    out.push_back({std::move(text), std::nullopt});
  return out;
}

command_worker::command_worker(const params& p) {
  auto argv = p.get_strings("command");
  if (argv.empty())
    p.fail("command", "the command to run is missing: give the program and its arguments as a "
                      "list, like command: [convert, '{path}', out.png]");
  auto input = input_struct(p, "work_queue");
  program_ = argv.front();
  for (size_t i = 1; i < argv.size(); ++i)
    args_.push_back(parse_argument(p, argv[i], i, input));
  auto in = p.get_string("stdin", "json");
  if (in != "json" && in != "none")
    p.fail("stdin", "expected json or none, found '" + in + "'");
  json_stdin_ = in == "json";
  options_.timeout = p.get_duration("timeout", std::chrono::seconds{60});
  if (p.has("cwd"))
    options_.cwd = p.get_path("cwd");
  if (p.has("priority")) {
    try {
      priority_.emplace(input, p.get_string("priority"));
    } catch (const std::invalid_argument& e) {
      p.fail("priority", e.what());
    }
    if (!is_integer(priority_->type().which()))
      p.fail("priority", "field '" + priority_->text() + "' is not an integer; a priority is");
  }
  encoder_ = std::make_unique<json_encoder>(input);
  if (auto out = p.output_schema("out"))
    decoder_ = std::make_unique<json_decoder>(*out);
}

void command_worker::open(context&) {
  if (options_.cwd.empty())
    return;
  std::error_code ec;
  std::filesystem::create_directories(options_.cwd, ec);
  if (ec || !std::filesystem::is_directory(options_.cwd))
    throw permanent_error("work_queue: cannot use " + options_.cwd + " as the command's folder" +
                          (ec ? ": " + ec.message() : std::string{}));
}

int64_t command_worker::priority(const record& r) {
  if (!priority_)
    return 0;
  auto v = priority_->get(r.payload_dynamic());
  if (!v)
    throw std::invalid_argument("the record has no field '" + priority_->text() + "'");
  if (v->getType() == capnp::DynamicValue::UINT) {
    auto u = v->as<uint64_t>();
    return u > uint64_t(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
  }
  return v->as<int64_t>();
}

std::optional<std::string> command_worker::argument(const std::vector<piece>& arg,
                                                    capnp::DynamicStruct::Reader payload,
                                                    std::string& missing) const {
  std::string out;
  for (const auto& pc : arg) {
    if (!pc.field) {
      out += pc.text;
      continue;
    }
    auto v = pc.field->get(payload);
    if (!v) {
      missing = pc.field->text();
      return std::nullopt;
    }
    out += key_bytes(*v);
  }
  return out;
}

void command_worker::process(context& ctx, const record& r) {
  auto payload = r.payload_dynamic();
  std::vector<std::string> argv{program_};
  for (const auto& arg : args_) {
    std::string missing;
    auto a = argument(arg, payload, missing);
    if (!a) {
      ctx.dead_letter(r, "the command's arguments need field '" + missing +
                           "', which the record does not have");
      return;
    }
    argv.push_back(std::move(*a));
  }
  input_.clear();
  if (json_stdin_) {
    if (auto err = encoder_->encode(payload, input_)) {
      ctx.dead_letter(r, "the record cannot be written as JSON for the command: " + err->to_string());
      return;
    }
    input_.push_back('\n');
  }
  auto result = run_subprocess(argv, input_, options_);
  if (!result.ok()) {
    std::string what = "command '" + program_ + "' " + result.failure();
    if (!result.err.empty())
      what += "; its standard error ends with: " + result.err;
    throw std::runtime_error(what);
  }
  if (!decoder_)
    return;
  size_t line = 0, at = 0;
  const auto& out = result.out;
  while (at < out.size()) {
    auto nl = out.find('\n', at);
    auto end = nl == std::string::npos ? out.size() : nl;
    ++line;
    std::string_view text{out.data() + at, end - at};
    at = end + 1;
    if (text.find_first_not_of(" \t\r") == std::string_view::npos)
      continue;
    auto b = ctx.emit("out");
    auto dyn = b.init_payload_dynamic();
    if (auto err = decoder_->decode(text, dyn))
      throw std::runtime_error("line " + std::to_string(line) + " of the standard output of '" +
                               program_ + "' is not a record: " + err->to_string());
  }
}

void register_work_queue(registry& reg) {
  reg.add_operator<command_worker>("work_queue")
    .outputs({})
    .optional_outputs({"out"})
    .params({"command", "stdin", "timeout", "priority", "cwd"})
    .needs_payload_struct()
    .leases()
    .blocking();
}

} // namespace troupe
