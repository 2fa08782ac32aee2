// The file-system seam (after LevelDB's Env): every file operation of the
// storage layer goes through an Env, so that tests can inject faults (EIO on
// fdatasync, ENOSPC, short writes) and simulate power loss. Env::Posix() is
// the real one; FaultEnv (fault_env.h) wraps another Env and overrides only
// what it breaks.
//
// Thread safety: an Env may be used from several threads; a File from one
// thread at a time.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "storage/status.h"

namespace wald::storage {

class File {
 public:
  explicit File(std::string path) : path_(std::move(path)) {}
  virtual ~File() = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Writes every byte of iov at offset; retries EINTR and short writes.
  // On error an unknown prefix may have been written.
  virtual Status WriteAt(uint64_t offset, std::span<const iovec> iov) = 0;
  // Reads up to n bytes at offset; fewer only at end of file.
  virtual Result<size_t> ReadAt(uint64_t offset, void* dst, size_t n) = 0;
  // fdatasync. A failure is permanent for the caller: the kernel may have
  // dropped the dirty pages, so a retry that succeeds proves nothing.
  virtual Status DataSync() = 0;
  // Reserves [0, size) (fallocate mode 0): blocks allocated, size extended.
  virtual Status Allocate(uint64_t size) = 0;
  virtual Result<uint64_t> Size() = 0;
  virtual Status Truncate(uint64_t size) = 0;
  // A hint that the file's cached pages will not be read soon
  // (posix_fadvise DONTNEED): the kernel drops the clean ones. No error.
  virtual void DropCache() {}

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

enum class OpenMode {
  kRead,       // O_RDONLY
  kReadWrite,  // O_RDWR, must exist
  kCreate,     // O_RDWR | O_CREAT | O_EXCL, mode 0640
};

enum class FileKind { kMissing, kDirectory, kRegular, kSymlink, kOther };

// Held while the process owns a log directory; releases on destruction.
class DirLock {
 public:
  virtual ~DirLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;
  static Env* Posix();  // process-wide, never freed
  // Env::Posix() that, once CreateDir or CheckPrivateDir has met `dir`,
  // holds a descriptor of it and opens, renames, removes and stats the names
  // directly inside it relative to that descriptor (openat and friends): a
  // later swap of a directory on the path to `dir` cannot redirect wald. The
  // daemon's Env.
  static std::unique_ptr<Env> PosixAt(const std::string& dir);

  // Refuses a symlink as the last component and anything but a regular file.
  virtual Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode) = 0;
  // rename(2); replaces `to` if it exists.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  // fsync on the directory: makes creations, renames and removals in it durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // Names in dir, without "." and "..", unsorted.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual Status CreateDir(const std::string& dir) = 0;  // mode 0750
  // Refuses (InvalidArgument, saying how to fix it) a directory owned by
  // another user than this process's, or writable by others: a log there
  // is not wald's alone. Env::Posix() checks; fakes may accept anything.
  virtual Status CheckPrivateDir(const std::string& dir) = 0;
  // lstat: does not follow a final symlink.
  virtual FileKind Kind(const std::string& path) = 0;
  // Bytes of storage allocated to the file (st_blocks * 512); 0 if unknown.
  virtual uint64_t DiskUsage(const std::string& path) = 0;
  // Last modification (st_mtim), ns since the Unix epoch; 0 if unknown.
  virtual uint64_t ModifiedTimeNs(const std::string& path) = 0;
  // flock(LOCK_EX | LOCK_NB) on `path` (created if missing; a symlink or a
  // non-regular file is refused); the holder's pid
  // is written into it so that a refused opener can name the holder: Busy.
  virtual Result<std::unique_ptr<DirLock>> Lock(const std::string& path) = 0;
};

// Reads a whole small file.
Result<std::vector<std::byte>> ReadSmallFile(Env* env, const std::string& path, size_t max);

}  // namespace wald::storage
