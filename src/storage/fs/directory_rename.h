// Renaming a directory in an object store, where a directory is a prefix (plus, maybe, a
// marker object) and nothing renames a prefix. FsCore::Rename uses it for a non-empty
// directory; a mount runs CompleteUnfinishedRenames when it starts.
//
// How a rename of `from` to `to` runs (RunDirectoryRename):
//   1. PlanDirectoryRename lists the marker `from` and every object under `from/` (flat),
//      with their ETags; more than max_objects is EXDEV (mv(1) then copies and deletes by
//      itself, as before this existed).
//   2. A journal object naming `from`, `to` and those objects is written (If-None-Match).
//   3. Every object is copied to its new name with ObjectStore::Copy: server-side (Azure's
//      Copy Blob within the account, waited on until it has finished), so no byte passes
//      through this process; at most max_in_flight at once.
//   4. Only when every copy exists are the old names deleted, each conditional on the ETag
//      listed (a version written meanwhile is kept and logged, never lost), the marker last.
//   5. The journal is deleted.
// So at every moment each object is under its old name, its new name, or both: other mounts
// see the directory's files under one name or both, never under neither.
//
// Why the journal lives in the store (under kRenameJournalDir at the store's root, hidden
// by FsCore) and not in the local cache directory: an unfinished rename is a fact about the
// container, not about one node. A pod rescheduled onto another node comes up with an empty
// cache directory, and every other mount of the container sees the half-moved tree; any of
// them must be able to finish it. CompleteUnfinishedRenames rolls every journal forward:
// it copies the objects whose new name is still absent (never overwriting a new name, so a
// file written there since the crash is kept), deletes the old names conditional on the
// listed ETags, then the journal. Rolling forward is idempotent, so two mounts finishing one
// rename at once, or a mount finishing a rename its own node is still running, only repeat
// work (a copy whose source the other one already deleted is skipped).
//
// Thread safety: the functions keep no state; the store must be safe from many threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "storage/object_store.h"

namespace meridian::storage::fs {

// The folder (at the store's root) holding one journal object per rename in progress.
inline constexpr char kRenameJournalDir[] = ".meridian-renames";

struct DirectoryRenameOptions {
  int64_t max_objects = 10'000;  // --max-dir-rename-objects; more is EXDEV; 0 always EXDEV
  int max_in_flight = 16;        // copies (and deletes) running at once
};

struct RenamedObject {
  std::string relative_name;  // below the directory: "" is its marker, "a/b" is `from`/a/b
  std::string etag;           // as listed when the rename was planned
};

struct DirectoryRenamePlan {
  std::string from;  // directory paths, no trailing '/'
  std::string to;
  std::vector<RenamedObject> objects;  // the marker first when there is one
};

// Lists what renaming `from` to `to` moves. EXDEV (fs_errors.h) when it is more than
// `max_objects` objects; an empty plan when `from` holds nothing in the store.
Result<DirectoryRenamePlan> PlanDirectoryRename(ObjectStore& store, const std::string& from,
                                                const std::string& to, int64_t max_objects);

// Runs `plan` as the header comment says. Returns each moved object's new ETag by relative
// name. On an error the journal stays, so the next CompleteUnfinishedRenames finishes it;
// every object is then still under its old name or its new name.
Result<std::map<std::string, std::string>> RunDirectoryRename(
    ObjectStore& store, const DirectoryRenamePlan& plan, const DirectoryRenameOptions& options);

// Finishes every rename whose journal is in the store. Returns the number finished; the
// first error stops it (what is left is finished by a later call).
Result<int> CompleteUnfinishedRenames(ObjectStore& store, const DirectoryRenameOptions& options);

// Whether `path` is the journal folder or inside it (FsCore shows neither).
bool IsRenameJournalPath(std::string_view path);

}  // namespace meridian::storage::fs
