#include "state/sqlite_connection.h"

#include <utility>

#include "fmt/format.h"

namespace meridian::state::sqlite {

Status SqliteError(sqlite3* db, int rc, std::string_view path, std::string_view what) {
  // The connection's message describes the latest failure; fall back to the code's text
  // when there is no connection (open failed) or the message belongs to another call.
  std::string detail =
      db != nullptr && sqlite3_extended_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string message = fmt::format("{}: {}: {}", path, what, detail);
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_TOOBIG:
      return absl::ResourceExhaustedError(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::InternalError(
          fmt::format("{} is corrupt or not a database: {}: {}", path, what, detail));
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

StatementUse::~StatementUse() {
  sqlite3_reset(statement_.get());
  sqlite3_clear_bindings(statement_.get());
}

StatementUse& StatementUse::BindText(int index, std::string_view text) {
  int rc = sqlite3_bind_text64(statement_.get(), index, text.data(), text.size(), SQLITE_STATIC,
                               SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

StatementUse& StatementUse::BindBlob(int index, std::string_view bytes) {
  // sqlite3_bind_blob64 binds NULL for a null pointer; an empty blob needs a non-null one.
  static const char kEmpty = 0;
  const char* data = bytes.empty() ? &kEmpty : bytes.data();
  int rc = sqlite3_bind_blob64(statement_.get(), index, data, bytes.size(), SQLITE_STATIC);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

StatementUse& StatementUse::BindInt64(int index, int64_t value) {
  int rc = sqlite3_bind_int64(statement_.get(), index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Result<bool> StatementUse::Step() {
  const Connection& connection = statement_.connection();
  if (bind_rc_ != SQLITE_OK) {
    return connection.Error(bind_rc_, fmt::format("binding {}", sqlite3_sql(statement_.get())));
  }
  int rc = sqlite3_step(statement_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return connection.Error(rc, sqlite3_sql(statement_.get()));
}

Status StatementUse::Run() {
  while (true) {
    ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return OkStatus();
  }
}

bool StatementUse::IsNull(int column) const {
  return sqlite3_column_type(statement_.get(), column) == SQLITE_NULL;
}

int64_t StatementUse::Int64(int column) const {
  return sqlite3_column_int64(statement_.get(), column);
}

std::string_view StatementUse::Bytes(int column) const {
  // sqlite3_column_blob before sqlite3_column_bytes, as SQLite documents, so the size
  // matches the pointer.
  const void* data = sqlite3_column_blob(statement_.get(), column);
  int size = sqlite3_column_bytes(statement_.get(), column);
  if (data == nullptr || size <= 0) return {};
  return std::string_view(static_cast<const char*>(data), static_cast<size_t>(size));
}

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path, int flags,
                                                     int busy_timeout_ms) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status status = SqliteError(db, rc, path, "opening the database");
    sqlite3_close_v2(db);  // a handle is returned even on failure; NULL is a no-op
    return status;
  }
  std::unique_ptr<Connection> connection(new Connection(db, path));
  sqlite3_extended_result_codes(db, 1);
  rc = sqlite3_busy_timeout(db, busy_timeout_ms);
  if (rc != SQLITE_OK) return connection->Error(rc, "setting the busy timeout");
  return connection;
}

Connection::~Connection() {
  statements_.clear();  // finalize before close so the handle really closes
  sqlite3_close_v2(db_);
}

Status Connection::Exec(std::string_view sql) {
  std::string text(sql);
  char* error = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  sqlite3_free(error);  // the same text is available from sqlite3_errmsg
  if (rc != SQLITE_OK) return Error(rc, text);
  return OkStatus();
}

Result<std::string> Connection::QueryText(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  if (rc != SQLITE_OK) return Error(rc, sql);
  Statement statement(raw, this);
  StatementUse use(statement);
  ASSIGN_OR_RETURN(bool row, use.Step());
  if (!row) return std::string();
  std::string value(use.Bytes(0));
  RETURN_IF_ERROR(use.Run());
  return value;
}

Result<Statement*> Connection::Cached(const std::string& sql) {
  auto found = statements_.find(sql);
  if (found != statements_.end()) return found->second.get();
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) return Error(rc, sql);
  auto statement = std::make_unique<Statement>(raw, this);
  Statement* result = statement.get();
  statements_.emplace(sql, std::move(statement));
  return result;
}

}  // namespace meridian::state::sqlite
