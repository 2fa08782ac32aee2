// What the log leaves in the page cache: a segment sealed by a roll is
// dropped from it (by the segment preparer, in the background). Measured
// with mincore(2) over a mapping of the file.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "log_fixture.h"

using wald::test::LogFixture;

namespace {

// How many of the file's pages are in the page cache.
size_t ResidentPages(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  struct stat st;
  REQUIRE(::fstat(fd, &st) == 0);
  const size_t len = static_cast<size_t>(st.st_size);
  void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  REQUIRE(m != MAP_FAILED);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((len + page - 1) / page);
  REQUIRE(::mincore(m, len, v.data()) == 0);
  ::munmap(m, len);
  return static_cast<size_t>(std::count_if(v.begin(), v.end(), [](unsigned char c) { return (c & 1) != 0; }));
}

// The log's segment files, oldest first.
std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".wal") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// tmpfs keeps every page in memory: there is no cache to drop.
bool OnTmpfs(const std::string& dir) {
  struct statfs fs;
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

// Opens a log of 1 MiB segments with the preparer in the background (as the
// daemon runs it) and writes 4 KiB records until it has rolled twice.
void WriteThreeSegments(LogFixture& f) {
  f.opts.segment_size = 1 << 20;
  f.opts.prepare_in_background = true;
  REQUIRE(f.Open().ok());
  while (SegmentFiles(f.dir).size() < 3) REQUIRE(f.WriteN(64, 4096).ok());
}

}  // namespace

TEST_CASE_FIXTURE(LogFixture, "segments sealed by a roll leave the page cache") {
  if (OnTmpfs(dir)) {
    MESSAGE("skipped: the test directory is on tmpfs");
    return;
  }
  WriteThreeSegments(*this);
  const auto segs = SegmentFiles(dir);
  // The preparer drops them on its own thread: wait for it (5 s at most).
  size_t resident = 0;
  for (int i = 0; i < 500; ++i) {
    resident = ResidentPages(segs[0]) + ResidentPages(segs[1]);
    if (resident == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(resident == 0);
}
