// `${NAME}` and `${NAME:-default}` in an app file's scalar values (see yaml_overrides.hpp).
// As in a POSIX shell: `${NAME:-default}` takes the default when NAME is unset or empty;
// `${NAME}` of a variable set to "" is "". Unlike a shell, an unset `${NAME}` is an error: a
// typo in a variable's name must not quietly become an empty path.
#include "config/yaml_overrides.hpp"

#include <cstdlib>

namespace troupe::detail {

namespace {

bool name_char(char c, bool first) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
         (!first && c >= '0' && c <= '9');
}

} // namespace

std::optional<std::string> substitute_env_text(const std::string& text, std::string& error) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) { // the escape: a literal "${"
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    auto close = text.find('}', i + 2);
    if (close == std::string::npos) {
      error = "'${' at offset " + std::to_string(i) +
              " is not closed by '}' (write $${ for a literal ${)";
      return std::nullopt;
    }
    std::string inner = text.substr(i + 2, close - i - 2);
    auto dash = inner.find(":-");
    std::string name = inner.substr(0, dash);
    bool valid = !name.empty();
    for (size_t k = 0; k < name.size() && valid; ++k)
      valid = name_char(name[k], k == 0);
    if (!valid) {
      error = "'${" + inner +
              "}' does not name an environment variable (letters, digits and "
              "'_', not starting with a digit; ${NAME:-default} for a default)";
      return std::nullopt;
    }
    const char* value = std::getenv(name.c_str());
    if (dash != std::string::npos) {
      out += value && *value ? std::string(value) : inner.substr(dash + 2);
    } else if (value) {
      out += value;
    } else {
      error = "environment variable " + name + " is not set (export it, or write ${" + name +
              ":-default})";
      return std::nullopt;
    }
    i = close + 1;
  }
  return out;
}

void substitute_env(reporter& r, YAML::Node node, const std::string& field) {
  if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    if (text.find("${") == std::string::npos)
      return;
    std::string error;
    if (auto value = substitute_env_text(text, error))
      node = *value; // keeps the node's position, so later issues still point at the file
    else {
      r.at(node, field, error);
      r.settled(field);
    }
    return;
  }
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i)
      substitute_env(r, node[i], index(field, i));
  } else if (node.IsMap()) {
    for (auto entry : node)
      if (entry.first.IsScalar())
        substitute_env(r, entry.second,
                       field.empty() ? entry.first.Scalar() : field + "." + entry.first.Scalar());
  }
}

} // namespace troupe::detail
