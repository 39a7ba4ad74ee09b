// What the three formats share: the environment, names of enums and the "did you mean" helper.
// Each format lives in its own file (cloud_resource.cc, instance_types.cc, job_config.cc).
#include "spec/specs.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace meridian::spec {

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::string_view ProviderName(Provider provider) {
  switch (provider) {
    case Provider::kAzure:
      return "AZURE";
    case Provider::kAws:
      return "AWS";
    case Provider::kGcp:
      return "GCP";
    case Provider::kGeneric:
      return "GENERIC";
    case Provider::kLocal:
      return "LOCAL";
  }
  return "LOCAL";
}

std::string_view ComputeStackName(ComputeStack stack) {
  switch (stack) {
    case ComputeStack::kK8s:
      return "K8S";
    case ComputeStack::kVm:
      return "VM";
    case ComputeStack::kLocal:
      return "LOCAL";
  }
  return "LOCAL";
}

std::vector<std::string> IgnoredJobFields(const JobConfig& config) {
  std::vector<std::string> ignored;
  if (!config.image_uri.empty()) ignored.push_back("image_uri");
  if (!config.requirements.empty()) ignored.push_back("requirements");
  if (!config.py_modules.empty()) ignored.push_back("py_modules");
  return ignored;
}

namespace {

// Levenshtein distance, ignoring ASCII case, with one row of memory.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates) {
  // Field names are short; a word far longer than any is not a typo worth suggesting for, and
  // skipping it keeps this O(n*m) cheap on hostile input.
  constexpr size_t kMaxWordChars = 256;
  if (word.size() > kMaxWordChars) return "";
  size_t threshold = std::max<size_t>(2, word.size() / 3);
  std::string best;
  size_t best_distance = threshold + 1;
  for (const std::string& candidate : candidates) {
    size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

}  // namespace meridian::spec
