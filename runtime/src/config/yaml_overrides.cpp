// `--set path.to.key=value` on an app's YAML tree (see yaml_overrides.hpp; the syntax is in
// runtime/CONFIG.md, "Overrides").
//
// A path is walked one step at a time. In a map, the step is the longest existing key that the
// rest of the path starts with (names may contain dots: a stage `price.v2`), else the text up to
// the next '.' or '[' (a key to create). In a list, the step is `[i]`, or a name: the item that
// is a map whose `name` is that name (the longest such prefix, as for keys).
#include "config/yaml_overrides.hpp"

namespace troupe::detail {

namespace {

// Whether `rest` is `step` alone or `step` followed by '.' or '['.
bool starts_with_step(std::string_view rest, std::string_view step) {
  return rest.compare(0, step.size(), step) == 0 &&
         (rest.size() == step.size() || rest[step.size()] == '.' || rest[step.size()] == '[');
}

std::string_view next_word(std::string_view rest) {
  return rest.substr(0, std::min(rest.find('.'), rest.find('[')));
}

class override_walk {
public:
  override_walk(reporter& r, std::string text) : r_(r), text_(std::move(text)) {}

  void apply(YAML::Node root) {
    auto eq = text_.find('=');
    if (eq == std::string::npos || eq == 0) {
      r_.at_override(text_, "", "expected path.to.key=value, e.g. stages.price.workers=4");
      return;
    }
    std::string_view rest = std::string_view(text_).substr(0, eq);
    YAML::Node value;
    try {
      // A leading '!' would be a YAML tag; on a command line it is meant as text (`where=!rush`).
      auto raw = text_.substr(eq + 1);
      value = !raw.empty() && raw[0] == '!' ? YAML::Node(raw) : YAML::Load(raw);
    } catch (const YAML::Exception& e) {
      // A text starting with @, *, &, [ or { (a cron macro, a cron expression) reads as YAML.
      r_.at_override(text_, "", "the value is not valid YAML: " + e.msg + "; to give it as text, "
                                "quote it: --set '" + std::string(rest) + "=\"" +
                                text_.substr(eq + 1) + "\"'");
      return;
    }
    YAML::Node at = root;
    std::string field;
    std::string created; // the first key on the way that did not exist: the override's too
    while (true) {
      if (rest.empty() || rest.front() == '.') {
        r_.at_override(text_, field, "expected a key after '" + field + "'");
        return;
      }
      std::string step_field;
      std::optional<YAML::Node> next;
      if (rest.front() == '[') {
        next = index_step(at, rest, field, step_field);
      } else if (at.IsSequence()) {
        next = name_step(at, rest, field, step_field);
      } else if (at.IsMap() || at.IsNull() || !at.IsDefined()) { // absent: created on the way
        next = key_step(at, rest, field, step_field);
      } else {
        r_.at_override(text_, field,
                       "'" + field + "' is " + describe(at) + ", not a map: nothing to set in it");
        return;
      }
      if (!next)
        return;
      field = step_field;
      if (created.empty() && !next->IsDefined())
        created = field;
      if (rest.empty()) {
        *next = value; // writes into the tree; the key keeps its position in the file
        r_.blame_override(created.empty() ? field : created, text_);
        return;
      }
      if (rest.front() == '.')
        rest.remove_prefix(1);
      at.reset(*next); // rebinds; `at = *next` would overwrite the node `at` refers to
    }
  }

private:
  std::optional<YAML::Node> key_step(YAML::Node& map, std::string_view& rest,
                                     const std::string& field, std::string& step_field) {
    std::string best;
    if (map.IsMap())
      for (auto entry : map)
        if (entry.first.IsScalar() && entry.first.Scalar().size() > best.size() &&
            starts_with_step(rest, entry.first.Scalar()))
          best = entry.first.Scalar();
    if (best.empty())
      best = std::string(next_word(rest));
    rest.remove_prefix(best.size());
    step_field = field.empty() ? best : field + "." + best;
    return map[best]; // created (as null) when absent: an empty map to go on into
  }

  std::optional<YAML::Node> index_step(YAML::Node& list, std::string_view& rest,
                                       const std::string& field, std::string& step_field) {
    auto close = rest.find(']');
    auto digits = rest.substr(1, close == std::string_view::npos ? 0 : close - 1);
    auto i = parse_uint(digits);
    if (!i) {
      r_.at_override(text_, field,
                     "expected [index] with a number, found '" +
                         std::string(rest.substr(0, close + 1)) + "'");
      return std::nullopt;
    }
    step_field = index(field, *i);
    if (!list.IsSequence()) {
      r_.at_override(text_, field,
                     "'" + field + "' is " + describe(list) + ", not a list: " + step_field +
                         " does not exist");
      return std::nullopt;
    }
    if (*i >= list.size()) {
      r_.at_override(
          text_, step_field,
          "'" + field + "' has " + std::to_string(list.size()) +
              (list.size() == 1 ? " item" : " items") +
              (list.size() ? " ([0] to [" + std::to_string(list.size() - 1) + "])" : ""));
      return std::nullopt;
    }
    rest.remove_prefix(close + 1);
    return list[*i];
  }

  std::optional<YAML::Node> name_step(YAML::Node& list, std::string_view& rest,
                                      const std::string& field, std::string& step_field) {
    std::vector<std::string> names;
    size_t best = list.size(), best_size = 0;
    for (size_t i = 0; i < list.size(); ++i) {
      YAML::Node name = list[i].IsMap() ? list[i]["name"] : YAML::Node();
      if (!name.IsScalar())
        continue;
      names.push_back(name.Scalar());
      if (name.Scalar().size() > best_size && starts_with_step(rest, name.Scalar())) {
        best = i;
        best_size = name.Scalar().size();
      }
    }
    if (best == list.size()) {
      std::string word(next_word(rest));
      r_.at_override(text_, field,
                     "no item of '" + field + "' is named '" + word + "'" + suggest(word, names) +
                         (names.empty() ? "" : "; names: " + join(names)) + " (or address one as " +
                         field + "[i])");
      return std::nullopt;
    }
    rest.remove_prefix(best_size);
    step_field = index(field, best);
    return list[best];
  }

  reporter& r_;
  std::string text_;
};

} // namespace

void apply_overrides(reporter& r, YAML::Node root, const std::vector<std::string>& overrides) {
  for (const auto& text : overrides)
    override_walk(r, text).apply(root);
}

} // namespace troupe::detail
