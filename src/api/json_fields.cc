#include "api/json_fields.h"

#include <limits>
#include <mutex>
#include <regex>

#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::api::internal {

using nlohmann::json;

std::string FieldPath(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : fmt::format("{}.{}", parent, name);
}

std::string IndexPath(const std::string& parent, size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

Result<json> ParseObject(std::string_view text, std::string_view body) {
  json value = json::parse(text, nullptr, false);
  if (value.is_discarded()) {
    return absl::InvalidArgumentError(fmt::format("{}: the body is not valid JSON", body));
  }
  if (!value.is_object()) {
    return absl::InvalidArgumentError(fmt::format("{}: the body must be a JSON object", body));
  }
  return value;
}

FieldReader::FieldReader(const json& object, std::string path, std::string_view body,
                         Unknown unknown)
    : object_(object), path_(std::move(path)), body_(body), unknown_(unknown) {
  if (!object_.is_object()) {
    status_ = absl::InvalidArgumentError(
        fmt::format("{}: expected an object", path_.empty() ? body_ : path_));
  }
}

void FieldReader::Fail(Status status) {
  if (status_.ok()) status_ = std::move(status);
}

void FieldReader::WrongType(const char* name, std::string_view expected) {
  Fail(absl::InvalidArgumentError(fmt::format("{}: expected {}", PathOf(name), expected)));
}

const json* FieldReader::Find(const char* name, bool required) {
  known_.insert(name);
  if (!status_.ok()) return nullptr;
  auto it = object_.find(name);
  if (it == object_.end() || it->is_null()) {
    if (required) Fail(absl::InvalidArgumentError(fmt::format("{}: required", PathOf(name))));
    return nullptr;
  }
  return &*it;
}

void FieldReader::String(const char* name, std::string* out, bool required) {
  const json* value = Find(name, required);
  if (value == nullptr) return;
  if (!value->is_string()) return WrongType(name, "a string");
  *out = value->get<std::string>();
}

void FieldReader::Int(const char* name, int64_t* out, bool required) {
  const json* value = Find(name, required);
  if (value == nullptr) return;
  if (!value->is_number_integer()) return WrongType(name, "an integer");
  if (value->is_number_unsigned() &&
      value->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return WrongType(name, "an integer that fits in 64 bits");
  }
  *out = value->get<int64_t>();
}

void FieldReader::Int(const char* name, int* out, bool required) {
  int64_t wide = *out;
  Int(name, &wide, required);
  if (!status_.ok()) return;
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
    return WrongType(name, "an integer that fits in 32 bits");
  }
  *out = static_cast<int>(wide);
}

void FieldReader::OptionalInt(const char* name, std::optional<int64_t>* out) {
  if (Find(name, false) == nullptr) return;
  int64_t value = 0;
  Int(name, &value);
  if (status_.ok()) *out = value;
}

void FieldReader::Double(const char* name, double* out, bool required) {
  const json* value = Find(name, required);
  if (value == nullptr) return;
  if (!value->is_number()) return WrongType(name, "a number");
  *out = value->get<double>();
}

void FieldReader::Bool(const char* name, bool* out, bool required) {
  const json* value = Find(name, required);
  if (value == nullptr) return;
  if (!value->is_boolean()) return WrongType(name, "true or false");
  *out = value->get<bool>();
}

void FieldReader::StringMap(const char* name, std::map<std::string, std::string>* out) {
  const json* value = Find(name, false);
  if (value == nullptr) return;
  if (!value->is_object()) return WrongType(name, "an object of strings");
  std::map<std::string, std::string> result;
  for (auto it = value->begin(); it != value->end(); ++it) {
    if (!it->is_string()) {
      return Fail(absl::InvalidArgumentError(
          fmt::format("{}: expected a string", FieldPath(PathOf(name), it.key()))));
    }
    result[it.key()] = it->get<std::string>();
  }
  *out = std::move(result);
}

const json* FieldReader::Object(const char* name, bool required) {
  const json* value = Find(name, required);
  if (value == nullptr) return nullptr;
  if (!value->is_object()) {
    WrongType(name, "an object");
    return nullptr;
  }
  return value;
}

const json* FieldReader::Array(const char* name, bool required) {
  const json* value = Find(name, required);
  if (value == nullptr) return nullptr;
  if (!value->is_array()) {
    WrongType(name, "an array");
    return nullptr;
  }
  return value;
}

Status FieldReader::Finish() {
  if (!status_.ok()) return status_;
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (known_.count(it.key())) continue;
    if (unknown_ == Unknown::kRefuseUnknown) {
      return absl::InvalidArgumentError(
          fmt::format("{}: unknown field", FieldPath(path_, it.key())));
    }
    LogIgnoredField(body_, FieldPath(path_, it.key()));
  }
  return OkStatus();
}

void LogIgnoredField(std::string_view body, const std::string& path) {
  // Once per field whatever the array index, so a long list does not flood the log.
  static const std::regex kIndex(R"(\[[0-9]+\])");
  std::string key = fmt::format("{}: {}", body, std::regex_replace(path, kIndex, "[]"));
  static std::mutex mu;
  static std::set<std::string>* logged = new std::set<std::string>();
  {
    std::lock_guard lock(mu);
    if (!logged->insert(key).second) return;
    constexpr size_t kMaxLogged = 1000;  // a peer sending endless new names is not remembered
    if (logged->size() > kMaxLogged) logged->clear();
  }
  spdlog::info("{}: ignoring the unknown field {} (sent by a newer meridian?)", body, path);
}

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace meridian::api::internal
