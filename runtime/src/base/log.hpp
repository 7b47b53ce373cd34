// The node's event log: one line per event on stderr, "<UTC time> <level> <who>: <what>", or
// with the JSON format one object per line: {"time", "level", "node", "who", "stage", "worker",
// "msg"} ("node" in a node of a multi-node app)
// ("stage" and "worker" when `who` is a stage's: "stage price/1").
// Thread-safe. CAF's own logger is compiled out of Debian's build, so this is ours.
#pragma once

#include <functional>
#include <optional>
#include <string_view>

namespace troupe {

enum class log_level { debug, info, warn, error };

void log_event(log_level level, std::string_view who, std::string_view what);
// Events below `level` are dropped (default: info; TROUPE_LOG=debug|info|warn|error).
void set_log_level(log_level level);
enum class log_format { text, json };
// Default: text; TROUPE_LOG_FORMAT=json.
void set_log_format(log_format format);
// The node of a multi-node app this process runs: JSON lines carry it as "node" (troupe
// launch prefixes text lines with it instead).
void set_log_node(std::string_view node);
// "debug", "info", "warn", "error" / "text", "json"; nullopt for anything else.
std::optional<log_level> parse_log_level(std::string_view s);
std::optional<log_format> parse_log_format(std::string_view s);
// Also hands every event (whatever the level) to `observer`; an empty function removes it.
// For tests that wait for an event.
using log_observer = std::function<void(log_level, std::string_view who, std::string_view what)>;
void set_log_observer(log_observer observer);

} // namespace troupe
