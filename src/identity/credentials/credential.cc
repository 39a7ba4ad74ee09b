#include "identity/credentials/credential.h"

#include <cstdlib>

#include "fmt/format.h"

namespace meridian::identity::credentials {

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::string {
    const char* value = std::getenv(name.c_str());
    return value == nullptr ? std::string() : std::string(value);
  };
}

Result<AccessToken> StaticTokenCredential::GetToken(const std::string& scope) {
  if (scope.empty()) return absl::InvalidArgumentError("a token was asked for an empty scope");
  return token_;
}

ChainedTokenCredential::ChainedTokenCredential(
    std::vector<std::shared_ptr<TokenCredential>> credentials, std::vector<std::string> names)
    : credentials_(std::move(credentials)), names_(std::move(names)) {}

Result<AccessToken> ChainedTokenCredential::GetToken(const std::string& scope) {
  std::string failures;
  for (size_t i = 0; i < credentials_.size(); ++i) {
    Result<AccessToken> token = credentials_[i]->GetToken(scope);
    if (token.ok()) return token;
    const std::string name = i < names_.size() ? names_[i] : fmt::format("credential {}", i + 1);
    failures += fmt::format("{}{}: {}", failures.empty() ? "" : "; ", name,
                            std::string(token.status().message()));
  }
  if (credentials_.empty()) failures = "the chain is empty";
  return absl::UnauthenticatedError(
      fmt::format("no credential in the chain produced a token for '{}': {}", scope, failures));
}

std::function<Result<std::string>(const std::string& scope)> AsTokenSource(
    std::shared_ptr<TokenCredential> credential) {
  return [credential = std::move(credential)](const std::string& scope) -> Result<std::string> {
    ASSIGN_OR_RETURN(AccessToken token, credential->GetToken(scope));
    return std::move(token.token);
  };
}

}  // namespace meridian::identity::credentials
