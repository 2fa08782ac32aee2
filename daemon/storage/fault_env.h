// FaultEnv: an Env for tests that wraps a real one and breaks it on request.
//
// - Faults: fdatasync fails (EIO), a write stops half-way and fails
//   (ENOSPC, EIO: a short write), preallocation fails (ENOSPC).
// - Crash: after a chosen number of mutating operations every further one
//   fails with EIO, as if the machine had stopped; DropUnsyncedData() then
//   makes the files look as they would after a power loss.
// - Power loss: DropUnsyncedData() undoes every write made after a file's
//   last successful DataSync, and every creation, rename and removal made
//   after its directory's last SyncDir (like LevelDB's fault_injection_test,
//   extended to overwrites of preallocated files: old bytes are kept in an
//   undo log). Call it when no File of this Env is open.
//
// Thread-safe (one mutex); meant for small test logs, as it keeps copies of
// overwritten and removed bytes in memory.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/env.h"

namespace wald::storage {

class FaultEnv : public Env {
 public:
  explicit FaultEnv(Env* base) : base_(base) {}

  // After `n` more successful DataSyncs, every DataSync fails with `err`.
  void FailSyncAfter(int64_t n, int err = EIO);
  // After `n` more successful writes, the next write writes half of its bytes
  // and fails with `err`; and so does every later one.
  void FailWriteAfter(int64_t n, int err = ENOSPC);
  // Every Allocate fails with `err` (0 to stop).
  void FailAllocate(int err);
  // The next `n` calls that open a descriptor (Open, SyncDir) fail with
  // `err` and do nothing: a process or system out of descriptors (EMFILE,
  // ENFILE).
  void FailOpens(int64_t n, int err = EMFILE);
  int64_t failed_opens() const;  // so far
  // After `n` more mutating operations (write, sync, allocate, create,
  // rename, remove, directory sync), every one fails with EIO and does
  // nothing. Negative: never.
  void CrashAfterOps(int64_t n);
  // Power loss: see above. Also clears every fault and crash setting.
  Status DropUnsyncedData();
  // From now on, the moment an injected fault fires (a failed write,
  // fdatasync or preallocation), unsynced data is dropped as by a power loss,
  // keeping the fault settings. So a test sees any ack that ran ahead of its
  // fdatasync: the page cache no longer hides it.
  void DropUnsyncedAtFault();
  // A power cut inside a running process: when the `n`-th further mutating
  // operation is attempted, drop unsynced data as above and _exit(137) at
  // once, as if the machine had lost power (for daemon tests).
  void PowerCutAfterOps(int64_t n);

  int64_t ops() const;    // mutating operations so far
  int64_t syncs() const;  // successful DataSyncs so far

  // Env
  Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override { return base_->ListDir(dir); }
  Status CreateDir(const std::string& dir) override { return base_->CreateDir(dir); }
  Status CheckPrivateDir(const std::string& dir) override { return base_->CheckPrivateDir(dir); }
  FileKind Kind(const std::string& path) override { return base_->Kind(path); }
  uint64_t DiskUsage(const std::string& path) override { return base_->DiskUsage(path); }
  uint64_t ModifiedTimeNs(const std::string& path) override { return base_->ModifiedTimeNs(path); }
  Result<std::unique_ptr<DirLock>> Lock(const std::string& path) override { return base_->Lock(path); }

 private:
  friend class FaultFile;
  struct Undo {  // restores [offset, offset + old.size()) and the old size
    uint64_t offset;
    std::vector<std::byte> old;
    uint64_t old_size;
  };
  struct DirOp {
    enum Kind { kCreate, kRename, kRemove } kind;
    std::string path;                // created, renamed to, removed
    std::string from;                // kRename: the old name
    bool had_content = false;        // kRename over a file, kRemove
    std::vector<std::byte> content;  // what that file held
  };

  // Counts one mutating operation; false if the machine has "crashed".
  bool Tick();          // requires mu_
  void FaultFired();    // requires mu_: drops unsynced data if asked to
  Status DropLocked();  // requires mu_
  Result<std::vector<std::byte>> Slurp(const std::string& path);
  bool OpenFails();  // requires mu_: FailOpens has one left (and uses it)
  static std::string Parent(const std::string& path);

  Env* const base_;
  mutable std::mutex mu_;
  int64_t ops_ = 0;
  int64_t syncs_ = 0;
  int64_t crash_after_ = -1;
  int64_t power_cut_at_ = -1;
  int64_t sync_ok_left_ = -1;
  int sync_err_ = 0;
  int64_t write_ok_left_ = -1;
  int write_err_ = 0;
  int alloc_err_ = 0;
  int64_t fail_opens_ = 0;
  int open_err_ = 0;
  int64_t failed_opens_ = 0;
  bool drop_at_fault_ = false;
  std::map<std::string, std::vector<Undo>> undo_;  // by path, since its last sync
  std::vector<DirOp> dir_ops_;                     // since their directory's last sync
};

}  // namespace wald::storage
