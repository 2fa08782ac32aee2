// Test helpers for the storage layer: a temporary log directory, a writer on
// the real or the fault-injecting Env, deterministic payloads, and short
// verbs that damage files (after LevelDB's log_test).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "storage/fault_env.h"
#include "storage/log_reader.h"
#include "storage/log_writer.h"

namespace wald::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Remembers every report.
class RecordingReporter : public storage::Reporter {
 public:
  struct Entry {
    Kind kind;
    std::string file;
    uint64_t offset;
    uint64_t bytes;
    std::string reason;
  };
  void Report(Kind kind, const std::string& file, uint64_t offset, uint64_t bytes, std::string_view reason) override {
    entries.push_back({kind, file, offset, bytes, std::string(reason)});
  }
  size_t Count(Kind k) const;
  std::vector<Entry> entries;
};

// The payload the tests write for a seq: its size and bytes follow from it.
std::string PayloadFor(uint64_t seq, size_t size);

struct ReadRecord {
  uint64_t seq;
  std::string payload;
  std::string segment;
  uint64_t offset;
  storage::RecordMeta meta;
};

class LogFixture {
 public:
  LogFixture();
  ~LogFixture();

  // Opens `dir` with `opts` on `env` (the FaultEnv by default).
  storage::Status Open();
  // Like a crash after the last Sync (a SIGKILL: nothing is lost, but no
  // clean-stop marker is written).
  void Close() { w.reset(); }
  // A clean stop: LogWriter::Close records the durable floor.
  storage::Status CleanClose() {
    storage::Status st = w->Close();
    w.reset();
    return st;
  }
  // Encodes the payloads with the next seqs, appends them as one chunk and,
  // if `sync`, syncs.
  storage::Status Write(const std::vector<std::string>& payloads, bool sync = true);
  // Writes `n` records of PayloadFor(seq, size) in batches of `batch`.
  storage::Status WriteN(uint64_t n, size_t size, size_t batch = 16);
  // Everything a fresh LogReader yields from `from` to the end; the gaps it
  // crossed go to `gaps`.
  std::vector<ReadRecord> ReadAll(uint64_t from = 1);
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  std::vector<std::string> Segments();  // paths, in order

  // Damage.
  void FlipByte(const std::string& path, uint64_t offset);
  void ZeroBytes(const std::string& path, uint64_t offset, uint64_t n);
  // The *.broken files recovery set aside.
  std::vector<std::string> SideFiles();

  TempDir tmp;
  std::string dir;
  storage::FaultEnv fault{storage::Env::Posix()};
  storage::Env* env = &fault;
  RecordingReporter reporter;
  storage::LogOptions opts;
  // The metadata Write stamps on each record (and kFlagDurable on the first).
  uint32_t record_flags = storage::kFlagTime | storage::kFlagProducer;
  // Write encodes records salted for the segment being written (as the
  // daemon's loop does), not unsalted.
  bool encode_salted = false;
  std::unique_ptr<storage::LogWriter> w;
};

// Open, write `n` records of `size` bytes, close: the common start.
void Populate(LogFixture& f, uint64_t n, size_t size);

// The mutating operations `step` makes on a log that `setup` prepared: the
// crash points a test goes through.
int64_t CountOps(const std::function<void(LogFixture&)>& setup,
                 const std::function<storage::Status(LogFixture&)>& step);

}  // namespace wald::test
