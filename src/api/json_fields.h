// Reading a JSON object field by field, for the body parsers of this library only (it
// includes nlohmann/json: never include it from a header).
//
// Every error names the field's path ("attempts[2].epoch: expected an integer"). Fields the
// reader was not asked for are, in `kIgnoreUnknown` mode, logged once per body and field
// path and otherwise ignored, so that a newer meridian process may send an older one more
// than it knows; in `kRefuseUnknown` mode (what users write) they are errors.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"

namespace meridian::api::internal {

enum class Unknown { kIgnoreUnknown, kRefuseUnknown };

// "a.b" from "a" and "b"; "b" from "" and "b".
std::string FieldPath(const std::string& parent, std::string_view name);
std::string IndexPath(const std::string& parent, size_t index);

// Parses `text` as a JSON object; `body` names it in errors.
Result<nlohmann::json> ParseObject(std::string_view text, std::string_view body);

class FieldReader {
 public:
  // `object` must outlive the reader. `body` names the body kind in the unknown-field log.
  FieldReader(const nlohmann::json& object, std::string path, std::string_view body,
              Unknown unknown = Unknown::kIgnoreUnknown);

  // Each reads one field if present (a missing field leaves `out` as it is, unless
  // `required`); a wrong type records an error naming the path. After the first error
  // the others are no-ops.
  void String(const char* name, std::string* out, bool required = false);
  void Int(const char* name, int64_t* out, bool required = false);
  void Int(const char* name, int* out, bool required = false);
  void OptionalInt(const char* name, std::optional<int64_t>* out);
  void Double(const char* name, double* out, bool required = false);
  void Bool(const char* name, bool* out, bool required = false);
  void StringMap(const char* name, std::map<std::string, std::string>* out);
  // The field as an object or array for a nested reader (nullptr when absent or in error).
  const nlohmann::json* Object(const char* name, bool required = false);
  const nlohmann::json* Array(const char* name, bool required = false);
  // Marks a field as known without reading it.
  void Skip(const char* name) { known_.insert(name); }

  // Records an error of the caller's own (kept only if it is the first).
  void Fail(Status status);
  bool ok() const { return status_.ok(); }
  const std::string& path() const { return path_; }
  std::string PathOf(std::string_view name) const { return FieldPath(path_, name); }

  // The first error, else OK after dealing with the unknown fields.
  Status Finish();

 private:
  const nlohmann::json* Find(const char* name, bool required);
  void WrongType(const char* name, std::string_view expected);

  const nlohmann::json& object_;
  const std::string path_;
  const std::string body_;
  const Unknown unknown_;
  std::set<std::string> known_;
  Status status_;
};

// Logs once per process and (body, path) that a field was ignored.
void LogIgnoredField(std::string_view body, const std::string& path);

// Dumps a value for the wire (invalid UTF-8 replaced, never throws).
std::string Dump(const nlohmann::json& value);

}  // namespace meridian::api::internal
