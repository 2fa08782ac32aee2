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
#include <span>
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
    kGap,       // seqs a salvage cut: they do not exist (offset: first seq, bytes:
                // count)
  };
  virtual ~Reporter() = default;
  virtual void Report(Kind kind, const std::string& file, uint64_t offset, uint64_t bytes, std::string_view reason) = 0;
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
// Replaces dir/name with `bytes` so that a crash leaves the old file or the
// new one: writes name.tmp, fdatasyncs it, renames it over name, syncs dir.
// A name.tmp left by a crash is removed first (and by recovery).
Status ReplaceFile(Env* env, const std::string& dir, std::string_view name, std::span<const std::byte> bytes);
Status WriteMeta(Env* env, const std::string& dir, const Meta& meta);
Result<Meta> ReadMeta(Env* env, const std::string& dir);

// Reads the kSegmentHeaderSize-byte header at offset 0 of `file` and decodes
// it into *out. Returns the read's error, if the read failed. Otherwise sets
// *why to "" if the header decoded, else to why it is invalid (a file shorter
// than a header included): then *out is unspecified. Checks neither the log
// id nor the first seq against the file's name; that is the caller's, as is
// what an invalid header means (damage, an incomplete roll, or only "not
// salted"). Reads, never writes; the caller's thread.
Status ReadSegmentHeader(File* file, SegmentHeader* out, std::string* why);

// A writer's bound on the bytes it writes between two fdatasyncs (unless one
// record alone is larger). Recovery relies on it: after a crash only the last
// unsynced write can be torn, so a valid record found further than this past
// the first bad one proves damage to synced data. A writer also syncs a
// segment before it writes into the next one.
inline constexpr uint64_t kMaxUnsyncedWrite = 4u << 20;

}  // namespace wald::storage
