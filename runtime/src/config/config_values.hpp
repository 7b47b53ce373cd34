// Scalars of an app file and the wording helpers of the loader's messages. parse_size and
// parse_duration, which others use too, are declared in app_config.hpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::detail {

// Without leading and trailing blanks and tabs.
std::string trim(std::string_view s);

// Each fails (nullopt) on anything but the whole text being the value.
std::optional<uint64_t> parse_uint(std::string_view s);   // digits only; nullopt on overflow
std::optional<double> parse_double(const std::string& s); // finite numbers only
std::optional<bool> parse_bool(std::string s);            // true/yes/on, false/no/off, any case

// A name of an app, stage, edge or port: letters, digits, '_', '.' and '-'.
bool valid_name(std::string_view s);

std::string join(const std::vector<std::string>& items, const char* sep = ", ");
// " (did you mean 'x'?)" when one of `choices` is a likely intended spelling of `word`.
std::string suggest(std::string_view word, const std::vector<std::string>& choices);

// "HOST:PORT" ("[::1]:9090" too): the host and a port from 0 to 65535; nullopt otherwise.
struct host_port {
  std::string host;
  uint16_t port = 0;
};
std::optional<host_port> parse_host_port(std::string_view text);

// Absolute and normalized, with no trailing slash but on "/"; "" is the current directory.
std::string absolute_path(const std::filesystem::path& p);

} // namespace troupe::detail
