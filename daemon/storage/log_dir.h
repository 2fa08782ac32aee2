// The log directory: its files, its lock, its meta file, and recovery.
//
//   DIR/wald.meta                    log id and trim point (FORMAT.md)
//   DIR/wald.lock                    flock'ed by the one process that writes
//   DIR/00000000000000000001.wal     segments, named by their first seq
//   DIR/*.tmp                        half-made files; removed at open
//
// Used by LogWriter (which locks and recovers) and by LogReader (which only
// lists and reads, and never writes or locks).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/env.h"
#include "storage/format.h"

namespace wald::storage {

// Told about every byte range that recovery or a reader leaves out.
class Reporter {
 public:
  enum class Kind {
    kTornTail,  // unsynced bytes cut at recovery: normal after a crash
    kDamage,    // bytes that were once valid and are not: never normal
  };
  virtual ~Reporter() = default;
  virtual void Report(Kind kind, const std::string& file, uint64_t offset, uint64_t bytes,
                      std::string_view reason) = 0;
};

struct SegmentFile {
  uint64_t first_seq;
  std::string path;
};

// Segment files of `dir`, sorted by first seq.
Result<std::vector<SegmentFile>> ListSegments(Env* env, const std::string& dir);

std::string JoinPath(const std::string& dir, std::string_view name);

// Writes `meta` to DIR/wald.meta atomically and durably: a temporary file,
// fdatasync, rename, fsync of the directory.
Status WriteMeta(Env* env, const std::string& dir, const Meta& meta);
Result<Meta> ReadMeta(Env* env, const std::string& dir);

// A writer's bound on the bytes it writes between two fdatasyncs (unless one
// record alone is larger). Recovery relies on it: after a crash only the last
// unsynced write can be torn, so a valid record found further than this past
// the first bad one proves damage to synced data. A writer also syncs a
// segment before it writes into the next one.
inline constexpr uint64_t kMaxUnsyncedWrite = 4u << 20;

enum class VerifyMode {
  kLastSegment,  // headers of all segments, records of the last one (fast open)
  kAll,          // every record of every segment
};

struct RecoveryOptions {
  VerifyMode verify = VerifyMode::kLastSegment;
  // Cut the log at the first damage instead of refusing to open. Everything
  // after that point is dropped (and reported).
  bool salvage = false;
  Reporter* reporter = nullptr;
};

struct RecoveredLog {
  Meta meta;
  std::vector<SegmentFile> segments;  // empty for a new log
  uint64_t next_seq = 1;              // seq of the next record to append
  uint64_t tail_offset = 0;           // in segments.back(): where it goes
};

// Brings a locked log directory to a consistent state: removes temporary
// files, finishes an interrupted trim, removes a segment whose roll did not
// complete, finds the end of the valid log and zeroes the torn tail after it
// (so that stale bytes can never be read as records again).
// Damage that is not a torn tail refuses with Corruption naming the file and
// offset, unless options.salvage. Creates no segment: a new log has none.
Result<RecoveredLog> Recover(Env* env, const std::string& dir, const Meta& meta, const RecoveryOptions& options);

// What VerifyLog found.
struct LogSummary {
  Meta meta;
  size_t segments = 0;
  uint64_t first_seq = 0;        // first record held (0 if none)
  uint64_t last_seq = 0;         // last valid record (0 if none)
  uint64_t records = 0;
  uint64_t payload_bytes = 0;
  uint64_t record_bytes = 0;     // encoded: headers, payloads, padding
  uint64_t torn_tail_bytes = 0;  // non-zero bytes after the last valid record
  uint64_t disk_bytes = 0;       // allocated blocks of every file in the directory
};

// Reads and checks every record of the log at `dir` without writing or
// locking (safe while a writer runs): headers, checksums, seq continuity
// within and across segments, and the same torn-tail rule as recovery. The
// first problem comes back as Corruption naming the file and offset; a torn
// tail is the normal end (counted in torn_tail_bytes).
Result<LogSummary> VerifyLog(Env* env, const std::string& dir);

}  // namespace wald::storage
