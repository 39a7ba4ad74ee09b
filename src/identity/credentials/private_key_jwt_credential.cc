#include "identity/credentials/private_key_jwt_credential.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "base/files.h"
#include "base/hash.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace meridian::identity::credentials {
namespace {

constexpr int64_t kMaxPemBytes = 64 * 1024;

// base64url(SHA-256(DER)) of the first certificate in `pem`.
Result<std::string> CertificateThumbprintS256(const std::string& pem, const std::string& path) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return absl::InternalError("out of memory reading a certificate");
  X509* certificate = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (certificate == nullptr) {
    return absl::InvalidArgumentError(fmt::format("{} holds no PEM certificate", path));
  }
  unsigned char* der = nullptr;
  const int der_length = i2d_X509(certificate, &der);
  X509_free(certificate);
  if (der_length <= 0) return absl::InternalError(fmt::format("cannot encode {}", path));
  std::string digest =
      base::Sha256(std::string_view(reinterpret_cast<const char*>(der), der_length));
  OPENSSL_free(der);
  return Base64UrlEncode(digest);
}

// A random UUID (version 4): assertion ids must not repeat.
Result<std::string> RandomUuid() {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), bytes.size()) != 1) {
    return absl::UnavailableError("the random source failed making an assertion id");
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  std::string hex;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) hex += '-';
    hex += fmt::format("{:02x}", bytes[i]);
  }
  return hex;
}

}  // namespace

Status CheckPrivateFileMode(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    const int error = errno;
    if (error == ENOENT) return absl::NotFoundError(fmt::format("{} does not exist", path));
    return absl::FailedPreconditionError(
        fmt::format("cannot stat {}: {}", path, std::strerror(error)));
  }
  if ((info.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(fmt::format(
        "private key file {} is accessible by group or others (mode {:04o}); it must be "
        "private to its owner: chmod 600 {}",
        path, info.st_mode & 07777, path));
  }
  return OkStatus();
}

Result<std::unique_ptr<PrivateKeyJwtCredential>> PrivateKeyJwtCredential::Create(
    PrivateKeyJwtOptions options) {
  if (options.client_id.empty()) {
    return absl::InvalidArgumentError("private_key_jwt needs a client id");
  }
  if (options.private_key_file.empty()) {
    return absl::InvalidArgumentError("private_key_jwt needs a private key file");
  }
  if (options.assertion_lifetime_s <= 0 || options.assertion_lifetime_s > 3600) {
    return absl::InvalidArgumentError("the assertion lifetime must be 1 to 3600 seconds");
  }
  RETURN_IF_ERROR(CheckPrivateFileMode(options.private_key_file));
  ASSIGN_OR_RETURN(std::string pem, base::ReadFile(options.private_key_file, kMaxPemBytes));
  Result<std::shared_ptr<const SigningKey>> key = SigningKey::FromPem(pem);
  if (!key.ok()) {
    return absl::InvalidArgumentError(fmt::format(
        "cannot load the private key in {}: {}", options.private_key_file, key.status().message()));
  }
  std::string extra_header;
  if (!options.certificate_file.empty()) {
    ASSIGN_OR_RETURN(std::string certificate,
                     base::ReadFile(options.certificate_file, kMaxPemBytes));
    ASSIGN_OR_RETURN(std::string thumbprint,
                     CertificateThumbprintS256(certificate, options.certificate_file));
    extra_header = nlohmann::json{{"x5t#S256", thumbprint}}.dump();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<TokenEndpointClient> client,
                   TokenEndpointClient::Create(options.endpoint));
  return std::unique_ptr<PrivateKeyJwtCredential>(new PrivateKeyJwtCredential(
      std::move(options), std::move(*key), std::move(extra_header), std::move(client)));
}

PrivateKeyJwtCredential::PrivateKeyJwtCredential(PrivateKeyJwtOptions options,
                                                 std::shared_ptr<const SigningKey> key,
                                                 std::string extra_header_json,
                                                 std::unique_ptr<TokenEndpointClient> client)
    : options_(std::move(options)),
      key_(std::move(key)),
      extra_header_json_(std::move(extra_header_json)),
      client_(std::move(client)) {}

Result<std::string> PrivateKeyJwtCredential::MakeAssertion() const {
  ASSIGN_OR_RETURN(std::string jti, RandomUuid());
  const int64_t now_s = client_->clock().NowUnixMs() / 1000;
  const nlohmann::json claims = {{"iss", options_.client_id},
                                 {"sub", options_.client_id},
                                 {"aud", client_->token_url()},
                                 {"jti", jti},
                                 {"iat", now_s},
                                 {"nbf", now_s},
                                 {"exp", now_s + options_.assertion_lifetime_s}};
  return SignJwt(*key_, claims.dump(), "JWT", extra_header_json_);
}

Result<AccessToken> PrivateKeyJwtCredential::GetToken(const std::string& scope) {
  ASSIGN_OR_RETURN(std::string assertion, MakeAssertion());
  return client_->Exchange(options_.client_id, scope, assertion);
}

}  // namespace meridian::identity::credentials
