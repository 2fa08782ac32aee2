// What the log leaves in the page cache: a segment sealed by a roll is
// dropped from it (by the segment preparer, in the background), except with
// recycling. Measured with mincore(2) over a mapping of the file.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
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

// Opens a log of 1 MiB segments with the preparer in the background (as the
// daemon runs it) and writes 4 KiB records until it has rolled twice. False
// (with a message) where this cannot be seen: on tmpfs, which keeps every
// page in memory, or where the newest segment, just written, shows no page
// in the cache (a file system that caches file data elsewhere).
bool WriteThreeSegments(LogFixture& f) {
  f.opts.segment_size = 1 << 20;
  f.opts.prepare_in_background = true;
  REQUIRE(f.Open().ok());
  while (f.Segments().size() < 3) REQUIRE(f.WriteN(64, 4096).ok());
  struct statfs fs;
  if (::statfs(f.dir.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC) {
    MESSAGE("skipped: the test directory is on tmpfs");
    return false;
  }
  if (ResidentPages(f.Segments().back()) == 0) {
    MESSAGE("skipped: the page cache of the test directory cannot be seen with mincore");
    return false;
  }
  return true;
}

// The cached pages of the two sealed segments, once they are 0 or after
// `ms` milliseconds.
size_t SealedResident(LogFixture& f, int ms) {
  const auto segs = f.Segments();
  size_t resident = 0;
  for (int waited = 0;; waited += 10) {
    resident = ResidentPages(segs[0]) + ResidentPages(segs[1]);
    if (resident == 0 || waited >= ms) return resident;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

TEST_CASE_FIXTURE(LogFixture, "segments sealed by a roll leave the page cache") {
  if (!WriteThreeSegments(*this)) return;
  // The preparer drops them on its own thread: wait for it.
  CHECK(SealedResident(*this, 5000) == 0);
}

TEST_CASE_FIXTURE(LogFixture, "with recycling, sealed segments keep their pages (one is written over later)") {
  opts.recycle = true;
  if (!WriteThreeSegments(*this)) return;
  CHECK(SealedResident(*this, 300) > 0);
}
