// SegmentPreparer: keeps one spare segment ready for LogWriter's next roll.
//
// A spare is DIR/spare-<n>.tmp, allocated to the segment size, zero-filled and
// fdatasynced, its directory synced. Pre-zeroed beats fallocate-only by about
// 2x in fdatasync latency for small appends on ext4 (an overwrite needs no
// unwritten-extent conversion in the journal); see FORMAT.md. Or, better, a
// released segment handed over by Donate: already allocated and written in
// full, it is ready as it is (--recycle).
//
// It also retires sealed segments (Retire): drops their cached pages and
// closes them, before it zero-fills the next spare, so that the spare's pages
// are the ones just freed rather than ones the kernel has not touched for a
// while (FORMAT.md, "Dropping sealed segments from the page cache").
//
// Threading: every public method is called from one thread, the writer
// thread. With `background`, the preparing, dropping and closing happen on a
// thread of the preparer's own, started by the constructor and joined by the
// destructor; without it (tests, tools) they happen inside Take and Retire.
//
// Failure: a failed preparation is handed to the next Take as its Result;
// the writer treats it as it treats any failed roll.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "storage/env.h"
#include "storage/fd_retry.h"
#include "storage/status.h"

namespace wald::storage {

class SegmentPreparer {
 public:
  SegmentPreparer(Env* env, std::string dir, uint64_t size, bool background, FdWaitHook on_fd_wait);
  ~SegmentPreparer();

  SegmentPreparer(const SegmentPreparer&) = delete;
  SegmentPreparer& operator=(const SegmentPreparer&) = delete;

  struct Spare {
    std::unique_ptr<File> file;
    std::string path;
    bool recycled = false;       // a released segment: it holds the old records
    uint64_t old_first_seq = 0;  // ...of the segment it was (version 5: salted)
  };

  // Whether a donated segment waits (one at a time does).
  bool has_donation();

  // `path` (a released segment, renamed and its directory synced) is to be
  // the next spare. Requires !has_donation().
  void Donate(std::string path);

  // `sealed` is complete and synced; nothing will write it again. Its cached
  // pages are dropped and it is closed (on the preparing thread when it runs
  // in the background).
  void Retire(std::unique_ptr<File> sealed);

  // Returns the prepared spare (waiting for it if needed) and starts on the
  // next one.
  Result<Spare> Take();

 private:
  void Run();
  Result<Spare> Prepare();

  Env* const env_;
  const std::string dir_;
  const uint64_t size_;
  const bool background_;
  const FdWaitHook on_fd_wait_;
  uint64_t counter_ = 0;  // only the preparing thread touches it
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Result<Spare>> ready_;          // guarded by mu_
  std::optional<std::string> donated_;          // guarded by mu_
  std::vector<std::unique_ptr<File>> retired_;  // guarded by mu_
  bool stop_ = false;                           // guarded by mu_
  std::thread thread_;
};

}  // namespace wald::storage
