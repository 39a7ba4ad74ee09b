#include "net/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "base/files.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::net {
namespace {

constexpr int kCaValidDays = 3650;
constexpr int kServerValidDays = 365;
constexpr int kRenewBeforeDays = 30;
// Certificates start an hour in the past so that a peer whose clock is slightly behind
// still accepts them.
constexpr long kBackdateSeconds = 3600;
constexpr int kSerialBytes = 16;
constexpr int64_t kMaxPemBytes = 1 << 20;

struct X509Deleter {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct BignumDeleter {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct ExtensionDeleter {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using BignumPtr = std::unique_ptr<BIGNUM, BignumDeleter>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, ExtensionDeleter>;

// Drains OpenSSL's thread-local error queue into one readable string.
std::string OpenSslErrors() {
  std::string all;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    if (!all.empty()) all += "; ";
    all += buffer;
  }
  return all.empty() ? "unknown OpenSSL error" : all;
}

Status OpenSslError(std::string_view what) {
  return absl::InternalError(fmt::format("{}: {}", what, OpenSslErrors()));
}

bool IsIpAddress(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

Status ValidateHost(const std::string& host) {
  if (host.empty() || host.size() > 253) {
    return absl::InvalidArgumentError(fmt::format("bad TLS host name '{}'", host));
  }
  if (IsIpAddress(host)) return OkStatus();
  for (char c : host) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '*';
    if (!allowed) {
      return absl::InvalidArgumentError(fmt::format(
          "bad TLS host name '{}': only letters, digits, '-', '.' or an IP address", host));
    }
  }
  return OkStatus();
}

Result<std::string> ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslError("PEM_write_bio_X509");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

Result<std::string> ToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

Result<X509Ptr> LoadCert(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, base::ReadFile(path, kMaxPemBytes));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return absl::FailedPreconditionError(
        fmt::format("{} is not a PEM certificate: {}", path, OpenSslErrors()));
  }
  return cert;
}

Result<PkeyPtr> LoadKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, base::ReadFile(path, kMaxPemBytes));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::FailedPreconditionError(
        fmt::format("{} is not a PEM private key: {}", path, OpenSslErrors()));
  }
  return key;
}

Result<PkeyPtr> MakeKey() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return OpenSslError("cannot make an EC P-256 key");
  return key;
}

Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!extension || X509_add_ext(cert, extension.get(), -1) != 1) {
    return OpenSslError(fmt::format("cannot add certificate extension '{}'", value));
  }
  return OkStatus();
}

Status SetRandomSerial(X509* cert) {
  unsigned char bytes[kSerialBytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return OpenSslError("RAND_bytes");
  bytes[0] &= 0x7F;  // serials must be positive
  bytes[0] |= 0x01;  // and not start with a zero byte
  BignumPtr number(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!number || BN_to_ASN1_INTEGER(number.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("cannot set certificate serial");
  }
  return OkStatus();
}

struct CertSpec {
  std::string common_name;
  int valid_days = 0;
  std::vector<std::pair<int, std::string>> extensions;  // NID, OpenSSL config value
};

// Makes a certificate for `subject_key`, signed by `issuer_key`. `issuer` is null for a
// self-signed certificate.
Result<X509Ptr> MakeCert(const CertSpec& spec, EVP_PKEY* subject_key, X509* issuer,
                         EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return OpenSslError("X509_new");
  RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), spec.valid_days, 0, nullptr) == nullptr) {
    return OpenSslError("cannot set certificate validity");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(spec.common_name.c_str()),
                                 -1, -1, 0) != 1) {
    return OpenSslError("cannot set certificate subject");
  }
  X509* issuer_cert = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)) != 1 ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return OpenSslError("cannot set certificate issuer or key");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer_cert, cert.get(), nullptr, nullptr, 0);
  RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  for (const auto& [nid, value] : spec.extensions) {
    RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, nid, value));
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    return OpenSslError("cannot sign certificate");
  }
  return cert;
}

std::vector<std::string> AllHosts(const std::vector<std::string>& hosts) {
  std::vector<std::string> all = {"localhost", "127.0.0.1"};
  for (const std::string& host : hosts) {
    if (std::find(all.begin(), all.end(), host) == all.end()) all.push_back(host);
  }
  return all;
}

bool CoversHost(X509* cert, const std::string& host) {
  if (IsIpAddress(host)) return X509_check_ip_asc(cert, host.c_str(), 0) == 1;
  return X509_check_host(cert, host.data(), host.size(), 0, nullptr) == 1;
}

bool ExpiresWithin(X509* cert, int days) {
  int day_diff = 0;
  int second_diff = 0;
  if (ASN1_TIME_diff(&day_diff, &second_diff, nullptr, X509_get0_notAfter(cert)) != 1) {
    return true;
  }
  return day_diff < days || (day_diff == days && second_diff <= 0);
}

// Why an existing server certificate must be made again, or "" when it can be kept.
std::string ServerCertProblem(X509* server, EVP_PKEY* server_key, X509* ca, EVP_PKEY* ca_key,
                              const std::vector<std::string>& hosts) {
  // A mismatch is repaired by certifying the existing key again.
  if (X509_check_private_key(server, server_key) != 1) return "its key does not match";
  if (X509_check_issued(ca, server) != X509_V_OK || X509_verify(server, ca_key) != 1) {
    return "it is not signed by the current CA";
  }
  if (ExpiresWithin(server, kRenewBeforeDays)) {
    return fmt::format("it expires within {} days", kRenewBeforeDays);
  }
  for (const std::string& host : hosts) {
    if (!CoversHost(server, host)) return fmt::format("it does not name host {}", host);
  }
  return "";
}

struct CaMaterial {
  X509Ptr cert;
  PkeyPtr key;
};

// Loads the CA, or makes one when no CA certificate exists yet.
Result<CaMaterial> EnsureCa(const TlsFiles& files) {
  CaMaterial ca;
  if (base::PathExists(files.ca_cert)) {
    if (!base::PathExists(files.ca_key)) {
      return absl::FailedPreconditionError(fmt::format(
          "{} exists but its key {} is missing; remove {} to make a new CA", files.ca_cert,
          files.ca_key, files.ca_cert));
    }
    ASSIGN_OR_RETURN(ca.cert, LoadCert(files.ca_cert));
    ASSIGN_OR_RETURN(ca.key, LoadKey(files.ca_key));
    if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
      ERR_clear_error();
      return absl::FailedPreconditionError(
          fmt::format("{} does not match the CA certificate {}", files.ca_key, files.ca_cert));
    }
    if (ExpiresWithin(ca.cert.get(), kRenewBeforeDays)) {
      spdlog::warn("the local CA {} expires within {} days; remove it to make a new one",
                   files.ca_cert, kRenewBeforeDays);
    }
    return ca;
  }
  ASSIGN_OR_RETURN(ca.key, MakeKey());
  CertSpec spec{.common_name = "meridian local CA",
                .valid_days = kCaValidDays,
                .extensions = {{NID_basic_constraints, "critical,CA:TRUE"},
                               {NID_key_usage, "critical,keyCertSign,cRLSign"}}};
  ASSIGN_OR_RETURN(ca.cert, MakeCert(spec, ca.key.get(), nullptr, ca.key.get()));
  ASSIGN_OR_RETURN(std::string key_pem, ToPem(ca.key.get()));
  ASSIGN_OR_RETURN(std::string cert_pem, ToPem(ca.cert.get()));
  // Key first: a crash in between leaves a key without a certificate, which is remade.
  RETURN_IF_ERROR(base::WriteFileAtomic(files.ca_key, key_pem, 0600));
  RETURN_IF_ERROR(base::WriteFileAtomic(files.ca_cert, cert_pem, 0644));
  spdlog::info("made a local CA in {}", files.ca_cert);
  return ca;
}

Status MakeServerCert(const TlsFiles& files, const CaMaterial& ca, PkeyPtr server_key,
                      const std::vector<std::string>& hosts) {
  if (!server_key) {
    ASSIGN_OR_RETURN(server_key, MakeKey());
    ASSIGN_OR_RETURN(std::string key_pem, ToPem(server_key.get()));
    RETURN_IF_ERROR(base::WriteFileAtomic(files.server_key, key_pem, 0600));
  }
  std::string names;
  for (const std::string& host : hosts) {
    if (!names.empty()) names += ",";
    names += fmt::format("{}:{}", IsIpAddress(host) ? "IP" : "DNS", host);
  }
  CertSpec spec{.common_name = hosts.front(),
                .valid_days = kServerValidDays,
                .extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                               {NID_key_usage, "critical,digitalSignature,keyAgreement"},
                               {NID_ext_key_usage, "serverAuth"},
                               {NID_subject_alt_name, names}}};
  ASSIGN_OR_RETURN(X509Ptr cert, MakeCert(spec, server_key.get(), ca.cert.get(), ca.key.get()));
  ASSIGN_OR_RETURN(std::string leaf_pem, ToPem(cert.get()));
  ASSIGN_OR_RETURN(std::string ca_pem, ToPem(ca.cert.get()));
  RETURN_IF_ERROR(base::WriteFileAtomic(files.server_cert, leaf_pem + ca_pem, 0644));
  spdlog::info("made a server certificate {} for {}", files.server_cert, names);
  return OkStatus();
}

// Returns the existing server key when it can be reused, else null (a new one is made).
Result<PkeyPtr> ReusableServerKey(const TlsFiles& files) {
  if (!base::PathExists(files.server_key)) return PkeyPtr();
  Result<PkeyPtr> key = LoadKey(files.server_key);
  if (!key.ok()) {
    spdlog::warn("making a new server key: {}", std::string(key.status().message()));
    return PkeyPtr();
  }
  return key;
}

Status EnsureServerCert(const TlsFiles& files, const CaMaterial& ca,
                        const std::vector<std::string>& hosts) {
  ASSIGN_OR_RETURN(PkeyPtr server_key, ReusableServerKey(files));
  if (server_key && base::PathExists(files.server_cert)) {
    Result<X509Ptr> server = LoadCert(files.server_cert);
    std::string problem = server.ok() ? ServerCertProblem(server->get(), server_key.get(),
                                                          ca.cert.get(), ca.key.get(), hosts)
                                      : std::string(server.status().message());
    ERR_clear_error();
    if (problem.empty()) return OkStatus();
    spdlog::info("making the server certificate {} again: {}", files.server_cert, problem);
  }
  return MakeServerCert(files, ca, std::move(server_key), hosts);
}

}  // namespace

Result<TlsFiles> EnsureLocalTls(const std::string& dir, const std::vector<std::string>& hosts) {
  for (const std::string& host : hosts) RETURN_IF_ERROR(ValidateHost(host));
  RETURN_IF_ERROR(base::MakeDirs(dir, 0700));
  if (chmod(dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(
        fmt::format("cannot make {} private (chmod 0700): {}", dir, std::strerror(errno)));
  }
  TlsFiles files{.ca_cert = dir + "/ca.pem",
                 .ca_key = dir + "/ca.key",
                 .server_cert = dir + "/server.pem",
                 .server_key = dir + "/server.key"};
  const bool had_ca = base::PathExists(files.ca_cert);
  ASSIGN_OR_RETURN(CaMaterial ca, EnsureCa(files));
  if (!had_ca) {
    // A new CA invalidates any old server certificate.
    RETURN_IF_ERROR(MakeServerCert(files, ca, PkeyPtr(), AllHosts(hosts)));
  } else {
    RETURN_IF_ERROR(EnsureServerCert(files, ca, AllHosts(hosts)));
  }
  // Keys made by an older run or copied in keep their bytes but never stay readable by others.
  for (const std::string* key : {&files.ca_key, &files.server_key}) {
    if (chmod(key->c_str(), 0600) != 0) {
      return absl::FailedPreconditionError(
          fmt::format("cannot chmod 0600 {}: {}", *key, std::strerror(errno)));
    }
  }
  return files;
}

}  // namespace meridian::net
