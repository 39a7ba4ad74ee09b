// Thin RAII wrappers over the SQLite C API, used only by the SQLite state store (internal to
// src/state: no other component includes this header).
//
// Every failure becomes a Status that names the database file and carries SQLite's own
// error text. Codes follow who must act:
//   SQLITE_FULL, SQLITE_TOOBIG        -> kResourceExhausted (disk full, value too large)
//   SQLITE_BUSY, SQLITE_LOCKED        -> kUnavailable (another writer; retry)
//   SQLITE_CORRUPT, SQLITE_NOTADB     -> kInternal ("<file> is corrupt or not a database")
//   SQLITE_CANTOPEN, _PERM, _READONLY -> kFailedPrecondition (fix the file or its directory)
//   anything else                     -> kInternal
//
// Thread safety: a Connection and its statements are used by one thread at a time (the
// connections are opened with SQLITE_OPEN_NOMUTEX); the owner serialises access.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/status.h"

namespace meridian::state::sqlite {

// Maps `rc` (a SQLite result code) to a Status; `what` names the operation being done.
Status SqliteError(sqlite3* db, int rc, std::string_view path, std::string_view what);

class Connection;

// A prepared statement owned by its Connection. Use it through a StatementUse.
class Statement {
 public:
  Statement(sqlite3_stmt* stmt, const Connection* connection)
      : stmt_(stmt), connection_(connection) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  sqlite3_stmt* get() const { return stmt_; }
  const Connection& connection() const { return *connection_; }

 private:
  sqlite3_stmt* const stmt_;
  const Connection* const connection_;
};

// One execution of a Statement: binds parameters, steps, reads columns, and resets the
// statement when it goes out of scope (which also ends a read connection's implicit read
// transaction, so a reader never pins an old WAL snapshot).
// Bound text and blobs are not copied: they must outlive the StatementUse.
class StatementUse {
 public:
  explicit StatementUse(Statement& statement) : statement_(statement) {}
  ~StatementUse();
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;

  // Parameters are numbered from 1. A bind failure is reported by the next Step/Run.
  StatementUse& BindText(int index, std::string_view text);
  StatementUse& BindBlob(int index, std::string_view bytes);
  StatementUse& BindInt64(int index, int64_t value);

  // true: a row is ready; false: the statement is done.
  Result<bool> Step();
  // Steps until done, ignoring rows (for INSERT/UPDATE/DELETE).
  Status Run();

  // Columns are numbered from 0.
  bool IsNull(int column) const;
  int64_t Int64(int column) const;
  // Text or blob bytes of the current row; valid until the next Step or the end of the use.
  std::string_view Bytes(int column) const;

 private:
  Statement& statement_;
  int bind_rc_ = SQLITE_OK;
};

// An open database connection with a cache of prepared statements.
class Connection {
 public:
  // Opens `path`; `flags` are sqlite3_open_v2 flags (SQLITE_OPEN_NOMUTEX is added).
  // Extended result codes are enabled and the busy timeout is set to `busy_timeout_ms`.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, int flags,
                                                  int busy_timeout_ms);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }
  const std::string& path() const { return path_; }

  // Runs one or more SQL statements that return no rows the caller needs (DDL, pragmas,
  // BEGIN/COMMIT).
  Status Exec(std::string_view sql);
  // Runs a statement returning one text value (e.g. "PRAGMA journal_mode=WAL").
  Result<std::string> QueryText(std::string_view sql);

  // Prepares `sql` once and keeps it for the connection's life.
  Result<Statement*> Cached(const std::string& sql);

  Status Error(int rc, std::string_view what) const { return SqliteError(db_, rc, path_, what); }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* const db_;
  const std::string path_;
  std::unordered_map<std::string, std::unique_ptr<Statement>> statements_;
};

}  // namespace meridian::state::sqlite
