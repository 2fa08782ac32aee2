// direct_io_bench: group-commit writes into a pre-zeroed segment, through the
// page cache (pwritev + fdatasync, what LogWriter does) against O_DIRECT
// (pwritev2 with RWF_DSYNC, or pwritev + fdatasync), for issue #21's
// question: is O_DIRECT + RWF_DSYNC faster at wald's batch sizes?
//
//   direct_io_bench [--dir DIR] [--batches N] [--size BYTES]
//
// Each case appends N batches of one size, back to back, at the tail of a
// 64 MiB file that was written with zeros and synced (a wald segment). The
// O_DIRECT cases write whole 4 KiB blocks from an aligned buffer: the
// block the tail is in is written again with the new bytes after the old
// ones, as a log writer using O_DIRECT has to. Reported per batch: p50 and
// p99 latency, batches/s, MB/s of log, and CPU (user + system) of this
// process, which includes the page-cache copy that O_DIRECT avoids.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBlock = 4096;
constexpr uint64_t kFileSize = 64ull << 20;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

[[noreturn]] void Die(const std::string& what) {
  std::perror(what.c_str());
  std::exit(1);
}

// A file of kFileSize zeros, written and synced (no unwritten extents).
void MakeSegment(const std::string& path) {
  std::filesystem::remove(path);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) Die("create " + path);
  if (::posix_fallocate(fd, 0, static_cast<off_t>(kFileSize)) != 0) Die("fallocate");
  std::vector<char> zeros(1 << 20, 0);
  for (uint64_t off = 0; off < kFileSize; off += zeros.size()) {
    if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(off)) < 0) Die("pwrite");
  }
  if (::fsync(fd) != 0) Die("fsync");
  ::close(fd);
}

enum class Mode { kBuffered, kDirectDsync, kDirectFdatasync };

const char* Name(Mode m) {
  switch (m) {
    case Mode::kBuffered: return "pwritev + fdatasync (page cache)";
    case Mode::kDirectDsync: return "O_DIRECT + pwritev2(RWF_DSYNC)";
    case Mode::kDirectFdatasync: return "O_DIRECT + pwritev + fdatasync";
  }
  return "?";
}

struct Result {
  std::vector<double> us;
  double seconds = 0;
  double cpu = 0;
  double Pct(double p) {
    std::sort(us.begin(), us.end());
    return us.empty() ? 0 : us[std::min(us.size() - 1, static_cast<size_t>(p * static_cast<double>(us.size())))];
  }
};

Result Run(const std::string& path, Mode mode, size_t batch, int batches) {
  MakeSegment(path);
  const bool direct = mode != Mode::kBuffered;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (direct ? O_DIRECT : 0));
  if (fd < 0) Die("open " + path);
  // The log's bytes as the writer would have them: `data` for buffered
  // writes; for O_DIRECT an aligned window from the tail's block on.
  std::vector<char> data(batch, 'r');
  const size_t window = (batch / kBlock + 2) * kBlock;
  std::unique_ptr<char, decltype(&std::free)> aligned(static_cast<char*>(std::aligned_alloc(kBlock, window)),
                                                      &std::free);
  std::memset(aligned.get(), 0, window);
  uint64_t tail = 64;  // after a segment header
  Result r;
  const double cpu0 = CpuSeconds();
  const auto start = Clock::now();
  for (int i = 0; i < batches && tail + batch + kBlock < kFileSize; ++i) {
    const auto t0 = Clock::now();
    if (!direct) {
      iovec iov{data.data(), batch};
      if (::pwritev(fd, &iov, 1, static_cast<off_t>(tail)) != static_cast<ssize_t>(batch)) Die("pwritev");
      if (::fdatasync(fd) != 0) Die("fdatasync");
    } else {
      // The tail block's old bytes stay at the front of the window.
      const uint64_t block = tail / kBlock * kBlock;
      const size_t in_block = tail - block;
      std::memcpy(aligned.get() + in_block, data.data(), batch);
      const size_t len = (in_block + batch + kBlock - 1) / kBlock * kBlock;
      iovec iov{aligned.get(), len};
      const ssize_t n = mode == Mode::kDirectDsync ? ::pwritev2(fd, &iov, 1, static_cast<off_t>(block), RWF_DSYNC)
                                                   : ::pwritev(fd, &iov, 1, static_cast<off_t>(block));
      if (n != static_cast<ssize_t>(len)) Die("pwritev (O_DIRECT)");
      if (mode == Mode::kDirectFdatasync && ::fdatasync(fd) != 0) Die("fdatasync");
      // Keep the new tail block (partly filled) at the window's front.
      const size_t keep_from = (in_block + batch) / kBlock * kBlock;
      std::memmove(aligned.get(), aligned.get() + keep_from, kBlock);
      std::memset(aligned.get() + kBlock, 0, window - kBlock);
    }
    r.us.push_back(Seconds(Clock::now() - t0) * 1e6);
    tail += batch;
  }
  r.seconds = Seconds(Clock::now() - start);
  r.cpu = CpuSeconds() - cpu0;
  ::close(fd);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "bench-data";
  int batches = 2000;
  std::vector<size_t> sizes = {176, 5632, 38912, 65536};  // W1, W2, W3 and W4 batches, 64 KiB
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--batches" && i + 1 < argc) {
      batches = std::atoi(argv[++i]);
    } else if (a == "--size" && i + 1 < argc) {
      sizes = {static_cast<size_t>(std::atoll(argv[++i]))};
    } else {
      std::fprintf(stderr, "usage: direct_io_bench [--dir DIR] [--batches N] [--size BYTES]\n");
      return 2;
    }
  }
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/direct.seg";
  std::printf("| batch | mode | p50 µs | p99 µs | batches/s | MB/s | CPU µs/batch |\n");
  std::printf("|---:|---|---:|---:|---:|---:|---:|\n");
  for (size_t size : sizes) {
    for (Mode m : {Mode::kBuffered, Mode::kDirectDsync, Mode::kDirectFdatasync}) {
      Result r = Run(path, m, size, batches);
      const double n = static_cast<double>(r.us.size());
      std::printf("| %zu B | %s | %.0f | %.0f | %.0f | %.1f | %.1f |\n", size, Name(m), r.Pct(0.5), r.Pct(0.99),
                  n / r.seconds, n * static_cast<double>(size) / r.seconds / 1e6, r.cpu * 1e6 / n);
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
