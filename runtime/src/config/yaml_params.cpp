// troupe::params over a copy of a stage's YAML keys (see yaml_params.hpp).
#include "config/yaml_params.hpp"

#include "config/config_values.hpp"

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;

namespace troupe::detail {

bool yaml_params::has(std::string_view key) const {
  return find(key) != nullptr; // `key:` with no value is there, and an error when read
}

std::string yaml_params::get_string(std::string_view key) const {
  auto* v = find(key);
  if (!v)
    throw_missing(key, "a string");
  reject_null(key, *v);
  return scalar(key, *v, "a string");
}

std::string yaml_params::get_string(std::string_view key, std::string_view fallback) const {
  auto* v = find(key);
  if (!v)
    return std::string(fallback);
  reject_null(key, *v);
  return scalar(key, *v, "a string");
}

uint64_t yaml_params::get_u64(std::string_view key, uint64_t fallback) const {
  auto* v = find(key);
  if (!v)
    return fallback;
  reject_null(key, *v);
  auto parsed = parse_uint(scalar(key, *v, "a non-negative integer"));
  if (!parsed)
    throw_at(*v, key, "expected a non-negative integer, found " + describe(*v));
  return *parsed;
}

double yaml_params::get_double(std::string_view key, double fallback) const {
  auto* v = find(key);
  if (!v)
    return fallback;
  reject_null(key, *v);
  auto parsed = parse_double(scalar(key, *v, "a number"));
  if (!parsed)
    throw_at(*v, key, "expected a number, found " + describe(*v));
  return *parsed;
}

std::chrono::milliseconds yaml_params::get_duration(std::string_view key,
                                                    std::chrono::milliseconds fallback) const {
  auto* v = find(key);
  if (!v)
    return fallback;
  reject_null(key, *v);
  auto parsed = parse_duration(scalar(key, *v, "a duration"));
  if (!parsed || parsed->count() < 1)
    throw_at(*v, key, "expected a duration of at least 1ms (like 250ms, 30s, 5m, 1h), found " +
                        describe(*v));
  return *parsed;
}

bool yaml_params::get_bool(std::string_view key, bool fallback) const {
  auto* v = find(key);
  if (!v)
    return fallback;
  reject_null(key, *v);
  auto parsed = parse_bool(scalar(key, *v, "true or false"));
  if (!parsed)
    throw_at(*v, key, "expected true or false, found " + describe(*v));
  return *parsed;
}

std::string yaml_params::get_path(std::string_view key) const {
  auto text = get_string(key);
  if (text.empty())
    throw_at(*find(key), key, "expected a path, found ''");
  fs::path p(text);
  return absolute_path(p.is_absolute() ? p : fs::path(base_dir_) / p);
}

std::optional<capnp::StructSchema> yaml_params::output_schema(std::string_view port) const {
  auto i = structs_.ports.find(port);
  return i == structs_.ports.end() ? std::nullopt : std::optional(i->second);
}

std::optional<capnp::StructSchema> yaml_params::input_schema(std::string_view edge) const {
  auto i = structs_.inputs.find(edge);
  return i == structs_.inputs.end() ? std::nullopt : std::optional(i->second);
}

std::vector<std::string> yaml_params::get_strings(std::string_view key) const {
  auto* v = find(key);
  if (!v)
    return {};
  reject_null(key, *v);
  if (v->what == value::kind::scalar)
    return {v->text};
  if (v->what != value::kind::list || !v->scalar_items)
    throw_at(*v, key, "expected a list of strings, found " +
                        (v->what == value::kind::list ? std::string("a list of other things")
                                                      : describe(*v)));
  return v->items;
}

std::vector<std::pair<std::string, std::string>> yaml_params::get_map(std::string_view key) const {
  auto* v = find(key);
  if (!v || v->what == value::kind::null)
    return {};
  if (v->what != value::kind::map)
    throw_at(*v, key, "expected a map such as {name: value}, found " + describe(*v));
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : v->entries) {
    if (!e.scalar)
      throw located_config_error({file_, e.line, e.column, field_of(key) + "." + e.key,
                                  "expected a string, found a map or a list"});
    out.emplace_back(e.key, e.text);
  }
  return out;
}

// `key:` with no value is "nothing" for a map, an error for a scalar (CONFIG.md): a param left
// empty by mistake must not quietly take its default.
void yaml_params::reject_null(std::string_view key, const value& v) const {
  if (v.what == value::kind::null)
    throw_at(v, key, "has no value: give one, or leave the key out for its default");
}

void yaml_params::fail(std::string_view key, std::string_view message) const {
  if (auto i = values_.find(key); i != values_.end()) // any key: "type" is not a param
    throw_at(i->second, key, std::string(message));
  // "routes.email": an entry of a map param, at the entry's own line.
  if (auto dot = key.find('.'); dot != std::string_view::npos)
    if (auto i = values_.find(key.substr(0, dot)); i != values_.end())
      for (const auto& e : i->second.entries)
        if (e.key == key.substr(dot + 1))
          throw located_config_error({file_, e.line, e.column, field_of(key), std::string(message)});
  throw located_config_error({file_, line_, column_, field_of(key), std::string(message)});
}

const yaml_params::value* yaml_params::find(std::string_view key) const {
  if (std::find(declared_.begin(), declared_.end(), key) == declared_.end())
    throw located_config_error(
        {file_, line_, column_, field_of(key),
         "stage type '" + type_ + "' reads the param '" + std::string(key) +
             "' but does not declare it; add it to .params({...}) where the type is registered"});
  auto i = values_.find(key);
  return i == values_.end() ? nullptr : &i->second;
}

std::string yaml_params::field_of(std::string_view key) const {
  return key.empty() ? field_ : field_ + "." + std::string(key);
}

std::string yaml_params::describe(const value& v) {
  switch (v.what) {
  case value::kind::null:
    return "nothing";
  case value::kind::scalar:
    return "'" + v.text + "'";
  case value::kind::map:
    return "a map";
  case value::kind::list:
    return "a list";
  }
  return "?";
}

const std::string& yaml_params::scalar(std::string_view key, const value& v,
                                       const char* expected) const {
  if (v.what != value::kind::scalar)
    throw_at(v, key, std::string("expected ") + expected + ", found " + describe(v));
  return v.text;
}

void yaml_params::throw_at(const value& v, std::string_view key, std::string message) const {
  throw located_config_error({file_, v.line, v.column, field_of(key), std::move(message)});
}

void yaml_params::throw_missing(std::string_view key, const char* expected) const {
  throw located_config_error(
      {file_, line_, column_, field_of(key),
       "missing key '" + std::string(key) + "' (expected " + expected + ")"});
}

} // namespace troupe::detail
