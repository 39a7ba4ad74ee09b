// LocalStore: an ObjectStore over a local directory, for `meridian up` and tests. It keeps
// the ObjectStore contract (object_store.h) and passes the same contract suite as Azure.
//
// Layout under the root directory:
//   objects/     one file per object. Each '/'-separated name component becomes a
//                directory "<component>~d" and the last one a file "<component>~o", with
//                every byte outside [A-Za-z0-9._-] written as %XX; so "a" and "a/b" can both
//                exist, and a directory walk yields names in byte order.
//   .staging/    temp files and uncommitted blocks (blocks/<sha256 of name>/<hex of id>).
//   .lock        flock(2)ed around every change to objects/, so processes sharing a root
//                (server, operators, a mount) see conditional writes apply one at a time.
// An object file starts with a small header ("meridian-object 1\n", the header length in
// decimal and "\n", then JSON with the etag, last-modified time, Content-MD5 and metadata),
// followed by the object's bytes. Keeping metadata in the same file as the data makes a
// write one rename: readers see the old object or the new one, metadata included.
//
// Limits beyond the contract: an encoded name component must fit a 255-byte file name
// (kInvalidArgument otherwise). Uncommitted blocks of abandoned uploads stay in .staging
// until the next commit of that name, and temp files of a writer that crashed stay in
// .staging/tmp; neither is ever visible as an object.
//
// Thread safety: safe from many threads and many processes sharing one root.
#pragma once

#include <memory>
#include <string>

#include "base/clock.h"
#include "storage/object_store.h"

namespace meridian::storage {

struct LocalStoreOptions {
  const base::Clock* clock = nullptr;  // not owned; nullptr: the system clock
  bool fsync = true;                   // fsync each object before it is renamed into place
};

class LocalStore final : public ObjectStore {
 public:
  // Creates the layout under `root` when missing.
  static Result<std::unique_ptr<LocalStore>> Open(const std::string& root,
                                                  LocalStoreOptions options = {});

  Result<ObjectInfo> Head(const std::string& name) override;
  Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                               const Condition& condition) override;
  Result<std::string> Put(const std::string& name, std::string_view data, const Metadata& metadata,
                          const Condition& condition) override;
  Status StageBlock(const std::string& name, const std::string& block_id,
                    std::string_view data) override;
  Result<std::string> CommitBlocks(const std::string& name,
                                   const std::vector<std::string>& block_ids,
                                   const Metadata& metadata, const Condition& condition) override;
  Result<ListPage> List(const ListOptions& options) override;
  Result<std::string> SetMetadata(const std::string& name, const Metadata& metadata,
                                  const Condition& condition) override;
  Status Delete(const std::string& name, const Condition& condition) override;
  Result<std::string> Copy(const std::string& source, const std::string& destination) override;

 private:
  class TempFile;  // a file being written in .staging

  LocalStore(std::string root, LocalStoreOptions options);

  Result<std::string> ObjectPath(const std::string& name) const;
  std::string BlockDir(const std::string& name) const;
  Result<TempFile> NewObjectFile(const Metadata& metadata, std::optional<std::string> md5,
                                 std::string* etag);
  // Under the store lock: checks `condition`, then renames `temp` over `name`.
  Status Publish(const std::string& name, TempFile& temp, const Condition& condition);
  Status RemoveEmptyParents(const std::string& path) const;

  // Constant after construction.
  const std::string root_;
  const std::string objects_dir_;
  const std::string tmp_dir_;
  const std::string blocks_dir_;
  const std::string lock_path_;
  const LocalStoreOptions options_;
};

}  // namespace meridian::storage
