#include "storage/fs/inode_table.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace meridian::storage::fs {

InodeTable::InodeTable() {
  auto root = std::make_unique<Inode>();
  root->id = kRootInode;
  root->kind = FileKind::kDirectory;
  root->nlookup = 1;
  by_path_[""] = kRootInode;
  inodes_[kRootInode] = std::move(root);
}

Inode* InodeTable::Find(InodeId id) {
  auto it = inodes_.find(id);
  return it == inodes_.end() ? nullptr : it->second.get();
}

Inode* InodeTable::AtPath(const std::string& path) {
  auto it = by_path_.find(path);
  return it == by_path_.end() ? nullptr : inodes_.at(it->second).get();
}

Inode& InodeTable::Remember(const std::string& path, FileKind kind) {
  if (auto it = by_path_.find(path); it != by_path_.end()) {
    Inode& inode = *inodes_.at(it->second);
    if (inode.kind == kind) return inode;
    // Replaced by another kind of entry elsewhere: the old inode lives on, detached.
    by_path_.erase(it);
  }
  auto created = std::make_unique<Inode>();
  created->id = next_inode_++;
  created->path = path;
  created->kind = kind;
  Inode& inode = *created;
  by_path_[path] = inode.id;
  inodes_[inode.id] = std::move(created);
  return inode;
}

Inode* InodeTable::Detach(const std::string& path) {
  auto it = by_path_.find(path);
  if (it == by_path_.end() || path.empty()) return nullptr;
  Inode* inode = inodes_.at(it->second).get();
  by_path_.erase(it);
  return inode;
}

void InodeTable::FreeIfUnused(InodeId id) {
  auto it = inodes_.find(id);
  if (it == inodes_.end() || id == kRootInode) return;
  const Inode& inode = *it->second;
  if (inode.nlookup > 0 || inode.open_handles > 0) return;
  if (auto by_path = by_path_.find(inode.path);
      by_path != by_path_.end() && by_path->second == id) {
    by_path_.erase(by_path);
  }
  inodes_.erase(it);
}

void InodeTable::Forget(InodeId id, uint64_t count) {
  Inode* inode = Find(id);
  if (inode == nullptr || id == kRootInode) return;
  inode->nlookup -= std::min(count, inode->nlookup);
  FreeIfUnused(id);
}

Inode* InodeTable::Move(const std::string& from, const std::string& to) {
  auto it = by_path_.find(from);
  if (it == by_path_.end()) return nullptr;
  const InodeId moved = it->second;
  by_path_.erase(it);
  Inode& inode = *inodes_.at(moved);
  inode.path = to;
  by_path_[to] = moved;
  return &inode;
}

void InodeTable::MoveBelow(const std::string& from, const std::string& to) {
  const std::string from_prefix = from + "/";
  const std::string to_prefix = to + "/";
  std::vector<std::pair<std::string, InodeId>> moved;
  for (auto it = by_path_.begin(); it != by_path_.end();) {
    if (it->first.starts_with(from_prefix)) {
      moved.emplace_back(it->first, it->second);
    } else if (it->first.starts_with(to_prefix)) {
      // Below the empty directory that was replaced: detached, freed once unused.
      const InodeId id = it->second;
      const Inode& inode = *inodes_.at(id);
      if (inode.nlookup == 0 && inode.open_handles == 0) inodes_.erase(id);
    } else {
      ++it;
      continue;
    }
    it = by_path_.erase(it);
  }
  for (auto& [path, id] : moved) {
    std::string new_path = to_prefix + path.substr(from_prefix.size());
    inodes_.at(id)->path = new_path;
    by_path_[new_path] = id;
  }
}

}  // namespace meridian::storage::fs
