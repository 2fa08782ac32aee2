#include "storage/segment_preparer.h"

#include <algorithm>

#include "storage/format.h"
#include "storage/log_dir.h"
#include "storage/thread.h"

namespace wald::storage {

SegmentPreparer::SegmentPreparer(Env* env, std::string dir, uint64_t size, bool background, FdWaitHook on_fd_wait)
    : env_(env), dir_(std::move(dir)), size_(size), background_(background), on_fd_wait_(std::move(on_fd_wait)) {
  if (background_) thread_ = StartSignalFreeThread([this] { Run(); });
}

SegmentPreparer::~SegmentPreparer() {
  if (!background_) return;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool SegmentPreparer::has_donation() {
  std::lock_guard lk(mu_);
  return donated_.has_value();
}

void SegmentPreparer::Donate(std::string path) {
  {
    std::lock_guard lk(mu_);
    donated_ = std::move(path);
  }
  cv_.notify_all();
}

void SegmentPreparer::Retire(std::unique_ptr<File> sealed) {
  if (!background_) {
    sealed->DropCache();
    return;
  }
  {
    std::lock_guard lk(mu_);
    retired_.push_back(std::move(sealed));
  }
  cv_.notify_all();
}

Result<SegmentPreparer::Spare> SegmentPreparer::Take() {
  if (!background_) return Prepare();
  std::unique_lock lk(mu_);
  cv_.wait(lk, [this] { return ready_.has_value(); });
  Result<Spare> r = std::move(*ready_);
  ready_.reset();
  lk.unlock();
  cv_.notify_all();
  return r;
}

// The preparing thread. Retired segments come first: dropping their pages
// before the zeros lets the spare reuse them.
void SegmentPreparer::Run() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    if (!retired_.empty()) {
      std::vector<std::unique_ptr<File>> sealed;
      sealed.swap(retired_);
      lk.unlock();
      for (auto& f : sealed) f->DropCache();
      sealed.clear();  // closes them
      lk.lock();
      continue;
    }
    if (ready_.has_value()) {
      cv_.wait(lk);
      continue;
    }
    lk.unlock();
    Result<Spare> r = Prepare();
    lk.lock();
    ready_.emplace(std::move(r));
    cv_.notify_all();
  }
}

Result<SegmentPreparer::Spare> SegmentPreparer::Prepare() {
  std::optional<std::string> donated;
  {
    std::lock_guard lk(mu_);
    donated.swap(donated_);
  }
  if (donated.has_value()) {
    auto f = RetryOutOfFds(on_fd_wait_, [&] { return env_->Open(*donated, OpenMode::kReadWrite); });
    if (!f.ok()) return f.take_status();
    auto size = (*f)->Size();
    if (!size.ok()) return size.take_status();
    // Only a version-5 segment's old records are salted, and so never read
    // as records of its next life (FORMAT.md, "Salted records").
    SegmentHeader old;
    std::string why;
    WALD_RETURN_IF_ERROR(ReadSegmentHeader(f->get(), &old, &why));
    const bool salted = why.empty() && old.version >= kFirstSaltedVersion;
    if (*size == size_ && salted) return Spare{std::move(*f), std::move(*donated), true, old.first_seq};
    // Made with another --segment-size, or before version 5: not a spare.
    f->reset();
    WALD_RETURN_IF_ERROR(env_->Remove(*donated));
  }
  std::string path = JoinPath(dir_, "spare-" + std::to_string(counter_++) + std::string(kTempSuffix));
  auto f = RetryOutOfFds(on_fd_wait_, [&] { return env_->Open(path, OpenMode::kCreate); });
  if (!f.ok()) return f.take_status();
  File* file = f->get();
  WALD_RETURN_IF_ERROR(file->Allocate(size_));
  static constexpr size_t kZeroChunk = 1 << 20;
  static const std::vector<std::byte> kZeros(kZeroChunk);
  for (uint64_t off = 0; off < size_; off += kZeroChunk) {
    iovec iov{const_cast<std::byte*>(kZeros.data()), static_cast<size_t>(std::min<uint64_t>(kZeroChunk, size_ - off))};
    WALD_RETURN_IF_ERROR(file->WriteAt(off, std::span(&iov, 1)));
  }
  WALD_RETURN_IF_ERROR(file->DataSync());
  WALD_RETURN_IF_ERROR(RetryOutOfFds(on_fd_wait_, [&] { return env_->SyncDir(dir_); }));
  return Spare{std::move(*f), std::move(path)};
}

}  // namespace wald::storage
