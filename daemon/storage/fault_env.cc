#include "storage/fault_env.h"

#include <unistd.h>

#include <algorithm>

namespace wald::storage {

class FaultFile final : public File {
 public:
  FaultFile(FaultEnv* env, std::unique_ptr<File> base) : File(base->path()), env_(env), base_(std::move(base)) {}

  Status WriteAt(uint64_t offset, std::span<const iovec> iov) override {
    std::lock_guard lk(env_->mu_);
    if (!env_->Tick()) return Status::IoError("pwritev " + path() + " (crashed)", EIO);
    size_t len = 0;
    for (const iovec& v : iov) len += v.iov_len;
    bool fail = false;
    if (env_->write_ok_left_ == 0) {
      fail = true;
      len /= 2;
    } else if (env_->write_ok_left_ > 0) {
      --env_->write_ok_left_;
    }
    // Keep what this write overwrites so that a power loss can restore it.
    auto size = base_->Size();
    if (!size.ok()) return size.take_status();
    FaultEnv::Undo u{offset, {}, *size};
    if (offset < *size) {
      u.old.resize(static_cast<size_t>(std::min<uint64_t>(len, *size - offset)));
      auto n = base_->ReadAt(offset, u.old.data(), u.old.size());
      if (!n.ok()) return n.take_status();
    }
    env_->undo_[path()].push_back(std::move(u));
    // Write `len` bytes of the vector (all of it unless failing half-way).
    std::vector<iovec> part;
    size_t left = len;
    for (const iovec& v : iov) {
      if (left == 0) break;
      part.push_back({v.iov_base, std::min(left, v.iov_len)});
      left -= part.back().iov_len;
    }
    if (!part.empty()) WALD_RETURN_IF_ERROR(base_->WriteAt(offset, part));
    if (fail) {
      env_->FaultFired();
      return Status::IoError("pwritev " + path() + " (injected)", env_->write_err_);
    }
    return Status::OK();
  }

  Result<size_t> ReadAt(uint64_t offset, void* dst, size_t n) override { return base_->ReadAt(offset, dst, n); }

  void DropCache() override { base_->DropCache(); }  // only a hint: contents unchanged

  Status DataSync() override {
    std::lock_guard lk(env_->mu_);
    if (!env_->Tick()) return Status::IoError("fdatasync " + path() + " (crashed)", EIO);
    if (env_->sync_ok_left_ == 0) {
      env_->FaultFired();
      return Status::IoError("fdatasync " + path() + " (injected)", env_->sync_err_);
    }
    WALD_RETURN_IF_ERROR(base_->DataSync());
    if (env_->sync_ok_left_ > 0) --env_->sync_ok_left_;
    ++env_->syncs_;
    env_->undo_.erase(path());
    return Status::OK();
  }

  Status Allocate(uint64_t size) override {
    std::lock_guard lk(env_->mu_);
    if (!env_->Tick()) return Status::IoError("fallocate " + path() + " (crashed)", EIO);
    if (env_->alloc_err_ != 0) {
      env_->FaultFired();
      return Status::IoError("fallocate " + path() + " (injected)", env_->alloc_err_);
    }
    auto old = base_->Size();
    if (!old.ok()) return old.take_status();
    env_->undo_[path()].push_back({*old, {}, *old});
    return base_->Allocate(size);
  }

  Result<uint64_t> Size() override { return base_->Size(); }

  Status Truncate(uint64_t size) override {
    std::lock_guard lk(env_->mu_);
    if (!env_->Tick()) return Status::IoError("ftruncate " + path() + " (crashed)", EIO);
    auto old = base_->Size();
    if (!old.ok()) return old.take_status();
    FaultEnv::Undo u{size, {}, *old};
    if (size < *old) {
      u.old.resize(static_cast<size_t>(*old - size));
      auto n = base_->ReadAt(size, u.old.data(), u.old.size());
      if (!n.ok()) return n.take_status();
    }
    env_->undo_[path()].push_back(std::move(u));
    return base_->Truncate(size);
  }

 private:
  FaultEnv* const env_;
  std::unique_ptr<File> base_;
};

void FaultEnv::FailSyncAfter(int64_t n, int err) {
  std::lock_guard lk(mu_);
  sync_ok_left_ = n;
  sync_err_ = err;
}

void FaultEnv::FailWriteAfter(int64_t n, int err) {
  std::lock_guard lk(mu_);
  write_ok_left_ = n;
  write_err_ = err;
}

void FaultEnv::FailOpens(int64_t n, int err) {
  std::lock_guard lk(mu_);
  fail_opens_ = n;
  open_err_ = err;
}

int64_t FaultEnv::failed_opens() const {
  std::lock_guard lk(mu_);
  return failed_opens_;
}

bool FaultEnv::OpenFails() {
  if (fail_opens_ <= 0) return false;
  --fail_opens_;
  ++failed_opens_;
  return true;
}

void FaultEnv::FailAllocate(int err) {
  std::lock_guard lk(mu_);
  alloc_err_ = err;
}

void FaultEnv::CrashAfterOps(int64_t n) {
  std::lock_guard lk(mu_);
  crash_after_ = n < 0 ? -1 : ops_ + n;
}

int64_t FaultEnv::ops() const {
  std::lock_guard lk(mu_);
  return ops_;
}

int64_t FaultEnv::syncs() const {
  std::lock_guard lk(mu_);
  return syncs_;
}

void FaultEnv::DropUnsyncedAtFault() {
  std::lock_guard lk(mu_);
  drop_at_fault_ = true;
}

void FaultEnv::FaultFired() {
  if (!drop_at_fault_) return;
  const auto sync_left = sync_ok_left_, write_left = write_ok_left_;
  const int alloc = alloc_err_;
  (void)DropLocked();  // clears the settings: the fault stays in force
  sync_ok_left_ = sync_left;
  write_ok_left_ = write_left;
  alloc_err_ = alloc;
}

void FaultEnv::PowerCutAfterOps(int64_t n) {
  std::lock_guard lk(mu_);
  power_cut_at_ = ops_ + n;
}

bool FaultEnv::Tick() {
  if (power_cut_at_ >= 0 && ops_ >= power_cut_at_) {
    (void)DropLocked();
    ::_exit(137);
  }
  if (crash_after_ >= 0 && ops_ >= crash_after_) return false;
  ++ops_;
  return true;
}

std::string FaultEnv::Parent(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

Result<std::vector<std::byte>> FaultEnv::Slurp(const std::string& path) {
  auto f = base_->Open(path, OpenMode::kRead);
  if (!f.ok()) return f.take_status();
  auto size = (*f)->Size();
  if (!size.ok()) return size.take_status();
  std::vector<std::byte> buf(static_cast<size_t>(*size));
  auto n = (*f)->ReadAt(0, buf.data(), buf.size());
  if (!n.ok()) return n.take_status();
  return buf;
}

Result<std::unique_ptr<File>> FaultEnv::Open(const std::string& path, OpenMode mode) {
  {
    std::lock_guard lk(mu_);
    if (OpenFails()) return Status::IoError("open " + path, open_err_);
  }
  if (mode == OpenMode::kCreate) {
    std::lock_guard lk(mu_);
    if (!Tick()) return Status::IoError("open " + path + " (crashed)", EIO);
    auto f = base_->Open(path, mode);
    if (!f.ok()) return f;
    dir_ops_.push_back({DirOp::kCreate, path, {}, false, {}});
    return std::unique_ptr<File>(new FaultFile(this, std::move(*f)));
  }
  auto f = base_->Open(path, mode);
  if (!f.ok()) return f;
  return std::unique_ptr<File>(new FaultFile(this, std::move(*f)));
}

Status FaultEnv::Rename(const std::string& from, const std::string& to) {
  std::lock_guard lk(mu_);
  if (!Tick()) return Status::IoError("rename " + from + " (crashed)", EIO);
  DirOp op{DirOp::kRename, to, from, false, {}};
  if (base_->Kind(to) == FileKind::kRegular) {
    auto content = Slurp(to);
    if (!content.ok()) return content.take_status();
    op.had_content = true;
    op.content = std::move(*content);
  }
  WALD_RETURN_IF_ERROR(base_->Rename(from, to));
  if (auto it = undo_.find(from); it != undo_.end()) {
    undo_[to] = std::move(it->second);
    undo_.erase(it);
  } else {
    undo_.erase(to);
  }
  dir_ops_.push_back(std::move(op));
  return Status::OK();
}

Status FaultEnv::Remove(const std::string& path) {
  std::lock_guard lk(mu_);
  if (!Tick()) return Status::IoError("unlink " + path + " (crashed)", EIO);
  auto content = Slurp(path);
  if (!content.ok()) return content.take_status();
  WALD_RETURN_IF_ERROR(base_->Remove(path));
  undo_.erase(path);
  dir_ops_.push_back({DirOp::kRemove, path, {}, true, std::move(*content)});
  return Status::OK();
}

Status FaultEnv::SyncDir(const std::string& dir) {
  std::lock_guard lk(mu_);
  if (OpenFails()) return Status::IoError("open directory " + dir, open_err_);
  if (!Tick()) return Status::IoError("fsync directory " + dir + " (crashed)", EIO);
  WALD_RETURN_IF_ERROR(base_->SyncDir(dir));
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  std::erase_if(dir_ops_, [&](const DirOp& op) { return Parent(op.path) == d; });
  return Status::OK();
}

Status FaultEnv::DropUnsyncedData() {
  std::lock_guard lk(mu_);
  return DropLocked();
}

Status FaultEnv::DropLocked() {
  auto write_file = [&](const std::string& path, const std::vector<std::byte>& content) -> Status {
    auto f = base_->Open(path, OpenMode::kCreate);
    if (!f.ok()) return f.take_status();
    iovec iov{const_cast<std::byte*>(content.data()), content.size()};
    if (!content.empty()) WALD_RETURN_IF_ERROR((*f)->WriteAt(0, std::span(&iov, 1)));
    return Status::OK();
  };
  // File contents first, newest write first, then the directory entries.
  for (auto& [path, undos] : undo_) {
    if (base_->Kind(path) != FileKind::kRegular) continue;
    auto f = base_->Open(path, OpenMode::kReadWrite);
    if (!f.ok()) return f.take_status();
    for (auto it = undos.rbegin(); it != undos.rend(); ++it) {
      if (!it->old.empty()) {
        iovec iov{it->old.data(), it->old.size()};
        WALD_RETURN_IF_ERROR((*f)->WriteAt(it->offset, std::span(&iov, 1)));
      }
      auto size = (*f)->Size();
      if (!size.ok()) return size.take_status();
      if (*size > it->old_size) WALD_RETURN_IF_ERROR((*f)->Truncate(it->old_size));
    }
  }
  undo_.clear();
  for (auto it = dir_ops_.rbegin(); it != dir_ops_.rend(); ++it) {
    switch (it->kind) {
      case DirOp::kCreate:
        if (base_->Kind(it->path) == FileKind::kRegular) WALD_RETURN_IF_ERROR(base_->Remove(it->path));
        break;
      case DirOp::kRename:
        WALD_RETURN_IF_ERROR(base_->Rename(it->path, it->from));
        if (it->had_content) WALD_RETURN_IF_ERROR(write_file(it->path, it->content));
        break;
      case DirOp::kRemove: WALD_RETURN_IF_ERROR(write_file(it->path, it->content)); break;
    }
  }
  dir_ops_.clear();
  crash_after_ = sync_ok_left_ = write_ok_left_ = power_cut_at_ = -1;
  alloc_err_ = 0;
  return Status::OK();
}

}  // namespace wald::storage
