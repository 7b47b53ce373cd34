// Changing an app's YAML tree before it is checked: `${NAME}` from the environment in scalar
// values, and the CLI's `--set path.to.key=value` overrides. Both only rewrite the tree; every
// check of what they produce is the loader's, as if the file had said it.
#pragma once

#include "config/yaml_reader.hpp"

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace troupe::detail {

// Replaces `${NAME}` and `${NAME:-default}` in every scalar value under `root` (not in keys) by
// the environment variable NAME; `$${` stands for a literal `${`. An unset NAME without a
// default, or a reference that does not close, is an issue at the scalar.
void substitute_env(reporter& r, YAML::Node root, const std::string& field = "");

// The same substitution on one text; nullopt and `error` set when it fails.
std::optional<std::string> substitute_env_text(const std::string& text, std::string& error);

// Applies each "path=value" to `root` (a map), in order (before substitute_env, so that a
// value an override replaces is never read). The value is read as YAML (so
// `[a, b]` and `{k: v}` work; a plain word is a string). Maps and keys on the way that do not
// exist are created; a list is indexed by `[i]` or, for lists of maps with a `name` (stages), by
// that name. An override that cannot be followed is an issue naming it; the fields it sets are
// registered with `r`, so that later issues about them name the override, not a file line.
void apply_overrides(reporter& r, YAML::Node root, const std::vector<std::string>& overrides);

} // namespace troupe::detail
