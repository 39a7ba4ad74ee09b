// `meridian login` and `meridian logout`: who the CLI is, kept in <home>/config.yaml as a
// client id and the path of a 0600 private key (private_key_jwt). No secret is sent or
// stored anywhere else: the control plane holds only the public key.
#include <filesystem>
#include <iostream>

#include "base/files.h"
#include "base/home.h"
#include "cli/commands.h"
#include "fmt/format.h"
#include "identity/credentials/private_key_jwt_credential.h"
#include "identity/jwt.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

struct LoginFlags {
  std::string client_id;
  std::string key_file;
  bool new_key = false;
};

LoginFlags& Flags() {
  static LoginFlags flags;
  return flags;
}

std::string Absolute(const std::string& path) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(path, error);
  return error ? path : absolute.lexically_normal().string();
}

// Makes an ES256 key pair: the private key 0600 (directory 0700), the public key beside it.
Status NewKey(const Context& context, const std::string& key_file_flag, OutputFormat format) {
  std::string home = base::ResolveHome(context.home);
  std::string key_file =
      key_file_flag.empty() ? home + "/credentials/login.pem" : Absolute(key_file_flag);
  if (base::PathExists(key_file)) {
    return absl::AlreadyExistsError(fmt::format(
        "{} already exists; log in with it (`meridian login --client-id APP_ID --key-file {}`) "
        "or name another file with --key-file",
        key_file, key_file));
  }
  std::string public_file = key_file;
  if (public_file.size() > 4 && public_file.substr(public_file.size() - 4) == ".pem") {
    public_file.resize(public_file.size() - 4);
  }
  public_file += ".pub.pem";
  RETURN_IF_ERROR(base::MakeDirs(std::filesystem::path(key_file).parent_path().string(), 0700));
  ASSIGN_OR_RETURN(std::shared_ptr<const identity::SigningKey> key,
                   identity::SigningKey::Generate(identity::JwtAlg::kES256));
  RETURN_IF_ERROR(base::WriteFileAtomic(key_file, key->PrivatePem(), 0600));
  std::string public_pem = key->public_key()->PublicPem();
  RETURN_IF_ERROR(base::WriteFileAtomic(public_file, public_pem, 0644));
  json value = {{"key_file", key_file},
                {"public_key_file", public_file},
                {"public_pem", public_pem},
                {"kid", key->kid()},
                {"alg", "ES256"}};
  Print(format, value, [&](const json&) {
    std::cout << fmt::format(
        "Created an ES256 key pair:\n"
        "  private key  {} (0600: it never leaves this machine)\n"
        "  public key   {} (kid {})\n\n"
        "{}\n"
        "Send the public key to an admin, who registers you and gives you a role:\n"
        "  meridian identity app create --name \"Your Name\" --user you@example.com\n"
        "  meridian identity key add --app you@example.com --public-key {}\n"
        "  meridian identity role assign --role Developer --principal you@example.com --scope /\n"
        "Then log in with the app id they give you:\n"
        "  meridian login --client-id APP_ID --key-file {}\n",
        key_file, public_file, key->kid(), public_pem, Absolute(public_file), key_file);
  });
  return OkStatus();
}

// The claims of an access token the token service just issued (trusted: it came over TLS
// from the server we asked).
json TokenClaims(const std::string& token) {
  Result<identity::ParsedJwt> parsed = identity::ParseJwt(token);
  if (!parsed.ok()) return json::object();
  json claims = json::parse(parsed->claims_json, nullptr, false);
  return claims.is_object() ? claims : json::object();
}

Status Login(const Context& context, const LoginFlags& flags, OutputFormat format) {
  if (flags.client_id.empty() || flags.key_file.empty()) {
    return absl::InvalidArgumentError(
        "give --client-id APP_ID and --key-file KEY.pem (or --new-key to make a key for an "
        "admin to register)");
  }
  std::string key_file = Absolute(flags.key_file);
  RETURN_IF_ERROR(identity::credentials::CheckPrivateFileMode(key_file));
  ASSIGN_OR_RETURN(ClientConfig config,
                   ResolveClientConfig(context.home, context.server, context.ca_file));
  config.client_id = flags.client_id;
  config.key_file = key_file;
  config.federated_token_file.clear();
  config.tenant_id.clear();
  config.authority.clear();
  config.identity_source = "--client-id/--key-file";
  ApiClient client(config);
  ASSIGN_OR_RETURN(Discovery discovery, client.Discover());
  if (!discovery.has_identity) {
    return absl::FailedPreconditionError(fmt::format(
        "the control plane at {} has no token service: it admits requests without logging in",
        config.server_url));
  }
  // Proves the key is registered for this client id before anything is saved.
  ASSIGN_OR_RETURN(identity::credentials::AccessToken token, client.GetToken(kControlPlaneScope));
  std::vector<std::pair<std::string, std::string>> updates = {{"client_id", flags.client_id},
                                                              {"key_file", key_file}};
  if (!context.server.empty()) updates.push_back({"server", config.server_url});
  if (!context.ca_file.empty()) updates.push_back({"ca_file", Absolute(context.ca_file)});
  RETURN_IF_ERROR(UpdateConfigFile(config.home, updates));
  json claims = TokenClaims(token.token);
  json value = {{"server", config.server_url},
                {"tenant_id", discovery.tenant_id},
                {"client_id", flags.client_id},
                {"subject", claims.value("sub", std::string())},
                {"roles", claims.value("roles", json::array())},
                {"key_file", key_file},
                {"config_file", config.home + "/config.yaml"}};
  Print(format, value, [](const json& item) {
    std::vector<std::string> roles;
    for (const json& role : item["roles"]) roles.push_back(role.get<std::string>());
    std::cout << fmt::format(
        "Logged in to {} as {} (client id {}, tenant {}).\nRoles: {}\nSaved in {}.\n",
        Str(item, "server"), Str(item, "subject"), Str(item, "client_id"), Str(item, "tenant_id"),
        roles.empty() ? "none yet (ask an admin: meridian identity role assign ...)"
                      : fmt::format("{}", fmt::join(roles, ", ")),
        Str(item, "config_file"));
  });
  return OkStatus();
}

}  // namespace

void AddLoginCommands(CLI::App& app, Context& context) {
  LoginFlags& flags = Flags();
  CLI::App* login = app.add_subcommand(
      "login",
      "Sign the CLI in with a private key registered for an application or user\n"
      "(private_key_jwt: the key stays on this machine, 0600; the server knows only the public\n"
      "key). Checks the key by obtaining a token, then saves the client id and key path in\n"
      "<home>/config.yaml.\n\n"
      "Examples:\n"
      "  meridian login --new-key          # make a key pair; an admin registers the public key\n"
      "  meridian login --client-id 3f2c...-...  --key-file ~/.meridian/credentials/login.pem\n"
      "  meridian login --client-id APP_ID --key-file key.pem --server https://cp.example:8443 "
      "--ca-file ca.pem");
  login->add_option("--client-id", flags.client_id, "App id of your application or user");
  login->add_option("--key-file", flags.key_file,
                    "PEM private key (mode 0600); with --new-key, where to create it");
  login->add_flag("--new-key", flags.new_key,
                  "Create an ES256 key pair (default <home>/credentials/login.pem) and print the "
                  "public key for an admin to register");
  AddOutputFlag(login, context);
  login->callback([&context, &flags] {
    Result<OutputFormat> format = context.Format();
    Status status = !format.ok()    ? format.status()
                    : flags.new_key ? NewKey(context, flags.key_file, *format)
                                    : Login(context, flags, *format);
    if (!status.ok()) context.exit_code = ReportError(status);
  });

  CLI::App* logout = app.add_subcommand(
      "logout",
      "Forget the login in <home>/config.yaml (the key file is kept)\n\nExample:\n"
      "  meridian logout");
  logout->callback([&context] {
    std::string home = base::ResolveHome(context.home);
    Status status = UpdateConfigFile(home, {{"client_id", ""}, {"key_file", ""}});
    if (!status.ok()) {
      context.exit_code = ReportError(status);
      return;
    }
    std::cout << fmt::format("Logged out: {}/config.yaml names no client id.\n", home);
  });
}

}  // namespace meridian::cli
