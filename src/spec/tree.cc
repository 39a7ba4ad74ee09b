#include "spec/tree.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <regex>

#include "fmt/format.h"

namespace meridian::spec {
namespace {

constexpr size_t kMaxDescribedChars = 40;

Position ToPosition(const YAML::Mark& mark) { return Position{mark.line + 1, mark.column + 1}; }

bool IsVariableStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsVariableChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Resolves a plain (unquoted) scalar the way YAML 1.2's core schema does.
Tree ResolvePlainScalar(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return Tree(nullptr);
  }
  if (text == "true" || text == "True" || text == "TRUE") return Tree(true);
  if (text == "false" || text == "False" || text == "FALSE") return Tree(false);
  // Most scalars are words; skip the number patterns for them (std::regex is slow).
  char first = text[0];
  if (!std::isdigit(static_cast<unsigned char>(first)) && first != '-' && first != '+' &&
      first != '.') {
    return Tree(text);
  }
  static const std::regex kDecimal("[-+]?[0-9]+");
  static const std::regex kHex("0x[0-9a-fA-F]+");
  static const std::regex kOctal("0o[0-7]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  static const std::regex kInfinity("[-+]?\\.(inf|Inf|INF)");
  static const std::regex kNan("\\.(nan|NaN|NAN)");
  auto parse_integer = [&](std::string_view digits, int base) -> std::optional<Tree> {
    bool negative = !digits.empty() && digits[0] == '-';
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
    uint64_t magnitude = 0;
    auto [end, error] =
        std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
    if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    if (magnitude > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;  // too large for an integer: falls through to a float
    }
    int64_t value = static_cast<int64_t>(magnitude);
    return Tree(negative ? -value : value);
  };
  if (std::regex_match(text, kDecimal)) {
    if (auto value = parse_integer(text, 10)) return *value;
  }
  if (std::regex_match(text, kHex)) {
    if (auto value = parse_integer(std::string_view(text).substr(2), 16)) return *value;
  }
  if (std::regex_match(text, kOctal)) {
    if (auto value = parse_integer(std::string_view(text).substr(2), 8)) return *value;
  }
  if (std::regex_match(text, kFloat)) return Tree(std::strtod(text.c_str(), nullptr));
  if (std::regex_match(text, kInfinity)) {
    double infinity = std::numeric_limits<double>::infinity();
    return Tree(text[0] == '-' ? -infinity : infinity);
  }
  if (std::regex_match(text, kNan)) return Tree(std::numeric_limits<double>::quiet_NaN());
  return Tree(text);
}

std::string Quote(std::string_view text) {
  std::string shown(text.substr(0, kMaxDescribedChars));
  if (text.size() > kMaxDescribedChars) shown += "...";
  // The cut may split a UTF-8 sequence: replace rather than throw.
  return Tree(shown).dump(-1, ' ', false, Tree::error_handler_t::replace);
}

// Every string that reaches a spec must be valid UTF-8: it is stored and sent as JSON.
bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    if (c < 0x80) {
      extra = 0;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
    } else {
      return false;
    }
    if (text.size() - i <= extra) return false;
    uint32_t code = extra == 0 ? c : c & (0x3f >> extra);
    for (size_t k = 1; k <= extra; ++k) {
      unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code = (code << 6) | (next & 0x3f);
    }
    static constexpr uint32_t kMinimum[] = {0, 0x80, 0x800, 0x10000};
    if (code < kMinimum[extra] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

// Walks a yaml-cpp node into a Tree, recording positions as it goes.
class YamlConverter {
 public:
  YamlConverter(SourceMap* positions, const EnvLookup* env) : positions_(positions), env_(env) {}

  Result<Tree> Convert(const YAML::Node& node, const std::string& path, int depth) {
    if (++nodes_ > kMaxSpecNodes) {
      return Fail(
          node.Mark(), path,
          fmt::format("the document has more than {} values (aliases included)", kMaxSpecNodes));
    }
    if (depth > kMaxSpecDepth) {
      return Fail(node.Mark(), path,
                  fmt::format("nested deeper than the limit of {} levels", kMaxSpecDepth));
    }
    if (!node.Mark().is_null()) positions_->values.emplace(path, ToPosition(node.Mark()));
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return Tree(nullptr);
      case YAML::NodeType::Scalar:
        return ConvertScalar(node, path);
      case YAML::NodeType::Sequence: {
        Tree list = Tree::array();
        size_t index = 0;
        for (const YAML::Node& item : node) {
          ASSIGN_OR_RETURN(Tree value, Convert(item, IndexPath(path, index++), depth + 1));
          list.push_back(std::move(value));
        }
        return list;
      }
      case YAML::NodeType::Map:
        return ConvertMap(node, path, depth);
    }
    return Tree(nullptr);
  }

 private:
  Status Fail(const YAML::Mark& mark, std::string_view path, std::string_view message) const {
    std::string where = positions_->source;
    if (!mark.is_null()) {
      where = fmt::format("{}:{}:{}", positions_->source, mark.line + 1, mark.column + 1);
    }
    if (path.empty()) return absl::InvalidArgumentError(fmt::format("{}: {}", where, message));
    return absl::InvalidArgumentError(fmt::format("{}: {}: {}", where, path, message));
  }

  Result<Tree> ConvertScalar(const YAML::Node& node, const std::string& path) {
    if (!IsValidUtf8(node.Scalar())) return Fail(node.Mark(), path, "is not valid UTF-8 text");
    const std::string& tag = node.Tag();
    bool is_string = tag == "!" || tag == "tag:yaml.org,2002:str";
    Tree value = is_string ? Tree(node.Scalar()) : ResolvePlainScalar(node.Scalar());
    if (env_ != nullptr && value.is_string()) {
      Result<std::string> expanded = ExpandVariables(value.get_ref<const std::string&>(), *env_);
      if (!expanded.ok()) {
        return Fail(node.Mark(), path, std::string(expanded.status().message()));
      }
      value = std::move(*expanded);
    }
    return value;
  }

  Result<Tree> ConvertMap(const YAML::Node& node, const std::string& path, int depth) {
    Tree object = Tree::object();
    // Range-for keeps each entry alive for the body; `it->first` would point into a temporary.
    for (const auto& entry : node) {
      const YAML::Node& key_node = entry.first;
      if (!key_node.IsScalar()) {
        return Fail(key_node.Mark(), path, "field names must be plain text, not lists or mappings");
      }
      const std::string& key = key_node.Scalar();
      if (!IsValidUtf8(key)) return Fail(key_node.Mark(), path, "a field name is not valid UTF-8");
      std::string child = ChildPath(path, key);
      if (object.contains(key)) {
        return Fail(key_node.Mark(), child, fmt::format("duplicate field '{}'", key));
      }
      Position key_position = ToPosition(key_node.Mark());
      positions_->keys.emplace(child, key_position);
      ASSIGN_OR_RETURN(Tree value, Convert(entry.second, child, depth + 1));
      // `key:` with no value has no useful mark of its own (yaml-cpp points past the line).
      if (value.is_null()) positions_->values[child] = key_position;
      object[key] = std::move(value);
    }
    return object;
  }

  SourceMap* positions_;
  const EnvLookup* env_;
  int64_t nodes_ = 0;
};

}  // namespace

Result<std::string> ExpandVariables(std::string_view text, const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$' || i + 1 == text.size()) {
      out += c;
      continue;
    }
    char next = text[i + 1];
    std::string name;
    if (next == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (next == '{') {
      size_t close = text.find('}', i + 2);
      if (close == std::string_view::npos) {
        return absl::InvalidArgumentError(
            fmt::format("unterminated '${{' in {} (write $$ for a literal '$')", Quote(text)));
      }
      name = std::string(text.substr(i + 2, close - i - 2));
      bool valid = !name.empty() && IsVariableStart(name[0]);
      for (char n : name) valid = valid && IsVariableChar(n);
      if (!valid) {
        return absl::InvalidArgumentError(fmt::format(
            "'${{{}}}' is not a variable reference (only ${{NAME}} and $NAME are expanded; write "
            "$$ for a literal '$')",
            name));
      }
      i = close;
    } else if (IsVariableStart(next)) {
      size_t end = i + 1;
      while (end < text.size() && IsVariableChar(text[end])) ++end;
      name = std::string(text.substr(i + 1, end - i - 1));
      i = end - 1;
    } else {
      out += c;  // a lone '$' (e.g. "$5") is kept as written
      continue;
    }
    std::optional<std::string> value = env(name);
    if (!value) {
      return absl::InvalidArgumentError(fmt::format("environment variable {} is not set", name));
    }
    out += *value;
  }
  return out;
}

Result<YamlTree> ParseYamlTree(std::string_view yaml, std::string_view source_name,
                               const EnvLookup* env) {
  YamlTree result;
  result.positions.source = std::string(source_name);
  if (static_cast<int64_t>(yaml.size()) > kMaxSpecBytes) {
    return absl::InvalidArgumentError(
        fmt::format("{}: is larger than the limit of {} bytes", source_name, kMaxSpecBytes));
  }
  YAML::Node document;
  try {
    document = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& error) {
    if (error.mark.is_null()) {
      return absl::InvalidArgumentError(fmt::format("{}: {}", source_name, error.msg));
    }
    return absl::InvalidArgumentError(fmt::format("{}:{}:{}: {}", source_name, error.mark.line + 1,
                                                  error.mark.column + 1, error.msg));
  } catch (const std::exception& error) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", source_name, error.what()));
  }
  // The root of an empty document has no mark; errors about it point at the first line.
  result.positions.values[""] = Position{1, 1};
  try {
    YamlConverter converter(&result.positions, env);
    ASSIGN_OR_RETURN(result.root, converter.Convert(document, "", 0));
  } catch (const std::exception& error) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", source_name, error.what()));
  }
  return result;
}

std::string ChildPath(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return fmt::format("{}.{}", path, key);
}

Status CheckRegionName(const Checker& check, std::string_view path, const std::string& region) {
  static const std::regex kPattern("[a-z0-9]+(-[a-z0-9]+)*");
  if (region.empty()) return check.Fail(path, "must not be empty");
  if (region.size() > kMaxRegionChars) {
    return check.Fail(path, fmt::format("is {} characters long; the limit is {}", region.size(),
                                        kMaxRegionChars));
  }
  if (!std::regex_match(region, kPattern)) {
    return check.Fail(path, fmt::format("'{}' must be lowercase letters and digits in "
                                        "words joined by single '-' (e.g. westus2, eu-west-1)",
                                        region));
  }
  return OkStatus();
}

std::string IndexPath(std::string_view path, size_t index) {
  return fmt::format("{}[{}]", path, index);
}

std::string Describe(const Tree& value) {
  switch (value.type()) {
    case Tree::value_t::null:
      return "null";
    case Tree::value_t::string:
      return "string " + Quote(value.get_ref<const std::string&>());
    case Tree::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case Tree::value_t::array:
      return "a list";
    case Tree::value_t::object:
      return "a mapping";
    default:
      return value.dump();
  }
}

const Tree* Field(const Tree& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

Status Checker::FailAt(std::string_view path, bool at_key, std::string_view message) const {
  std::string prefix = path.empty() ? "" : fmt::format("{}: ", path);
  if (positions_ == nullptr) return absl::InvalidArgumentError(prefix + std::string(message));
  // The nearest enclosing field that has a position: a missing field is reported at its parent.
  std::string probe(path);
  const auto* table = at_key ? &positions_->keys : &positions_->values;
  while (true) {
    auto it = table->find(probe);
    if (it != table->end()) {
      return absl::InvalidArgumentError(fmt::format("{}:{}:{}: {}{}", positions_->source,
                                                    it->second.line, it->second.column, prefix,
                                                    message));
    }
    if (probe.empty()) break;
    size_t cut = probe.find_last_of(".[");
    probe = cut == std::string::npos ? "" : probe.substr(0, cut);
    table = &positions_->values;
  }
  return absl::InvalidArgumentError(fmt::format("{}: {}{}", positions_->source, prefix, message));
}

Status Checker::Fail(std::string_view path, std::string_view message) const {
  return FailAt(path, false, message);
}

Status Checker::FailAtKey(std::string_view path, std::string_view message) const {
  return FailAt(path, true, message);
}

Status Checker::ExpectObject(const Tree& value, std::string_view path) const {
  if (value.is_object()) return OkStatus();
  return Fail(path, fmt::format("expected a mapping, got {}", Describe(value)));
}

Status Checker::CheckKnownFields(const Tree& object, std::string_view path,
                                 const std::vector<std::string>& known) const {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (const std::string& name : known) found = found || name == key;
    if (found) continue;
    std::string message = fmt::format("unknown field '{}'", key);
    std::string suggestion = DidYouMean(key, known);
    if (!suggestion.empty()) message += fmt::format(" (did you mean '{}'?)", suggestion);
    return FailAtKey(ChildPath(path, key), message);
  }
  return OkStatus();
}

Result<const Tree*> Checker::Required(const Tree& object, std::string_view path,
                                      std::string_view key) const {
  const Tree* value = Field(object, key);
  if (value == nullptr) return Fail(ChildPath(path, key), "is required");
  return value;
}

Result<std::string> Checker::String(const Tree& value, std::string_view path) const {
  if (!value.is_string()) {
    return Fail(path, fmt::format("expected a string, got {}", Describe(value)));
  }
  return value.get<std::string>();
}

Result<std::string> Checker::ScalarText(const Tree& value, std::string_view path) const {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return std::string(value.get<bool>() ? "true" : "false");
  if (value.is_number_unsigned()) return fmt::format("{}", value.get<uint64_t>());
  if (value.is_number_integer()) return fmt::format("{}", value.get<int64_t>());
  if (value.is_number_float()) return fmt::format("{}", value.get<double>());
  return Fail(path, fmt::format("expected a string, got {}", Describe(value)));
}

Result<int64_t> Checker::Integer(const Tree& value, std::string_view path, int64_t min,
                                 int64_t max) const {
  int64_t result = 0;
  // is_number_integer() is true for unsigned values too: test unsigned first.
  if (value.is_number_unsigned()) {
    uint64_t big = value.get<uint64_t>();
    if (big > static_cast<uint64_t>(max)) {
      return Fail(path, fmt::format("must be at most {}, got {}", max, big));
    }
    result = static_cast<int64_t>(big);
  } else if (value.is_number_integer()) {
    result = value.get<int64_t>();
  } else if (value.is_number_float() && std::isfinite(value.get<double>()) &&
             std::trunc(value.get<double>()) == value.get<double>() &&
             std::fabs(value.get<double>()) < 9.0e15) {
    result = static_cast<int64_t>(value.get<double>());  // 2.0 from a JSON client is 2
  } else {
    return Fail(path, fmt::format("expected an integer, got {}", Describe(value)));
  }
  if (result < min) return Fail(path, fmt::format("must be at least {}, got {}", min, result));
  if (result > max) return Fail(path, fmt::format("must be at most {}, got {}", max, result));
  return result;
}

Result<double> Checker::Number(const Tree& value, std::string_view path, double min,
                               double max) const {
  if (!value.is_number()) {
    return Fail(path, fmt::format("expected a number, got {}", Describe(value)));
  }
  double result = value.get<double>();
  if (!std::isfinite(result)) return Fail(path, "must be a finite number");
  if (result < min) return Fail(path, fmt::format("must be at least {}, got {}", min, result));
  if (result > max) return Fail(path, fmt::format("must be at most {}, got {}", max, result));
  return result;
}

Result<bool> Checker::Bool(const Tree& value, std::string_view path) const {
  if (!value.is_boolean()) {
    return Fail(path, fmt::format("expected true or false, got {}", Describe(value)));
  }
  return value.get<bool>();
}

Result<std::vector<std::string>> Checker::StringList(const Tree& value,
                                                     std::string_view path) const {
  if (!value.is_array()) {
    return Fail(path, fmt::format("expected a list of strings, got {}", Describe(value)));
  }
  std::vector<std::string> result;
  for (size_t i = 0; i < value.size(); ++i) {
    ASSIGN_OR_RETURN(std::string item, String(value[i], IndexPath(path, i)));
    result.push_back(std::move(item));
  }
  return result;
}

Result<std::map<std::string, std::string>> Checker::TextMap(const Tree& value,
                                                            std::string_view path) const {
  RETURN_IF_ERROR(ExpectObject(value, path));
  std::map<std::string, std::string> result;
  for (const auto& [key, item] : value.items()) {
    ASSIGN_OR_RETURN(std::string text, ScalarText(item, ChildPath(path, key)));
    result.emplace(key, std::move(text));
  }
  return result;
}

Result<std::map<std::string, double>> Checker::NumberMap(const Tree& value, std::string_view path,
                                                         double min, double max) const {
  RETURN_IF_ERROR(ExpectObject(value, path));
  std::map<std::string, double> result;
  for (const auto& [key, item] : value.items()) {
    ASSIGN_OR_RETURN(double number, Number(item, ChildPath(path, key), min, max));
    result.emplace(key, number);
  }
  return result;
}

Result<size_t> Checker::OneOf(const Tree& value, std::string_view path, std::string_view what,
                              const std::vector<std::string>& accepted) const {
  ASSIGN_OR_RETURN(std::string text, String(value, path));
  for (size_t i = 0; i < accepted.size(); ++i) {
    if (text.size() != accepted[i].size()) continue;
    bool same = true;
    for (size_t j = 0; j < text.size() && same; ++j) {
      same = std::toupper(static_cast<unsigned char>(text[j])) ==
             std::toupper(static_cast<unsigned char>(accepted[i][j]));
    }
    if (same) return i;
  }
  std::string list;
  for (const std::string& name : accepted) list += (list.empty() ? "" : ", ") + name;
  std::string message = fmt::format("unknown {} {} (accepted: {})", what, Quote(text), list);
  std::string suggestion = DidYouMean(text, accepted);
  if (!suggestion.empty()) message += fmt::format("; did you mean '{}'?", suggestion);
  return Fail(path, message);
}

}  // namespace meridian::spec
