// `meridian identity ...` (applications, users, federated credentials, keys, role
// assignments, tokens) and `meridian audit ...`.
#include <cctype>
#include <chrono>
#include <ctime>
#include <iostream>

#include "base/files.h"
#include "cli/commands.h"
#include "fmt/format.h"
#include "net/http_types.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

constexpr char kAppsPath[] = "/api/v1/identity/apps";
constexpr char kAssignmentsPath[] = "/api/v1/identity/role-assignments";
constexpr int64_t kMaxPublicKeyBytes = 64 * 1024;

// Flags of the identity and audit commands (CLI11 binds them; one command runs per process).
struct IdentityFlags {
  std::string app;
  std::string name;
  std::string user;
  std::string issuer;
  std::string subject;
  std::string audience = "api://AzureADTokenExchange";
  std::string description;
  std::string public_key_file;
  std::string role;
  std::string principal;
  std::string scope;
  std::string assignment_id;
  std::string token_scope = kControlPlaneScope;
  std::string actor;
  std::string action;
  std::string since;
  int limit = 100;
};

IdentityFlags& Flags() {
  static IdentityFlags flags;
  return flags;
}

bool LooksLikeGuid(const std::string& text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

// An app id from an app id, a display name or a user subject (names must be unambiguous).
Result<std::string> ResolveAppId(ApiClient& client, const std::string& app) {
  if (app.empty()) return absl::InvalidArgumentError("--app is required (an app id or name)");
  if (LooksLikeGuid(app)) return app;
  ASSIGN_OR_RETURN(json list, client.Get(kAppsPath));
  std::vector<std::string> matches;
  for (const json& item : list.value("items", json::array())) {
    if (Str(item, "display_name") == app || Str(item, "user_subject") == app) {
      matches.push_back(Str(item, "app_id"));
    }
  }
  if (matches.empty()) {
    return absl::NotFoundError(
        fmt::format("no application or user named '{}' (see `meridian identity app list`)", app));
  }
  if (matches.size() > 1) {
    return absl::InvalidArgumentError(fmt::format("'{}' names {} applications; use an app id: {}",
                                                  app, matches.size(), fmt::join(matches, ", ")));
  }
  return matches.front();
}

std::string AppPath(const std::string& app_id) {
  return fmt::format("{}/{}", kAppsPath, net::PercentEncode(app_id));
}

std::string JoinStrings(const json& values) {
  std::vector<std::string> out;
  for (const json& value : values) out.push_back(value.is_string() ? value.get<std::string>() : "");
  return fmt::format("{}", fmt::join(out, ","));
}

std::string FormatTimeMs(int64_t time_ms);

// When a record was made: `created_at` as the server wrote it, else `created_ms` as UTC.
std::string Created(const json& item) {
  if (item.contains("created_ms") && item["created_ms"].is_number_integer()) {
    return FormatTimeMs(item["created_ms"].get<int64_t>());
  }
  return Str(item, "created_at");
}

void PrintApps(const json& list) {
  Table table{{"NAME", "APP ID", "KIND", "USER", "FEDERATED", "KEYS", "CREATED"}, {}};
  for (const json& app : list.value("items", json::array())) {
    table.rows.push_back({Str(app, "display_name"), Str(app, "app_id"), Str(app, "kind"),
                          Str(app, "user_subject"),
                          std::to_string(app.value("federated_credentials", json::array()).size()),
                          std::to_string(app.value("keys", json::array()).size()), Created(app)});
  }
  std::cout << table.Render();
}

void PrintFics(const json& list) {
  Table table{{"NAME", "ISSUER", "SUBJECT", "AUDIENCES", "DESCRIPTION"}, {}};
  for (const json& fic : list.value("items", json::array())) {
    table.rows.push_back({Str(fic, "name"), Str(fic, "issuer"), Str(fic, "subject"),
                          JoinStrings(fic.value("audiences", json::array())),
                          Str(fic, "description")});
  }
  std::cout << table.Render();
}

void PrintAssignments(const json& list) {
  Table table{{"ID", "ROLE", "PRINCIPAL", "SCOPE", "CREATED"}, {}};
  for (const json& item : list.value("items", json::array())) {
    table.rows.push_back({Str(item, "id"), Str(item, "role"), Str(item, "principal"),
                          Str(item, "scope"), Created(item)});
  }
  std::cout << table.Render();
}

std::string FormatTimeMs(int64_t time_ms) {
  std::time_t seconds = static_cast<std::time_t>(time_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

void PrintAudit(const json& list) {
  Table table{{"SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "RESULT", "SOURCE"}, {}};
  for (const json& entry : list.value("items", json::array())) {
    std::string time = entry.contains("time_ms") && entry["time_ms"].is_number_integer()
                           ? FormatTimeMs(entry["time_ms"].get<int64_t>())
                           : Str(entry, "time");
    table.rows.push_back({Str(entry, "seq"), time, Str(entry, "actor"), Str(entry, "action"),
                          Str(entry, "target"), Str(entry, "result"),
                          Str(entry, "source_address")});
  }
  std::cout << table.Render();
}

// --since: RFC 3339 and unix milliseconds pass through to the server; "15m", "2h", "7d" mean
// that long ago.
Result<std::string> SinceParameter(const std::string& since) {
  if (since.empty()) return since;
  char unit = since.back();
  std::string digits = since.substr(0, since.size() - 1);
  bool relative = (unit == 's' || unit == 'm' || unit == 'h' || unit == 'd') && !digits.empty() &&
                  digits.find_first_not_of("0123456789") == std::string::npos && digits.size() <= 9;
  if (!relative) return since;
  int64_t seconds_per_unit = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400;
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return std::to_string(now_ms - std::stoll(digits) * seconds_per_unit * 1000);
}

void AddAppCommands(CLI::App& identity, Context& context) {
  IdentityFlags& flags = Flags();
  CLI::App* app = identity.add_subcommand(
      "app", "Applications (scripts, services, workloads) and users that can obtain tokens");
  app->require_subcommand(1);

  CLI::App* create =
      app->add_subcommand("create",
                          "Register an application, or a user with --user\n\nExamples:\n"
                          "  meridian identity app create --name nightly-eval\n"
                          "  meridian identity app create --name Alice --user alice@example.com");
  create->add_option("--name", flags.name, "Display name")->required();
  create->add_option("--user", flags.user,
                     "Make it a user with this subject (e.g. an e-mail); its tokens carry it");
  AddOutputFlag(create, context);
  create->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat format) -> Status {
    json body = {{"display_name", flags.name},
                 {"kind", flags.user.empty() ? "application" : "user"}};
    if (!flags.user.empty()) body["user_subject"] = flags.user;
    ASSIGN_OR_RETURN(json created, client.Post(kAppsPath, body));
    Print(format, created, [](const json& value) {
      std::cout << fmt::format(
          "Created {} {} (app id {}).\n"
          "Next: register its public key and give it a role:\n"
          "  meridian identity key add --app {} --public-key KEY.pub.pem\n"
          "  meridian identity role assign --role Developer --principal {} --scope /\n",
          Str(value, "kind"), Str(value, "display_name"), Str(value, "app_id"),
          Str(value, "app_id"),
          Str(value, "user_subject").empty() ? Str(value, "app_id") : Str(value, "user_subject"));
    });
    return OkStatus();
  }));

  CLI::App* list = app->add_subcommand(
      "list", "List applications and users\n\nExample:\n  meridian identity app list -o json");
  AddOutputFlag(list, context);
  list->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json apps, client.Get(kAppsPath));
    Print(format, apps, PrintApps);
    return OkStatus();
  }));

  CLI::App* show =
      app->add_subcommand("show",
                          "Show one application: its federated credentials and keys\n\nExample:\n"
                          "  meridian identity app show nightly-eval");
  show->add_option("app", flags.app, "App id, display name or user subject")->required();
  AddOutputFlag(show, context);
  show->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(std::string app_id, ResolveAppId(client, flags.app));
    ASSIGN_OR_RETURN(json item, client.Get(AppPath(app_id)));
    Print(format == OutputFormat::kTable ? OutputFormat::kYaml : format, item, [](const json&) {});
    return OkStatus();
  }));

  CLI::App* remove = app->add_subcommand(
      "delete",
      "Delete an application (its credentials, keys and role assignments go with it)\n\n"
      "Example:\n  meridian identity app delete nightly-eval");
  remove->add_option("app", flags.app, "App id, display name or user subject")->required();
  remove->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat) -> Status {
    ASSIGN_OR_RETURN(std::string app_id, ResolveAppId(client, flags.app));
    RETURN_IF_ERROR(client.Send("DELETE", AppPath(app_id), "", "").status());
    std::cout << fmt::format("Deleted application {}\n", app_id);
    return OkStatus();
  }));
}

void AddFicCommands(CLI::App& identity, Context& context) {
  IdentityFlags& flags = Flags();
  CLI::App* fic = identity.add_subcommand(
      "fic",
      "Federated identity credentials: which external tokens (issuer + subject + audience) an "
      "application trusts, as in Microsoft Entra ID");
  fic->require_subcommand(1);

  CLI::App* create = fic->add_subcommand(
      "create",
      "Trust tokens from an issuer for a subject (Entra's rules: name 3-120 of [A-Za-z0-9_-],\n"
      "issuer and subject up to 600 characters matched exactly and case-sensitively, one\n"
      "audience, issuer+subject unique per app, at most 20 per app)\n\nExample (an AKS "
      "cluster's service account):\n"
      "  meridian identity fic create --app nightly-eval --name aks-prod \\\n"
      "    --issuer https://eastus.oic.prod-aks.azure.com/TENANT/ISSUER-GUID/ \\\n"
      "    --subject system:serviceaccount:ml:trainer");
  create->add_option("--app", flags.app, "App id or name")->required();
  create->add_option("--name", flags.name, "Credential name")->required();
  create->add_option("--issuer", flags.issuer, "Token issuer (iss), exactly")->required();
  create->add_option("--subject", flags.subject, "Token subject (sub), exactly")->required();
  create->add_option("--audience", flags.audience, "Token audience (aud)")->capture_default_str();
  create->add_option("--description", flags.description, "Free text");
  AddOutputFlag(create, context);
  create->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(std::string app_id, ResolveAppId(client, flags.app));
    json body = {{"name", flags.name},
                 {"issuer", flags.issuer},
                 {"subject", flags.subject},
                 {"audiences", json::array({flags.audience})},
                 {"description", flags.description}};
    ASSIGN_OR_RETURN(json created, client.Post(AppPath(app_id) + "/federated-credentials", body));
    Print(format, created, [&](const json& value) {
      std::cout << fmt::format(
          "Created federated credential {} on app {}: tokens from {} for {} (audience {}).\n",
          Str(value, "name"), app_id, Str(value, "issuer"), Str(value, "subject"),
          JoinStrings(value.value("audiences", json::array())));
    });
    return OkStatus();
  }));

  CLI::App* list = fic->add_subcommand("list",
                                       "List an application's federated credentials\n\nExample:\n"
                                       "  meridian identity fic list --app nightly-eval");
  list->add_option("--app", flags.app, "App id or name")->required();
  AddOutputFlag(list, context);
  list->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(std::string app_id, ResolveAppId(client, flags.app));
    ASSIGN_OR_RETURN(json items, client.Get(AppPath(app_id) + "/federated-credentials"));
    Print(format, items, PrintFics);
    return OkStatus();
  }));

  CLI::App* remove =
      fic->add_subcommand("delete",
                          "Delete a federated credential\n\nExample:\n"
                          "  meridian identity fic delete --app nightly-eval --name aks-prod");
  remove->add_option("--app", flags.app, "App id or name")->required();
  remove->add_option("--name", flags.name, "Credential name")->required();
  remove->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat) -> Status {
    ASSIGN_OR_RETURN(std::string app_id, ResolveAppId(client, flags.app));
    RETURN_IF_ERROR(client
                        .Send("DELETE",
                              fmt::format("{}/federated-credentials/{}", AppPath(app_id),
                                          net::PercentEncode(flags.name)),
                              "", "")
                        .status());
    std::cout << fmt::format("Deleted federated credential {} of app {}\n", flags.name, app_id);
    return OkStatus();
  }));
}

void AddKeyCommands(CLI::App& identity, Context& context) {
  IdentityFlags& flags = Flags();
  CLI::App* key = identity.add_subcommand(
      "key", "Public keys an application or user signs its token requests with (private_key_jwt)");
  key->require_subcommand(1);
  CLI::App* add = key->add_subcommand(
      "add",
      "Register a public key (PEM, RS256 or ES256; `meridian login --new-key` makes one)\n\n"
      "Example:\n  meridian identity key add --app alice@example.com --public-key alice.pub.pem");
  add->add_option("--app", flags.app, "App id, name or user subject")->required();
  add->add_option("--public-key", flags.public_key_file, "PEM public key or certificate file")
      ->required();
  AddOutputFlag(add, context);
  add->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(std::string pem, base::ReadFile(flags.public_key_file, kMaxPublicKeyBytes));
    if (pem.find("PRIVATE KEY") != std::string::npos) {
      return absl::InvalidArgumentError(fmt::format(
          "{} holds a private key: register the public key only (`openssl pkey -in {} -pubout`)",
          flags.public_key_file, flags.public_key_file));
    }
    ASSIGN_OR_RETURN(std::string app_id, ResolveAppId(client, flags.app));
    ASSIGN_OR_RETURN(json added, client.Post(AppPath(app_id) + "/keys", {{"public_pem", pem}}));
    Print(format, added, [&](const json& value) {
      std::cout << fmt::format(
          "Registered {} key {} for app {}.\nIts holder logs in with:\n"
          "  meridian login --client-id {} --key-file <the private key>\n",
          Str(value, "alg"), Str(value, "kid"), app_id, app_id);
    });
    return OkStatus();
  }));
}

// The assignment id for `revoke` given by --role/--principal/--scope instead of an id.
Result<std::string> FindAssignment(ApiClient& client, const IdentityFlags& flags) {
  if (flags.role.empty() || flags.principal.empty()) {
    return absl::InvalidArgumentError(
        "give an assignment id (see `meridian identity role list`), or --role and --principal "
        "(and --scope, default /)");
  }
  std::string scope = flags.scope.empty() ? "/" : flags.scope;
  ASSIGN_OR_RETURN(json list, client.Get(fmt::format("{}?principal={}", kAssignmentsPath,
                                                     net::PercentEncode(flags.principal))));
  for (const json& item : list.value("items", json::array())) {
    if (Str(item, "role") == flags.role && Str(item, "principal") == flags.principal &&
        Str(item, "scope") == scope) {
      return Str(item, "id");
    }
  }
  return absl::NotFoundError(
      fmt::format("{} holds no {} role at {}", flags.principal, flags.role, scope));
}

void AddRoleCommands(CLI::App& identity, Context& context) {
  IdentityFlags& flags = Flags();
  CLI::App* role = identity.add_subcommand(
      "role",
      "Role assignments: Admin, Developer (own jobs), Viewer or Operator at a scope:\n"
      "/ (everything), /clouds/C, or /clouds/C/resources/R");
  role->require_subcommand(1);
  auto role_option = [&flags](CLI::App* command) {
    return command->add_option("--role", flags.role, "Admin, Developer, Viewer or Operator")
        ->check(CLI::IsMember({"Admin", "Developer", "Viewer", "Operator"}));
  };

  CLI::App* assign = role->add_subcommand(
      "assign",
      "Give a principal a role at a scope\n\nExamples:\n"
      "  meridian identity role assign --role Developer --principal alice@example.com "
      "--scope /clouds/default\n"
      "  meridian identity role assign --role Viewer --principal <APP_ID> --scope /");
  role_option(assign)->required();
  assign->add_option("--principal", flags.principal, "App id or user subject")->required();
  assign->add_option("--scope", flags.scope, "/, /clouds/C or /clouds/C/resources/R")
      ->default_val("/");
  AddOutputFlag(assign, context);
  assign->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat format) -> Status {
    json body = {{"role", flags.role}, {"principal", flags.principal}, {"scope", flags.scope}};
    ASSIGN_OR_RETURN(json created, client.Post(kAssignmentsPath, body));
    Print(format, created, [](const json& value) {
      std::cout << fmt::format("Assigned {} to {} at {} (assignment {})\n", Str(value, "role"),
                               Str(value, "principal"), Str(value, "scope"), Str(value, "id"));
    });
    return OkStatus();
  }));

  CLI::App* list =
      role->add_subcommand("list",
                           "List role assignments\n\nExample:\n"
                           "  meridian identity role list --principal alice@example.com");
  list->add_option("--principal", flags.principal, "Only this principal");
  AddOutputFlag(list, context);
  list->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat format) -> Status {
    std::string path = kAssignmentsPath;
    if (!flags.principal.empty()) path += "?principal=" + net::PercentEncode(flags.principal);
    ASSIGN_OR_RETURN(json items, client.Get(path));
    Print(format, items, PrintAssignments);
    return OkStatus();
  }));

  CLI::App* revoke = role->add_subcommand(
      "revoke",
      "Remove a role assignment, by id or by what it grants\n\nExamples:\n"
      "  meridian identity role revoke 7f0c...\n"
      "  meridian identity role revoke --role Viewer --principal alice@example.com --scope /");
  revoke->add_option("id", flags.assignment_id, "Assignment id");
  role_option(revoke);
  revoke->add_option("--principal", flags.principal, "App id or user subject");
  revoke->add_option("--scope", flags.scope, "Scope (default /)");
  revoke->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat) -> Status {
    std::string id = flags.assignment_id;
    if (id.empty()) {
      ASSIGN_OR_RETURN(id, FindAssignment(client, flags));
    }
    RETURN_IF_ERROR(
        client
            .Send("DELETE", fmt::format("{}/{}", kAssignmentsPath, net::PercentEncode(id)), "", "")
            .status());
    std::cout << fmt::format("Revoked role assignment {}\n", id);
    return OkStatus();
  }));
}

void AddTokenCommands(CLI::App& identity, Context& context) {
  IdentityFlags& flags = Flags();
  CLI::App* token = identity.add_subcommand(
      "token",
      "Print an access token for the configured identity (like `az account get-access-token`)\n\n"
      "Examples:\n"
      "  curl -H \"Authorization: Bearer $(meridian identity token)\" ...\n"
      "  meridian identity token -o json   # with expires_on (unix seconds)");
  token->add_option("--scope", flags.token_scope, "Scope to ask for")->capture_default_str();
  AddOutputFlag(token, context);
  token->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(identity::credentials::AccessToken access, client.GetToken(flags.token_scope));
    ASSIGN_OR_RETURN(Discovery discovery, client.Discover());
    json value = {
        {"accessToken", access.token},
        {"expiresOn", FormatTimeMs(access.expires_on_unix_s * 1000)},
        {"expires_on", access.expires_on_unix_s},
        {"tenant", discovery.tenant_id.empty() ? client.config().tenant_id : discovery.tenant_id},
        {"clientId", client.config().client_id},
        {"tokenType", "Bearer"}};
    Print(format, value, [](const json& item) { std::cout << Str(item, "accessToken") << "\n"; });
    return OkStatus();
  }));

  CLI::App* tenant = identity.add_subcommand(
      "tenant",
      "Show the control plane's tenant, authority and token endpoint\n\nExample:\n"
      "  meridian identity tenant -o json");
  AddOutputFlag(tenant, context);
  tenant->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json value, client.Get("/api/v1/identity/tenant"));
    Print(format == OutputFormat::kTable ? OutputFormat::kYaml : format, value, [](const json&) {});
    return OkStatus();
  }));
}

void PrintSigningKeys(const json& list) {
  Table table{{"KID", "ALG", "STATE", "ACTIVE FROM", "RETIRE AT"}, {}};
  for (const json& key : list.value("items", json::array())) {
    table.rows.push_back({Str(key, "kid"), Str(key, "alg"), Str(key, "state"),
                          Str(key, "active_from"), Str(key, "retire_at")});
  }
  std::cout << table.Render();
}

void AddSigningKeyCommands(CLI::App& identity, Context& context) {
  CLI::App* signing = identity.add_subcommand(
      "signing-key",
      "The token service's own signing keys (published in the JWKS; rotated with overlap)");
  signing->require_subcommand(1);
  CLI::App* list =
      signing->add_subcommand("list",
                              "List signing keys: pending, active, retiring\n\nExample:\n"
                              "  meridian identity signing-key list");
  AddOutputFlag(list, context);
  list->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json keys, client.Get("/api/v1/identity/keys"));
    Print(format, keys, PrintSigningKeys);
    return OkStatus();
  }));
  CLI::App* rotate = signing->add_subcommand(
      "rotate",
      "Rotate now: a new key is published before it signs; the old one stays published until\n"
      "every token it signed has expired\n\nExample:\n  meridian identity signing-key rotate");
  AddOutputFlag(rotate, context);
  rotate->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json keys, client.Post("/api/v1/identity/keys/rotate", json::object()));
    Print(format, keys, PrintSigningKeys);
    return OkStatus();
  }));
}

}  // namespace

void AddIdentityCommands(CLI::App& app, Context& context) {
  CLI::App* identity = app.add_subcommand(
      "identity",
      "Workload identity: applications, users, federated credentials, keys, roles and tokens\n"
      "(the Microsoft Entra ID model; see docs/identity.md)");
  identity->require_subcommand(1);
  AddAppCommands(*identity, context);
  AddFicCommands(*identity, context);
  AddKeyCommands(*identity, context);
  AddRoleCommands(*identity, context);
  AddTokenCommands(*identity, context);
  AddSigningKeyCommands(*identity, context);
}

void AddAuditCommands(CLI::App& app, Context& context) {
  IdentityFlags& flags = Flags();
  CLI::App* audit = app.add_subcommand(
      "audit", "The hash-chained audit log of every change and every token issued or refused");
  audit->require_subcommand(1);

  CLI::App* list = audit->add_subcommand(
      "list",
      "List audit entries, newest first\n\nExamples:\n"
      "  meridian audit list --since 1h\n"
      "  meridian audit list --action token. --limit 20   # a prefix ending in '.'\n"
      "  meridian audit list --actor alice@example.com -o json");
  list->add_option("--actor", flags.actor, "Only this actor (app id or user subject)");
  list->add_option("--action", flags.action, "Only this action, e.g. job.submit, or token.");
  list->add_option("--since", flags.since, "RFC 3339 time, unix ms, or 15m / 2h / 7d ago");
  list->add_option("--limit", flags.limit, "At most this many (1-10000)")
      ->check(CLI::Range(1, 10'000))
      ->capture_default_str();
  AddOutputFlag(list, context);
  list->callback(WithClient(context, [&flags](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(std::string since, SinceParameter(flags.since));
    std::string path = fmt::format("/api/v1/audit?limit={}", flags.limit);
    if (!flags.actor.empty()) path += "&actor=" + net::PercentEncode(flags.actor);
    if (!flags.action.empty()) path += "&action=" + net::PercentEncode(flags.action);
    if (!since.empty()) path += "&since=" + net::PercentEncode(since);
    ASSIGN_OR_RETURN(json entries, client.Get(path));
    Print(format, entries, PrintAudit);
    return OkStatus();
  }));

  CLI::App* verify = audit->add_subcommand(
      "verify",
      "Check the hash chain: exits 0 when intact, else names the first edited or missing\n"
      "entry and exits 4\n\nExample:\n  meridian audit verify");
  AddOutputFlag(verify, context);
  verify->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    Result<json> result = client.Get("/api/v1/audit/verify");
    if (!result.ok()) {
      if (result.status().code() != absl::StatusCode::kFailedPrecondition) return result.status();
      return absl::FailedPreconditionError(
          fmt::format("audit log verification FAILED: {}", result.status().message()));
    }
    Print(format, *result, [](const json& value) {
      std::cout << fmt::format("Audit log intact: {} entries, hash chain verified.\n",
                               Str(value, "entries"));
    });
    return OkStatus();
  }));
}

}  // namespace meridian::cli
