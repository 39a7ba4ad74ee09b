#include "storage/fs/directory_rename.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <mutex>
#include <thread>

#include "base/ids.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "storage/fs/fs_errors.h"

namespace meridian::storage::fs {
namespace {

constexpr int kJournalVersion = 1;

std::string NameIn(const std::string& directory, const std::string& relative) {
  return relative.empty() ? directory : directory + "/" + relative;
}

// Runs work(0) .. work(count - 1) on up to `max_in_flight` threads. After the first error no
// further item starts; that error is returned.
Status ForEachInParallel(size_t count, int max_in_flight,
                         const std::function<Status(size_t)>& work) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first_error;  // guarded by mu
  std::atomic<bool> failed{false};
  auto worker = [&] {
    while (!failed.load()) {
      size_t index = next.fetch_add(1);
      if (index >= count) return;
      Status status = work(index);
      if (!status.ok()) {
        std::lock_guard lock(mu);
        if (first_error.ok()) first_error = status;
        failed = true;
      }
    }
  };
  const size_t threads = std::min<size_t>(count, static_cast<size_t>(std::max(max_in_flight, 1)));
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (size_t i = 0; i + 1 < threads; ++i) workers.emplace_back(worker);
  if (threads > 0) worker();  // this thread is one of them
  for (std::thread& thread : workers) thread.join();
  return first_error;
}

Result<std::string> EncodeJournal(const DirectoryRenamePlan& plan) {
  try {
    nlohmann::json objects = nlohmann::json::array();
    for (const RenamedObject& object : plan.objects) {
      objects.push_back({object.relative_name, object.etag});
    }
    nlohmann::json journal = {
        {"version", kJournalVersion}, {"from", plan.from}, {"to", plan.to}, {"objects", objects}};
    return journal.dump();
  } catch (const std::exception& error) {  // a name that is not UTF-8
    return absl::InvalidArgumentError(
        fmt::format("cannot write the journal for renaming '{}': {}", plan.from, error.what()));
  }
}

Result<DirectoryRenamePlan> DecodeJournal(const std::string& name, const std::string& text) {
  try {
    nlohmann::json journal = nlohmann::json::parse(text);
    if (journal.at("version").get<int>() != kJournalVersion) {
      return absl::FailedPreconditionError(
          fmt::format("rename journal '{}' has version {}, this build reads {}", name,
                      journal.at("version").dump(), kJournalVersion));
    }
    DirectoryRenamePlan plan;
    plan.from = journal.at("from").get<std::string>();
    plan.to = journal.at("to").get<std::string>();
    for (const nlohmann::json& object : journal.at("objects")) {
      plan.objects.push_back({object.at(0).get<std::string>(), object.at(1).get<std::string>()});
    }
    if (plan.from.empty() || plan.to.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("rename journal '{}' names no directory", name));
    }
    return plan;
  } catch (const std::exception& error) {
    return absl::InvalidArgumentError(
        fmt::format("rename journal '{}' cannot be read: {}", name, error.what()));
  }
}

// Step 4: deletes the old names, conditional on the listed ETags, the marker last.
Status DeleteSources(ObjectStore& store, const DirectoryRenamePlan& plan, int max_in_flight) {
  auto remove = [&](const RenamedObject& object) -> Status {
    const std::string name = NameIn(plan.from, object.relative_name);
    Status deleted = store.Delete(name, Condition::IfMatch(object.etag));
    if (deleted.ok() || absl::IsNotFound(deleted)) return OkStatus();
    if (absl::IsFailedPrecondition(deleted)) {
      spdlog::warn("rename of '{}' to '{}': '{}' was rewritten meanwhile and is kept", plan.from,
                   plan.to, name);
      return OkStatus();
    }
    return deleted;
  };
  const bool has_marker = !plan.objects.empty() && plan.objects.front().relative_name.empty();
  const size_t first_child = has_marker ? 1 : 0;
  RETURN_IF_ERROR(
      ForEachInParallel(plan.objects.size() - first_child, max_in_flight,
                        [&](size_t i) { return remove(plan.objects[first_child + i]); }));
  if (has_marker) RETURN_IF_ERROR(remove(plan.objects.front()));
  return OkStatus();
}

Status DeleteJournal(ObjectStore& store, const std::string& journal) {
  Status deleted = store.Delete(journal, Condition::None());
  return absl::IsNotFound(deleted) ? OkStatus() : deleted;
}

// Rolls the rename `journal` describes forward (see the header).
Status Complete(ObjectStore& store, const std::string& journal,
                const DirectoryRenameOptions& options) {
  Result<std::string> text = store.GetRange(journal, 0, -1, Condition::None());
  if (absl::IsNotFound(text.status())) return OkStatus();  // finished by someone else
  RETURN_IF_ERROR(text.status());
  ASSIGN_OR_RETURN(DirectoryRenamePlan plan, DecodeJournal(journal, *text));
  spdlog::warn("finishing the interrupted rename of '{}' to '{}' ({} objects)", plan.from, plan.to,
               plan.objects.size());
  RETURN_IF_ERROR(ForEachInParallel(plan.objects.size(), options.max_in_flight, [&](size_t i) {
    const RenamedObject& object = plan.objects[i];
    const std::string destination = NameIn(plan.to, object.relative_name);
    Result<ObjectInfo> there = store.Head(destination);
    if (there.ok()) return OkStatus();  // copied before the interruption, or written since
    if (!absl::IsNotFound(there.status())) return there.status();
    Result<std::string> copied = store.Copy(NameIn(plan.from, object.relative_name), destination);
    return absl::IsNotFound(copied.status()) ? OkStatus() : copied.status();
  }));
  RETURN_IF_ERROR(DeleteSources(store, plan, options.max_in_flight));
  return DeleteJournal(store, journal);
}

}  // namespace

bool IsRenameJournalPath(std::string_view path) {
  constexpr std::string_view kDir = kRenameJournalDir;
  return path.starts_with(kDir) && (path.size() == kDir.size() || path[kDir.size()] == '/');
}

Result<DirectoryRenamePlan> PlanDirectoryRename(ObjectStore& store, const std::string& from,
                                                const std::string& to, int64_t max_objects) {
  auto too_many = [&] {
    return FsError(EXDEV, fmt::format("'{}' holds more than {} objects "
                                      "(--max-dir-rename-objects): not renamed in the store",
                                      from, max_objects));
  };
  DirectoryRenamePlan plan{from, to, {}};
  Result<ObjectInfo> marker = store.Head(from);
  if (marker.ok()) {
    plan.objects.push_back({"", marker->etag});
  } else if (!absl::IsNotFound(marker.status())) {
    return marker.status();
  }
  ListOptions list;
  list.prefix = from + "/";
  list.max_results = kMaxListResults;
  do {
    ASSIGN_OR_RETURN(ListPage page, store.List(list));
    for (ObjectInfo& object : page.objects) {
      plan.objects.push_back({object.name.substr(list.prefix.size()), std::move(object.etag)});
    }
    if (static_cast<int64_t>(plan.objects.size()) > max_objects) return too_many();
    list.marker = page.next_marker;
  } while (!list.marker.empty());
  return plan;
}

Result<std::map<std::string, std::string>> RunDirectoryRename(
    ObjectStore& store, const DirectoryRenamePlan& plan, const DirectoryRenameOptions& options) {
  const std::string journal = fmt::format("{}/{}", kRenameJournalDir, base::NewId("rename"));
  ASSIGN_OR_RETURN(std::string encoded, EncodeJournal(plan));
  RETURN_IF_ERROR(store.Put(journal, encoded, {}, Condition::IfNotExists()).status());
  std::mutex mu;
  std::map<std::string, std::string> etags;  // guarded by mu
  Status copied = ForEachInParallel(plan.objects.size(), options.max_in_flight, [&](size_t i) {
    const RenamedObject& object = plan.objects[i];
    Result<std::string> etag =
        store.Copy(NameIn(plan.from, object.relative_name), NameIn(plan.to, object.relative_name));
    // Gone since it was listed: removed here or elsewhere, or moved by a mount finishing
    // this journal at once.
    if (absl::IsNotFound(etag.status())) return OkStatus();
    RETURN_IF_ERROR(etag.status());
    std::lock_guard lock(mu);
    etags[object.relative_name] = *std::move(etag);
    return OkStatus();
  });
  Status done = copied;
  if (done.ok()) done = DeleteSources(store, plan, options.max_in_flight);
  if (done.ok()) done = DeleteJournal(store, journal);
  if (!done.ok()) {
    spdlog::error(
        "renaming '{}' to '{}' stopped: {}; the journal {} stays and the next mount "
        "of this container finishes the rename",
        plan.from, plan.to, done.message(), journal);
    return FsError(EIO, fmt::format("renaming directory '{}' to '{}' was interrupted: {}",
                                    plan.from, plan.to, done.message()));
  }
  return etags;
}

Result<int> CompleteUnfinishedRenames(ObjectStore& store, const DirectoryRenameOptions& options) {
  ListOptions list;
  list.prefix = std::string(kRenameJournalDir) + "/";
  std::vector<std::string> journals;
  do {
    ASSIGN_OR_RETURN(ListPage page, store.List(list));
    for (const ObjectInfo& object : page.objects) journals.push_back(object.name);
    list.marker = page.next_marker;
  } while (!list.marker.empty());
  for (const std::string& journal : journals) RETURN_IF_ERROR(Complete(store, journal, options));
  return static_cast<int>(journals.size());
}

}  // namespace meridian::storage::fs
