// PublicKey and SigningKey over OpenSSL 3 EVP keys (the only file of the component that
// touches key material directly).
//
// ES256 signatures travel in JOSE form (raw r||s, 32 bytes each) while OpenSSL speaks DER
// ECDSA-Sig-Value, so Sign and Verify convert between the two.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "base/hash.h"
#include "fmt/format.h"
#include "identity/jwt.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;

constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;  // verification cost grows with the modulus: bound it
constexpr size_t kEs256CoordinateBytes = 32;
constexpr size_t kMaxPemBytes = 64 * 1024;

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct BnFree {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* bld) const { OSSL_PARAM_BLD_free(bld); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* params) const { OSSL_PARAM_free(params); }
};

using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
// Shared between a SigningKey and its PublicKey; EVP_PKEY is safe for concurrent use in
// sign/verify operations once built.
using SharedPkey = std::shared_ptr<EVP_PKEY>;

SharedPkey Share(PkeyPtr key) { return SharedPkey(key.release(), PkeyFree()); }

// The first OpenSSL error as text, clearing the thread's queue so later calls start clean.
std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return buffer;
}

// Never prompt for a passphrase: an encrypted key is refused instead.
int NoPassphrase(char*, int, int, void*) { return -1; }

std::string BnBytes(const BIGNUM* bn, size_t pad_to = 0) {
  size_t size = pad_to > 0 ? pad_to : static_cast<size_t>(BN_num_bytes(bn));
  std::string out(size, '\0');
  if (pad_to > 0) {
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(size));
  } else {
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  }
  return out;
}

BnPtr BnParam(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) return nullptr;
  return BnPtr(bn);
}

Result<std::string> PublicDer(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int length = i2d_PUBKEY(key, &der);
  if (length <= 0) return absl::InternalError("encoding public key: " + OpenSslError());
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

// The algorithm a key is for: RSA of 2048..8192 bits -> RS256, EC on P-256 -> ES256.
Result<JwtAlg> AlgOfKey(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA")) {
    int bits = EVP_PKEY_get_bits(key);
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      return absl::InvalidArgumentError(fmt::format(
          "RSA key of {} bits: meridian accepts {} to {} bits", bits, kMinRsaBits, kMaxRsaBits));
    }
    return JwtAlg::kRS256;
  }
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {0};
    size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &length) != 1 ||
        std::string_view(group, length) != "prime256v1") {
      return absl::InvalidArgumentError("EC key is not on P-256: only ES256 is accepted");
    }
    return JwtAlg::kES256;
  }
  return absl::InvalidArgumentError("key type is neither RSA nor EC P-256");
}

Result<std::string> DerEcdsaToRaw(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return absl::InternalError("decoding ECDSA signature: " + OpenSslError());
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  return BnBytes(r, kEs256CoordinateBytes) + BnBytes(s, kEs256CoordinateBytes);
}

// "" when `raw` is not a 64-byte r||s.
std::string RawEcdsaToDer(std::string_view raw) {
  if (raw.size() != 2 * kEs256CoordinateBytes) return "";
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  BIGNUM* r = BN_bin2bn(bytes, kEs256CoordinateBytes, nullptr);
  BIGNUM* s = BN_bin2bn(bytes + kEs256CoordinateBytes, kEs256CoordinateBytes, nullptr);
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return "";
  }
  unsigned char* der = nullptr;
  int length = i2d_ECDSA_SIG(sig.get(), &der);
  if (length <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

class EvpPublicKey final : public PublicKey {
 public:
  static Result<std::shared_ptr<const PublicKey>> Create(SharedPkey key) {
    ASSIGN_OR_RETURN(JwtAlg alg, AlgOfKey(key.get()));
    ASSIGN_OR_RETURN(std::string der, PublicDer(key.get()));
    std::string digest = base::Sha256(der);
    auto out = std::make_shared<EvpPublicKey>(std::move(key), alg, Base64UrlEncode(digest));
    RETURN_IF_ERROR(out->BuildJwk());
    return std::shared_ptr<const PublicKey>(std::move(out));
  }

  EvpPublicKey(SharedPkey key, JwtAlg alg, std::string kid)
      : key_(std::move(key)), alg_(alg), kid_(std::move(kid)) {}

  JwtAlg alg() const override { return alg_; }
  const std::string& kid() const override { return kid_; }
  std::string JwkJson() const override { return jwk_json_; }

  std::string PublicPem() const override {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) {
      ERR_clear_error();
      return "";
    }
    char* data = nullptr;
    long length = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(length));
  }

  bool Verify(std::string_view signing_input, std::string_view signature) const override {
    std::string der_signature;
    if (alg_ == JwtAlg::kES256) {
      der_signature = RawEcdsaToDer(signature);
      if (der_signature.empty()) return false;
      signature = der_signature;
    }
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    bool ok = ctx &&
              EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1 &&
              EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                               signature.size(),
                               reinterpret_cast<const unsigned char*>(signing_input.data()),
                               signing_input.size()) == 1;
    if (!ok) ERR_clear_error();
    return ok;
  }

 private:
  Status BuildJwk() {
    json jwk = {{"kid", kid_}, {"use", "sig"}, {"alg", std::string(JwtAlgName(alg_))}};
    if (alg_ == JwtAlg::kRS256) {
      BnPtr n = BnParam(key_.get(), OSSL_PKEY_PARAM_RSA_N);
      BnPtr e = BnParam(key_.get(), OSSL_PKEY_PARAM_RSA_E);
      if (!n || !e) return absl::InternalError("reading RSA key: " + OpenSslError());
      jwk["kty"] = "RSA";
      jwk["n"] = Base64UrlEncode(BnBytes(n.get()));
      jwk["e"] = Base64UrlEncode(BnBytes(e.get()));
    } else {
      BnPtr x = BnParam(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X);
      BnPtr y = BnParam(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
      if (!x || !y) return absl::InternalError("reading EC key: " + OpenSslError());
      jwk["kty"] = "EC";
      jwk["crv"] = "P-256";
      jwk["x"] = Base64UrlEncode(BnBytes(x.get(), kEs256CoordinateBytes));
      jwk["y"] = Base64UrlEncode(BnBytes(y.get(), kEs256CoordinateBytes));
    }
    jwk_json_ = jwk.dump();
    return OkStatus();
  }

  // Constant after construction.
  SharedPkey key_;
  JwtAlg alg_;
  std::string kid_;
  std::string jwk_json_;
};

class EvpSigningKey final : public SigningKey {
 public:
  static Result<std::shared_ptr<const SigningKey>> Create(PkeyPtr key) {
    SharedPkey shared = Share(std::move(key));
    ASSIGN_OR_RETURN(std::shared_ptr<const PublicKey> public_key, EvpPublicKey::Create(shared));
    return std::shared_ptr<const SigningKey>(
        std::make_shared<EvpSigningKey>(std::move(shared), std::move(public_key)));
  }

  EvpSigningKey(SharedPkey key, std::shared_ptr<const PublicKey> public_key)
      : key_(std::move(key)), public_key_(std::move(public_key)) {}

  JwtAlg alg() const override { return public_key_->alg(); }
  const std::string& kid() const override { return public_key_->kid(); }
  std::shared_ptr<const PublicKey> public_key() const override { return public_key_; }

  std::string PrivatePem() const override {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr,
                                         nullptr) != 1) {
      ERR_clear_error();
      return "";
    }
    char* data = nullptr;
    long length = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(length));
  }

  Result<std::string> Sign(std::string_view signing_input) const override {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    size_t length = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &length,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) != 1) {
      return absl::InternalError("signing: " + OpenSslError());
    }
    std::string signature(length, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) != 1) {
      return absl::InternalError("signing: " + OpenSslError());
    }
    signature.resize(length);
    if (alg() == JwtAlg::kES256) return DerEcdsaToRaw(signature);
    return signature;
  }

 private:
  // Constant after construction.
  SharedPkey key_;
  std::shared_ptr<const PublicKey> public_key_;
};

Result<std::string> JwkMember(const json& jwk, const char* name) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) {
    return absl::InvalidArgumentError(fmt::format("JWK: \"{}\" is required, a string", name));
  }
  return Base64UrlDecode(it->get<std::string>());
}

Result<PkeyPtr> KeyFromParams(const char* type, OSSL_PARAM_BLD* builder) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(builder));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return absl::InvalidArgumentError(
        fmt::format("JWK: not a valid {} key: {}", type, OpenSslError()));
  }
  PkeyPtr out(key);
  // EVP_PKEY_fromdata takes the numbers as given: check that an EC point is on the curve.
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> check(
      EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    return absl::InvalidArgumentError(
        fmt::format("JWK: {} public key fails its check: {}", type, OpenSslError()));
  }
  return out;
}

Result<PkeyPtr> RsaFromJwk(const json& jwk) {
  ASSIGN_OR_RETURN(std::string n, JwkMember(jwk, "n"));
  ASSIGN_OR_RETURN(std::string e, JwkMember(jwk, "e"));
  BnPtr n_bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), n.size(), nullptr));
  BnPtr e_bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), e.size(), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> builder(OSSL_PARAM_BLD_new());
  if (!n_bn || !e_bn || !builder ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n_bn.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e_bn.get()) != 1) {
    return absl::InternalError("building RSA key: " + OpenSslError());
  }
  return KeyFromParams("RSA", builder.get());
}

Result<PkeyPtr> EcFromJwk(const json& jwk) {
  auto crv = jwk.find("crv");
  if (crv == jwk.end() || !crv->is_string() || *crv != "P-256") {
    return absl::InvalidArgumentError("JWK: \"crv\" must be \"P-256\"");
  }
  ASSIGN_OR_RETURN(std::string x, JwkMember(jwk, "x"));
  ASSIGN_OR_RETURN(std::string y, JwkMember(jwk, "y"));
  if (x.size() != kEs256CoordinateBytes || y.size() != kEs256CoordinateBytes) {
    return absl::InvalidArgumentError("JWK: \"x\" and \"y\" must be 32 bytes each");
  }
  std::string point = "\x04" + x + y;  // uncompressed SEC1 point
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> builder(OSSL_PARAM_BLD_new());
  if (!builder ||
      OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return absl::InternalError("building EC key: " + OpenSslError());
  }
  return KeyFromParams("EC", builder.get());
}

}  // namespace

Result<std::shared_ptr<const PublicKey>> PublicKey::FromJwk(std::string_view jwk_json) {
  json jwk = json::parse(jwk_json, nullptr, /*allow_exceptions=*/false);
  if (!jwk.is_object()) return absl::InvalidArgumentError("JWK: not a JSON object");
  auto kty = jwk.find("kty");
  if (kty == jwk.end() || !kty->is_string()) {
    return absl::InvalidArgumentError("JWK: \"kty\" is required, a string");
  }
  Result<PkeyPtr> key = absl::InvalidArgumentError(
      fmt::format("JWK: kty \"{}\" is not supported (RSA and EC only)", kty->get<std::string>()));
  if (*kty == "RSA") key = RsaFromJwk(jwk);
  if (*kty == "EC") key = EcFromJwk(jwk);
  if (!key.ok()) return key.status();
  ASSIGN_OR_RETURN(std::shared_ptr<const PublicKey> out,
                   EvpPublicKey::Create(Share(*std::move(key))));
  auto alg = jwk.find("alg");
  if (alg != jwk.end() && (!alg->is_string() || *alg != JwtAlgName(out->alg()))) {
    return absl::InvalidArgumentError(fmt::format(
        "JWK: \"alg\" does not match the key type (expected {})", JwtAlgName(out->alg())));
  }
  return out;
}

Result<std::shared_ptr<const PublicKey>> PublicKey::FromPem(std::string_view pem) {
  if (pem.size() > kMaxPemBytes) return absl::InvalidArgumentError("PEM: too large");
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return absl::InternalError("PEM: " + OpenSslError());
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) {
    ERR_clear_error();
    bio.reset(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    X509* certificate =
        bio ? PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr) : nullptr;
    if (certificate) {
      key.reset(X509_get_pubkey(certificate));
      X509_free(certificate);
    }
  }
  if (!key) {
    return absl::InvalidArgumentError("PEM: not a public key or certificate: " + OpenSslError());
  }
  return EvpPublicKey::Create(Share(std::move(key)));
}

Result<std::shared_ptr<const SigningKey>> SigningKey::Generate(JwtAlg alg) {
  PkeyPtr key(alg == JwtAlg::kRS256 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
  if (!key) return absl::InternalError("generating a key: " + OpenSslError());
  return EvpSigningKey::Create(std::move(key));
}

Result<std::shared_ptr<const SigningKey>> SigningKey::FromPem(std::string_view pem) {
  if (pem.size() > kMaxPemBytes) return absl::InvalidArgumentError("PEM: too large");
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr) : nullptr);
  if (!key) {
    return absl::InvalidArgumentError("PEM: not an unencrypted private key: " + OpenSslError());
  }
  return EvpSigningKey::Create(std::move(key));
}

}  // namespace meridian::identity
