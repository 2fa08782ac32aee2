// Env::Posix(): the real file system.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <string>

#include "storage/env.h"

namespace wald::storage {
namespace {

// Every open refuses a symlink as its last component (O_NOFOLLOW) and
// anything but a regular file: a link planted in the log directory must not
// make wald truncate or write someone else's file (#20).
Status OpenError(const std::string& what, const std::string& path, int err) {
  if (err == ELOOP) return Status::IoError(path + " is a symbolic link; refusing to follow it", err);
  return Status::IoError(what + " " + path, err);
}

std::string ModeString(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

Status CheckRegular(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::IoError("fstat " + path, errno);
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + " is not a regular file; refusing to use it");
  return Status::OK();
}

class PosixFile final : public File {
 public:
  PosixFile(std::string path, int fd) : File(std::move(path)), fd_(fd) {}
  ~PosixFile() override { ::close(fd_); }

  Status WriteAt(uint64_t offset, std::span<const iovec> iov) override {
    // pwritev may write less than asked and takes at most IOV_MAX entries:
    // advance through the vector until every byte is written. A mutable copy
    // is made only when a write stops inside an entry (rare).
    std::vector<iovec> rest;
    std::span<const iovec> todo = iov;
    while (!todo.empty()) {
      int cnt = todo.size() > IOV_MAX ? IOV_MAX : static_cast<int>(todo.size());
      ssize_t w = ::pwritev(fd_, todo.data(), cnt, static_cast<off_t>(offset));
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::IoError("pwritev " + path(), errno);
      }
      offset += static_cast<uint64_t>(w);
      size_t done = static_cast<size_t>(w);
      size_t k = 0;
      while (k < todo.size() && done >= todo[k].iov_len) done -= todo[k++].iov_len;
      if (w == 0 && k == 0) return Status::IoError("pwritev " + path() + " wrote nothing", EIO);
      if (done == 0) {
        todo = todo.subspan(k);
        continue;
      }
      std::vector<iovec> next(todo.begin() + static_cast<ptrdiff_t>(k), todo.end());
      next[0].iov_base = static_cast<char*>(next[0].iov_base) + done;
      next[0].iov_len -= done;
      rest.swap(next);
      todo = rest;
    }
    return Status::OK();
  }

  Result<size_t> ReadAt(uint64_t offset, void* dst, size_t n) override {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, static_cast<char*>(dst) + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Status::IoError("pread " + path(), errno);
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    return got;
  }

  Status DataSync() override {
    // No retry on EINTR either: fdatasync is not interrupted by signals on
    // Linux, and any error means the pages' fate is unknown.
    if (::fdatasync(fd_) != 0) return Status::IoError("fdatasync " + path(), errno);
    return Status::OK();
  }

  Status Allocate(uint64_t size) override {
    int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(size));
    if (rc != 0) return Status::IoError("fallocate " + path(), rc);
    return Status::OK();
  }

  void DropCache() override { ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED); }

  Result<uint64_t> Size() override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return Status::IoError("fstat " + path(), errno);
    return static_cast<uint64_t>(st.st_size);
  }

  Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return Status::IoError("ftruncate " + path(), errno);
    return Status::OK();
  }

 private:
  int fd_;
};

// libtsan (GCC 12) intercepts open but not openat: a descriptor that openat
// creates is invisible to its model of descriptors, which then reports races
// between a socket closed on one thread and a file that reused its number on
// another. Under TSan the pinned directory is reached through
// /proc/self/fd/N instead, which the kernel resolves to the same held
// directory: the same semantics, seen by the sanitizer.
#if defined(__SANITIZE_THREAD__)
constexpr bool kViaProcFd = true;
#else
constexpr bool kViaProcFd = false;
#endif

std::string ProcFd(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

class PosixLock final : public DirLock {
 public:
  explicit PosixLock(int fd) : fd_(fd) {}
  ~PosixLock() override { ::close(fd_); }  // closing releases the flock

 private:
  int fd_;
};

// Env::Posix() works by path. Env::PosixAt(dir) also holds a descriptor of
// `dir` from the moment it creates or checks it (CreateDir, CheckPrivateDir:
// LogWriter::Open's first steps), and from then on resolves every name
// directly inside `dir` against that descriptor (openat, renameat, unlinkat,
// fstatat; fsync and readdir of the descriptor itself). So the directory
// that was checked is the one used, whatever later happens to the path
// leading to it (#20). Names elsewhere go by path as in Env::Posix().
//
// dfd_ is set once, by the thread that opens the log, before the threads
// that use the Env exist; it is atomic so that a late reader sees it whole.
class PosixEnv final : public Env {
 public:
  PosixEnv() = default;
  explicit PosixEnv(std::string dir) : dir_(std::move(dir)) {
    while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  }
  ~PosixEnv() override {
    if (int fd = dfd_.load(); fd >= 0) ::close(fd);
  }

  Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode) override {
    // O_NONBLOCK: a FIFO planted under a segment's name must not hang the
    // open (it is then refused as not a regular file); regular files ignore it.
    int flags = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
    switch (mode) {
      case OpenMode::kRead: flags |= O_RDONLY; break;
      case OpenMode::kReadWrite: flags |= O_RDWR; break;
      case OpenMode::kCreate: flags |= O_RDWR | O_CREAT | O_EXCL; break;
    }
    const At at = Resolve(path);
    int fd = OpenAt(at, flags, 0640);
    if (fd < 0) {
      int e = errno;
      if (e == ENOENT) return Status::NotFound(path);
      return OpenError("open", path, e);
    }
    if (Status st = CheckRegular(fd, path); !st.ok()) {
      ::close(fd);
      return st;
    }
    return std::unique_ptr<File>(new PosixFile(path, fd));
  }

  Status Rename(const std::string& from, const std::string& to) override {
    const At a = Resolve(from);
    const At b = Resolve(to);
    if (::renameat(a.dfd, a.Name(), b.dfd, b.Name()) != 0)
      return Status::IoError("rename " + from + " to " + to, errno);
    return Status::OK();
  }

  Status Remove(const std::string& path) override {
    const At at = Resolve(path);
    if (::unlinkat(at.dfd, at.Name(), 0) != 0) return Status::IoError("unlink " + path, errno);
    return Status::OK();
  }

  Status SyncDir(const std::string& dir) override {
    if (IsPinned(dir)) {  // fsync of the held descriptor: several threads may share it
      if (::fsync(dfd_.load()) != 0) return Status::IoError("fsync directory " + dir, errno);
      return Status::OK();
    }
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return OpenError("open directory", dir, errno);
    int rc = ::fsync(fd);
    int e = errno;
    ::close(fd);
    if (rc != 0) return Status::IoError("fsync directory " + dir, e);
    return Status::OK();
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = nullptr;
    if (IsPinned(dir)) {
      // A descriptor of its own: readdir moves the offset it shares.
      if (kViaProcFd) {
        d = ::opendir(ProcFd(dfd_.load()).c_str());
      } else if (int fd = ::openat(dfd_.load(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
        if ((d = ::fdopendir(fd)) == nullptr) ::close(fd);
      }
    } else {
      d = ::opendir(dir.c_str());
    }
    if (d == nullptr) return Status::IoError("opendir " + dir, errno);
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") names.emplace_back(n);
    }
    int e = errno;
    ::closedir(d);
    if (e != 0) return Status::IoError("readdir " + dir, e);
    return names;
  }

  Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0750) != 0) return Status::IoError("mkdir " + dir, errno);
    return PinIfOurs(dir);
  }

  FileKind Kind(const std::string& path) override {
    struct stat st;
    const At at = Resolve(path);
    if (::fstatat(at.dfd, at.Name(), &st, AT_SYMLINK_NOFOLLOW) != 0) return FileKind::kMissing;
    if (S_ISDIR(st.st_mode)) return FileKind::kDirectory;
    if (S_ISREG(st.st_mode)) return FileKind::kRegular;
    if (S_ISLNK(st.st_mode)) return FileKind::kSymlink;
    return FileKind::kOther;
  }

  Status CheckPrivateDir(const std::string& dir) override {
    // The directory checked is the one pinned: fstat of the held descriptor.
    WALD_RETURN_IF_ERROR(PinIfOurs(dir));
    struct stat st;
    if (IsPinned(dir) ? ::fstat(dfd_.load(), &st) != 0 : ::stat(dir.c_str(), &st) != 0) {
      return Status::IoError("stat " + dir, errno);
    }
    if (st.st_uid != ::geteuid()) {
      return Status::InvalidArgument(dir + " is owned by uid " + std::to_string(st.st_uid) + ", not by wald's uid " +
                                     std::to_string(::geteuid()) + ": chown it, or give wald a directory of its own");
    }
    if ((st.st_mode & S_IWOTH) != 0) {
      return Status::InvalidArgument(dir + " is writable by others (mode " + ModeString(st.st_mode) +
                                     "): chmod o-w it; anyone could plant files in the log");
    }
    return Status::OK();
  }

  uint64_t DiskUsage(const std::string& path) override {
    struct stat st;
    const At at = Resolve(path);
    return ::fstatat(at.dfd, at.Name(), &st, AT_SYMLINK_NOFOLLOW) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
  }

  uint64_t ModifiedTimeNs(const std::string& path) override {
    struct stat st;
    const At at = Resolve(path);
    if (::fstatat(at.dfd, at.Name(), &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
    return static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull + static_cast<uint64_t>(st.st_mtim.tv_nsec);
  }

  Result<std::unique_ptr<DirLock>> Lock(const std::string& path) override {
    const At at = Resolve(path);
    int fd = OpenAt(at, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) return OpenError("open lock file", path, errno);
    if (Status st = CheckRegular(fd, path); !st.ok()) {
      ::close(fd);
      return st;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      char buf[32] = {};
      ssize_t r = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      if (e == EWOULDBLOCK) {
        std::string holder = r > 0 ? std::string(buf, static_cast<size_t>(r)) : std::string("unknown");
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
        return Status::Busy(path + " is locked by another process (pid " + holder +
                            "): is another wald running on this log?");
      }
      return Status::IoError("flock " + path, e);
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      int e = errno;
      ::close(fd);
      return Status::IoError("write lock file " + path, e);
    }
    return std::unique_ptr<DirLock>(new PosixLock(fd));
  }

 private:
  struct At {
    int dfd;           // AT_FDCWD, or the pinned directory's
    const char* name;  // points into the caller's path
    std::string via;   // kViaProcFd: the path through /proc/self/fd
    const char* Name() const { return via.empty() ? name : via.c_str(); }
  };
  // `path` relative to the pinned directory when it names an entry directly
  // inside it, else as it is.
  At Resolve(const std::string& path) const {
    const int dfd = dfd_.load(std::memory_order_acquire);
    if (dfd >= 0 && path.size() > dir_.size() + 1 && path.compare(0, dir_.size(), dir_) == 0 &&
        (dir_ == "/" ? path[0] == '/' : path[dir_.size()] == '/')) {
      const size_t leaf = dir_ == "/" ? 1 : dir_.size() + 1;
      if (path.find('/', leaf) == std::string::npos) {
        if (kViaProcFd) return {AT_FDCWD, nullptr, ProcFd(dfd) + "/" + path.substr(leaf)};
        return {dfd, path.c_str() + leaf, {}};
      }
    }
    return {AT_FDCWD, path.c_str(), {}};
  }
  // open(2) when `at` is a path (so that TSan, which does not intercept
  // openat, sees every descriptor created outside the pinned directory),
  // openat(2) relative to the pinned directory otherwise.
  static int OpenAt(const At& at, int flags, mode_t mode) {
    return at.dfd == AT_FDCWD ? ::open(at.Name(), flags, mode) : ::openat(at.dfd, at.Name(), flags, mode);
  }
  bool IsPinned(const std::string& dir) const {
    if (dfd_.load(std::memory_order_acquire) < 0) return false;
    std::string d = dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    return d == dir_;
  }
  // Holds a descriptor of `dir` if it is this Env's directory and none is
  // held yet. A symlink is refused (O_NOFOLLOW).
  Status PinIfOurs(const std::string& dir) {
    if (dir_.empty() || dfd_.load() >= 0) return Status::OK();
    std::string d = dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    if (d != dir_) return Status::OK();
    int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return OpenError("open directory", dir_, errno);
    dfd_.store(fd, std::memory_order_release);
    return Status::OK();
  }

  std::string dir_;  // empty: nothing is pinned (Env::Posix())
  std::atomic<int> dfd_{-1};
};

}  // namespace

Env* Env::Posix() {
  static PosixEnv* env = new PosixEnv;
  return env;
}

std::unique_ptr<Env> Env::PosixAt(const std::string& dir) { return std::make_unique<PosixEnv>(dir); }

Result<std::vector<std::byte>> ReadSmallFile(Env* env, const std::string& path, size_t max) {
  auto file = env->Open(path, OpenMode::kRead);
  if (!file.ok()) return file.take_status();
  std::vector<std::byte> buf(max);
  auto n = (*file)->ReadAt(0, buf.data(), buf.size());
  if (!n.ok()) return n.take_status();
  buf.resize(*n);
  return buf;
}

}  // namespace wald::storage
