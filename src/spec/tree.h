// Internal to spec: the one representation every format is validated on (a JSON tree that
// keeps the order of the file), where each value came from, and the typed accessors the
// validators share so that every format reports errors the same way.
//
// A YAML file becomes a Tree plus a SourceMap (field path -> line/column); JSON from the API
// becomes a Tree with no SourceMap. Validators never look at YAML or at where the Tree came
// from: they call Checker, which formats "<source>:<line>:<col>: <path>: <message>" when it
// knows the position and "<path>: <message>" when it does not.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "spec/specs.h"

namespace meridian::spec {

// Ordered, so that "the first error" is the first in the file, not the first alphabetically.
using Tree = nlohmann::ordered_json;

// Limits on what a spec file may contain, so a hostile file cannot exhaust memory
// (aliases can multiply nodes) or the stack.
inline constexpr int64_t kMaxSpecBytes = int64_t{4} << 20;
inline constexpr int kMaxSpecDepth = 64;
inline constexpr int64_t kMaxSpecNodes = 100'000;

struct Position {
  int line = 0;    // 1-based
  int column = 0;  // 1-based
};

// Where each field of a Tree was written. Paths look like "compute_config.worker_nodes[0].name";
// the root is "".
struct SourceMap {
  std::string source;
  std::unordered_map<std::string, Position> values;  // path -> where its value starts
  std::unordered_map<std::string, Position> keys;    // path -> where its key starts
};

struct YamlTree {
  Tree root;
  SourceMap positions;
};

// Parses one YAML document. Plain scalars resolve like YAML 1.2's core schema (null, true/false,
// integers, floats, else strings); quoted and block scalars are strings. When `env` is given,
// $VAR, ${VAR} and $$ in every string value are expanded (an unset variable is an error at that
// value). Duplicate keys and non-scalar keys are errors.
Result<YamlTree> ParseYamlTree(std::string_view yaml, std::string_view source_name,
                               const EnvLookup* env);

// Expands $VAR, ${VAR} and $$ in `text`. The error message is positionless ("environment
// variable X is not set"); the caller adds where.
Result<std::string> ExpandVariables(std::string_view text, const EnvLookup& env);

std::string ChildPath(std::string_view path, std::string_view key);
std::string IndexPath(std::string_view path, size_t index);

// "string \"two\"", "2.5", "true", "null", "a list", "a mapping": for "expected X, got Y".
std::string Describe(const Tree& value);

// The field `key` of `object`, or nullptr when it is absent or null (YAML's `key:` with no
// value means "not given").
const Tree* Field(const Tree& object, std::string_view key);

class Checker {
 public:
  // `positions` may be null (JSON from the API); when given it must outlive the Checker.
  explicit Checker(const SourceMap* positions) : positions_(positions) {}

  // kInvalidArgument at the value of `path` (or the nearest enclosing field with a position).
  Status Fail(std::string_view path, std::string_view message) const;
  // Same, but at the key of `path` (for unknown and duplicate fields).
  Status FailAtKey(std::string_view path, std::string_view message) const;

  Status ExpectObject(const Tree& value, std::string_view path) const;
  // Every key of `object` must be in `known`; else "unknown field 'x' (did you mean 'y'?)".
  Status CheckKnownFields(const Tree& object, std::string_view path,
                          const std::vector<std::string>& known) const;
  // Fails with "<path>.<key>: is required" when the field is absent or null.
  Result<const Tree*> Required(const Tree& object, std::string_view path,
                               std::string_view key) const;

  Result<std::string> String(const Tree& value, std::string_view path) const;
  // Strings, and numbers and booleans turned into their text (env_vars, tags).
  Result<std::string> ScalarText(const Tree& value, std::string_view path) const;
  Result<int64_t> Integer(const Tree& value, std::string_view path, int64_t min, int64_t max) const;
  Result<double> Number(const Tree& value, std::string_view path, double min, double max) const;
  Result<bool> Bool(const Tree& value, std::string_view path) const;
  Result<std::vector<std::string>> StringList(const Tree& value, std::string_view path) const;
  Result<std::map<std::string, std::string>> TextMap(const Tree& value,
                                                     std::string_view path) const;
  Result<std::map<std::string, double>> NumberMap(const Tree& value, std::string_view path,
                                                  double min, double max) const;
  // One of `accepted` (compared ignoring case); returns the index into `accepted`.
  Result<size_t> OneOf(const Tree& value, std::string_view path, std::string_view what,
                       const std::vector<std::string>& accepted) const;

 private:
  Status FailAt(std::string_view path, bool at_key, std::string_view message) const;

  const SourceMap* positions_;
};

// A region name as cloud_resource.yaml's `region` and job.yaml's compute_config.regions spell
// it: lowercase letters and digits in words joined by single '-' (westus2, eu-west-1), at most
// kMaxRegionChars characters.
inline constexpr size_t kMaxRegionChars = 35;
Status CheckRegionName(const Checker& check, std::string_view path, const std::string& region);

}  // namespace meridian::spec
