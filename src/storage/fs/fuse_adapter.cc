#define FUSE_USE_VERSION 35
#include "storage/fs/fuse_adapter.h"

#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "storage/fs/fs_errors.h"

namespace meridian::storage::fs {
namespace {

FuseMount& MountOf(fuse_req_t request) {
  return *static_cast<FuseMount*>(fuse_req_userdata(request));
}

timespec ToTimespec(int64_t unix_ms) {
  return timespec{static_cast<time_t>(unix_ms / 1000),
                  static_cast<long>(unix_ms % 1000) * 1'000'000};
}

struct stat ToStat(const Attr& attr) {
  struct stat st {};
  st.st_ino = attr.inode;
  st.st_mode = attr.mode;
  st.st_nlink = attr.nlink;
  st.st_uid = attr.uid;
  st.st_gid = attr.gid;
  st.st_size = attr.size;
  st.st_blksize = 4096;
  st.st_blocks = (attr.size + 511) / 512;
  st.st_mtim = ToTimespec(attr.mtime_ms);
  st.st_atim = st.st_mtim;
  st.st_ctim = ToTimespec(attr.ctime_ms);
  return st;
}

fuse_entry_param ToEntry(const FuseMount& mount, const Attr& attr) {
  fuse_entry_param entry{};
  entry.ino = attr.inode;
  entry.generation = 1;
  entry.attr = ToStat(attr);
  entry.attr_timeout = mount.options().attr_timeout_s;
  entry.entry_timeout = mount.options().entry_timeout_s;
  return entry;
}

void ReplyError(fuse_req_t request, const Status& status) {
  int error_number = ErrnoFor(status);
  if (error_number != ENOENT) spdlog::debug("fuse: {} ({})", status.message(), error_number);
  fuse_reply_err(request, error_number);
}

void ReplyEntry(fuse_req_t request, const Result<Attr>& attr) {
  if (!attr.ok()) return ReplyError(request, attr.status());
  fuse_entry_param entry = ToEntry(MountOf(request), *attr);
  fuse_reply_entry(request, &entry);
}

// Runs `body`; an escaping exception becomes EIO, so every request still gets one reply.
template <typename Body>
void Guard(fuse_req_t request, Body body) {
  try {
    body();
  } catch (const std::exception& error) {
    spdlog::error("fuse: internal error: {}", error.what());
    fuse_reply_err(request, EIO);
  } catch (...) {
    spdlog::error("fuse: internal error");
    fuse_reply_err(request, EIO);
  }
}

void OnInit(void* userdata, fuse_conn_info* conn) {
  // O_TRUNC arrives with open instead of a separate setattr.
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;  // writes must reach FsCore in order
  // Read replies move from the cached copy's page cache to the kernel by splice.
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  // READDIRPLUS for every batch: the listing already holds each entry's attributes, so the
  // kernel needs no LOOKUP per entry after it. The adaptive mode would send plain READDIR
  // for later batches whenever the reader did not stat entries in between (a program that
  // reads the whole directory, then stats), and each of those names would cost a LOOKUP.
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
}

void OnLookup(fuse_req_t request, fuse_ino_t parent, const char* name) {
  Guard(request, [&] {
    FuseMount& mount = MountOf(request);
    Result<Attr> attr = mount.core().Lookup(parent, name);
    if (!attr.ok() && ErrnoFor(attr.status()) == ENOENT && mount.options().negative_timeout_s > 0) {
      fuse_entry_param negative{};
      negative.entry_timeout = mount.options().negative_timeout_s;
      fuse_reply_entry(request, &negative);
      return;
    }
    ReplyEntry(request, attr);
  });
}

void OnForget(fuse_req_t request, fuse_ino_t inode, uint64_t count) {
  MountOf(request).core().Forget(inode, count);
  fuse_reply_none(request);
}

void OnForgetMulti(fuse_req_t request, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i)
    MountOf(request).core().Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(request);
}

void OnGetAttr(fuse_req_t request, fuse_ino_t inode, fuse_file_info*) {
  Guard(request, [&] {
    Result<Attr> attr = MountOf(request).core().GetAttr(inode);
    if (!attr.ok()) return ReplyError(request, attr.status());
    struct stat st = ToStat(*attr);
    fuse_reply_attr(request, &st, MountOf(request).options().attr_timeout_s);
  });
}

void OnSetAttr(fuse_req_t request, fuse_ino_t inode, struct stat* values, int to_set,
               fuse_file_info* file) {
  Guard(request, [&] {
    SetAttrRequest change;
    if (to_set & FUSE_SET_ATTR_MODE) change.mode = values->st_mode & 07777;
    if (to_set & FUSE_SET_ATTR_SIZE) change.size = values->st_size;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      timespec now{};
      ::clock_gettime(CLOCK_REALTIME, &now);
      change.mtime_ms = int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1'000'000;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      change.mtime_ms =
          int64_t{values->st_mtim.tv_sec} * 1000 + values->st_mtim.tv_nsec / 1'000'000;
    }
    // Owners are not kept (every file shows the mounting user); changing them is accepted
    // and ignored, as BlobFuse2 does, so cp -p and tar keep working.
    Result<Attr> attr =
        MountOf(request).core().SetAttr(inode, change, file != nullptr ? file->fh : 0);
    if (!attr.ok()) return ReplyError(request, attr.status());
    struct stat st = ToStat(*attr);
    fuse_reply_attr(request, &st, MountOf(request).options().attr_timeout_s);
  });
}

void OnReadLink(fuse_req_t request, fuse_ino_t inode) {
  Guard(request, [&] {
    Result<std::string> target = MountOf(request).core().ReadLink(inode);
    if (!target.ok()) return ReplyError(request, target.status());
    fuse_reply_readlink(request, target->c_str());
  });
}

void OnMkdir(fuse_req_t request, fuse_ino_t parent, const char* name, mode_t mode) {
  Guard(request,
        [&] { ReplyEntry(request, MountOf(request).core().MakeDirectory(parent, name, mode)); });
}

void OnUnlink(fuse_req_t request, fuse_ino_t parent, const char* name) {
  Guard(request,
        [&] { fuse_reply_err(request, ErrnoFor(MountOf(request).core().Unlink(parent, name))); });
}

void OnRmdir(fuse_req_t request, fuse_ino_t parent, const char* name) {
  Guard(request, [&] {
    fuse_reply_err(request, ErrnoFor(MountOf(request).core().RemoveDirectory(parent, name)));
  });
}

void OnSymlink(fuse_req_t request, const char* target, fuse_ino_t parent, const char* name) {
  Guard(request,
        [&] { ReplyEntry(request, MountOf(request).core().Symlink(target, parent, name)); });
}

void OnRename(fuse_req_t request, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
              const char* new_name, unsigned int flags) {
  Guard(request, [&] {
    Status status = MountOf(request).core().Rename(parent, name, new_parent, new_name, flags);
    if (ErrnoFor(status) == EXDEV) spdlog::info("rename: {}", status.message());
    fuse_reply_err(request, ErrnoFor(status));
  });
}

void OnLink(fuse_req_t request, fuse_ino_t, fuse_ino_t, const char*) {
  // link(2): EPERM is how a filesystem says it has no hard links.
  fuse_reply_err(request, EPERM);
}

void OnOpen(fuse_req_t request, fuse_ino_t inode, fuse_file_info* file) {
  Guard(request, [&] {
    FuseMount& mount = MountOf(request);
    Result<OpenResult> opened = mount.core().Open(inode, file->flags);
    if (!opened.ok()) return ReplyError(request, opened.status());
    file->fh = opened->handle;
    // Unchanged since the kernel cached it (Open checked the ETag): keep the cached pages, so
    // a warm re-read is served from memory. Changed: drop them.
    file->keep_cache = opened->changed ? 0 : 1;
    // Before the reply, so the caller's first read already sees the new size (after it,
    // the read could race ahead of the invalidation and stop at the old size).
    if (opened->changed) fuse_lowlevel_notify_inval_inode(mount.session(), inode, 0, 0);
    if (fuse_reply_open(request, file) != 0) {
      (void)mount.core().Release(opened->handle);  // the caller went away
    }
  });
}

void OnCreate(fuse_req_t request, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* file) {
  Guard(request, [&] {
    FuseMount& mount = MountOf(request);
    Result<CreateResult> created = mount.core().CreateFile(parent, name, mode, file->flags);
    if (!created.ok()) return ReplyError(request, created.status());
    file->fh = created->handle;
    fuse_entry_param entry = ToEntry(mount, created->attr);
    if (fuse_reply_create(request, &entry, file) != 0) (void)mount.core().Release(created->handle);
  });
}

void OnRead(fuse_req_t request, fuse_ino_t, size_t size, off_t offset, fuse_file_info* file) {
  Guard(request, [&] {
    FsCore& core = MountOf(request).core();
    // From the cached copy's descriptor: libfuse splices the bytes from its page cache into
    // the reply (or reads them into its own buffer), with no copy or zeroed buffer here.
    Result<bool> direct = core.ReadFromCopy(file->fh, offset, static_cast<int64_t>(size),
                                            [&](int fd, int64_t at, int64_t length) {
                                              fuse_bufvec buffer = FUSE_BUFVEC_INIT(static_cast<size_t>(length));
                                              buffer.buf[0].flags = static_cast<fuse_buf_flags>(
                                                  FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
                                              buffer.buf[0].fd = fd;
                                              buffer.buf[0].pos = at;
                                              fuse_reply_data(request, &buffer, FUSE_BUF_SPLICE_MOVE);
                                            });
    if (!direct.ok()) return ReplyError(request, direct.status());
    if (*direct) return;
    Result<std::string> data = core.Read(file->fh, offset, size);
    if (!data.ok()) return ReplyError(request, data.status());
    fuse_reply_buf(request, data->data(), data->size());
  });
}

void OnWrite(fuse_req_t request, fuse_ino_t, const char* data, size_t size, off_t offset,
             fuse_file_info* file) {
  Guard(request, [&] {
    Result<int64_t> written =
        MountOf(request).core().Write(file->fh, offset, std::string_view(data, size));
    if (!written.ok()) return ReplyError(request, written.status());
    fuse_reply_write(request, static_cast<size_t>(*written));
  });
}

void OnFlush(fuse_req_t request, fuse_ino_t inode, fuse_file_info* file) {
  Guard(request, [&] {
    FuseMount& mount = MountOf(request);
    Result<bool> committed = mount.core().FlushChanges(file->fh);
    // A commit gives the file the store's new version (its times): the kernel's cached
    // attributes go (attributes only, not pages), so the next stat shows it at once.
    if (committed.ok() && *committed) {
      fuse_lowlevel_notify_inval_inode(mount.session(), inode, -1, 0);
    }
    fuse_reply_err(request, ErrnoFor(committed.status()));
  });
}

void OnFsync(fuse_req_t request, fuse_ino_t, int, fuse_file_info* file) {
  Guard(request,
        [&] { fuse_reply_err(request, ErrnoFor(MountOf(request).core().Fsync(file->fh))); });
}

void OnRelease(fuse_req_t request, fuse_ino_t, fuse_file_info* file) {
  Guard(request,
        [&] { fuse_reply_err(request, ErrnoFor(MountOf(request).core().Release(file->fh))); });
}

// A directory handle holds the listing taken at opendir, so offsets stay stable while the
// kernel pages through it.
struct DirectoryHandle {
  std::vector<DirEntry> entries;
};

mode_t TypeBits(FileKind kind) {
  switch (kind) {
    case FileKind::kDirectory:
      return S_IFDIR;
    case FileKind::kSymlink:
      return S_IFLNK;
    case FileKind::kFile:
      break;
  }
  return S_IFREG;
}

void OnOpenDir(fuse_req_t request, fuse_ino_t inode, fuse_file_info* file) {
  Guard(request, [&] {
    Result<std::vector<DirEntry>> entries = MountOf(request).core().ReadDir(inode);
    if (!entries.ok()) return ReplyError(request, entries.status());
    auto* handle = new DirectoryHandle{std::move(*entries)};
    file->fh = reinterpret_cast<uint64_t>(handle);
    if (fuse_reply_open(request, file) != 0) delete handle;
  });
}

void OnReadDir(fuse_req_t request, fuse_ino_t inode, size_t size, off_t offset,
               fuse_file_info* file) {
  Guard(request, [&] {
    const auto& entries = reinterpret_cast<DirectoryHandle*>(file->fh)->entries;
    std::vector<char> buffer(size);
    size_t used = 0;
    // Offsets 0 and 1 are "." and "..", then entry i is at offset i + 2.
    for (off_t index = offset; index < static_cast<off_t>(entries.size()) + 2; ++index) {
      struct stat st {};
      std::string name;
      if (index < 2) {
        name = index == 0 ? "." : "..";
        st.st_ino = inode;
        st.st_mode = S_IFDIR;
      } else {
        const DirEntry& entry = entries[index - 2];
        name = entry.name;
        st.st_ino = entry.inode;
        st.st_mode = TypeBits(entry.kind);
      }
      size_t needed = fuse_add_direntry(request, buffer.data() + used, size - used, name.c_str(),
                                        &st, index + 1);
      if (needed > size - used) break;
      used += needed;
    }
    fuse_reply_buf(request, buffer.data(), used);
  });
}

// Offsets as in OnReadDir. The kernel adds one to the lookup count of every entry in the
// reply except "." and ".." (it links each one, even past what the reader's buffer took), so
// an entry is counted in the core (LookupListed) only once it is known to fit, and the
// counts are taken back if the reply cannot be sent.
void OnReadDirPlus(fuse_req_t request, fuse_ino_t inode, size_t size, off_t offset,
                   fuse_file_info* file) {
  Guard(request, [&] {
    FuseMount& mount = MountOf(request);
    const auto& entries = reinterpret_cast<DirectoryHandle*>(file->fh)->entries;
    std::vector<char> buffer(size);
    size_t used = 0;
    std::vector<InodeId> counted;
    for (off_t index = offset; index < static_cast<off_t>(entries.size()) + 2; ++index) {
      const DirEntry* listed = index < 2 ? nullptr : &entries[index - 2];
      const char* name = listed != nullptr ? listed->name.c_str() : index == 0 ? "." : "..";
      fuse_entry_param entry{};  // ino 0: the kernel links nothing, it only shows the name
      entry.attr.st_ino = listed != nullptr ? listed->inode : inode;
      entry.attr.st_mode = listed != nullptr ? TypeBits(listed->kind) : S_IFDIR;
      char* slot = buffer.data() + used;
      // With no room given, only the size is computed (it depends on the name alone).
      if (fuse_add_direntry_plus(request, slot, 0, name, &entry, index + 1) > size - used) break;
      if (listed != nullptr) {
        Result<Attr> attr = mount.core().LookupListed(inode, *listed);
        if (attr.ok()) {
          entry = ToEntry(mount, *attr);
          counted.push_back(attr->inode);
        } else {
          // Left to a LOOKUP of its own, should the reader stat it.
          spdlog::debug("readdirplus: '{}': {}", listed->name, attr.status().message());
        }
      }
      used += fuse_add_direntry_plus(request, slot, size - used, name, &entry, index + 1);
    }
    if (fuse_reply_buf(request, buffer.data(), used) != 0) {
      for (InodeId counted_inode : counted) mount.core().Forget(counted_inode, 1);
    }
  });
}

void OnReleaseDir(fuse_req_t request, fuse_ino_t, fuse_file_info* file) {
  delete reinterpret_cast<DirectoryHandle*>(file->fh);
  fuse_reply_err(request, 0);
}

void OnStatFs(fuse_req_t request, fuse_ino_t) {
  Guard(request, [&] {
    Result<FsStat> stat = MountOf(request).core().StatFs();
    if (!stat.ok()) return ReplyError(request, stat.status());
    struct statvfs st {};
    st.f_bsize = stat->block_size;
    st.f_frsize = stat->block_size;
    st.f_blocks = stat->blocks;
    st.f_bfree = stat->blocks_free;
    st.f_bavail = stat->blocks_free;
    st.f_files = stat->files;
    st.f_ffree = stat->files_free;
    st.f_favail = stat->files_free;
    st.f_namemax = stat->name_max;
    fuse_reply_statfs(request, &st);
  });
}

fuse_lowlevel_ops Operations() {
  fuse_lowlevel_ops ops{};
  ops.init = OnInit;
  ops.lookup = OnLookup;
  ops.forget = OnForget;
  ops.forget_multi = OnForgetMulti;
  ops.getattr = OnGetAttr;
  ops.setattr = OnSetAttr;
  ops.readlink = OnReadLink;
  ops.mkdir = OnMkdir;
  ops.unlink = OnUnlink;
  ops.rmdir = OnRmdir;
  ops.symlink = OnSymlink;
  ops.rename = OnRename;
  ops.link = OnLink;
  ops.open = OnOpen;
  ops.create = OnCreate;
  ops.read = OnRead;
  ops.write = OnWrite;
  ops.flush = OnFlush;
  ops.fsync = OnFsync;
  ops.release = OnRelease;
  ops.opendir = OnOpenDir;
  ops.readdir = OnReadDir;
  ops.readdirplus = OnReadDirPlus;
  ops.releasedir = OnReleaseDir;
  ops.statfs = OnStatFs;
  return ops;
}

}  // namespace

Result<std::unique_ptr<FuseMount>> FuseMount::Mount(FsCore* core, MountOptions options) {
  std::unique_ptr<FuseMount> mount(new FuseMount(core, std::move(options)));
  std::string mount_options = "fsname=meridian,subtype=meridian,default_permissions";
  if (mount->options_.allow_other) mount_options += ",allow_other";
  if (mount->options_.read_only) mount_options += ",ro";
  std::vector<std::string> argv_text = {"meridian", "-o", mount_options};
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = Operations();
  mount->session_ = fuse_session_new(&args, &ops, sizeof(ops), mount.get());
  fuse_opt_free_args(&args);
  if (mount->session_ == nullptr) {
    return absl::InvalidArgumentError("libfuse refused the mount options: " + mount_options);
  }
  if (fuse_session_mount(mount->session_, mount->options_.mountpoint.c_str()) != 0) {
    return absl::FailedPreconditionError(fmt::format(
        "could not mount at {} (does it exist, is /dev/fuse usable, is allow_other permitted "
        "in /etc/fuse.conf?)",
        mount->options_.mountpoint));
  }
  mount->mounted_ = true;
  return mount;
}

Status FuseMount::Run() {
  if (options_.handle_signals && fuse_set_signal_handlers(session_) != 0) {
    return absl::InternalError("could not install the signal handlers");
  }
  fuse_loop_config config{};
  config.clone_fd = 0;
  config.max_idle_threads = static_cast<unsigned>(options_.max_idle_threads);
  int rc = fuse_session_loop_mt(session_, &config);
  if (options_.handle_signals) fuse_remove_signal_handlers(session_);
  Status flushed = core_->FlushAll();
  if (!flushed.ok()) spdlog::error("at unmount: {}", flushed.message());
  fuse_session_unmount(session_);
  mounted_ = false;
  if (rc < 0) return absl::InternalError(fmt::format("fuse loop: {}", std::strerror(-rc)));
  return flushed;
}

FuseMount::~FuseMount() {
  if (session_ == nullptr) return;
  if (mounted_) fuse_session_unmount(session_);
  fuse_session_destroy(session_);
}

}  // namespace meridian::storage::fs
