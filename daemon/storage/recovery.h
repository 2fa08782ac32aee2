// Recovery and verification: where the valid log ends, and whether what
// follows is a torn tail (the last unsynced write, cut quietly) or damage to
// durable records (refused). The rule and its proof are in FORMAT.md,
// "The durability rule"; in short, a missing or invalid record at seq S is
// damage when the log itself proves S was durable:
//   - wald.meta's durable floor is >= S (a clean close, or an earlier
//     recovery, synced everything up to it), or
//   - a later valid record carries a durability stamp >= S (it was encoded
//     after S survived an fdatasync), or
//   - a later valid record ends more than kMaxUnsyncedWrite past the stop
//     (further than one unsynced write can reach).
// Otherwise nothing in the log was proven durable past S, and the bytes after
// it can only be the unsynced write a crash tore.
//
// Recovery never destroys bytes: before a torn tail is zeroed or a salvage
// cuts, the bytes are copied to "<segment>.<offset>.broken" beside the
// segment (a whole segment is renamed to "<segment>.0.broken").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storage/env.h"
#include "storage/format.h"
#include "storage/log_dir.h"

namespace wald::storage {

enum class VerifyMode {
  kLastSegment,  // headers of all segments, records of the last one (fast open)
  kAll,          // every record of every segment
};

struct RecoveryOptions {
  VerifyMode verify = VerifyMode::kLastSegment;
  // Cut the log at the first damage instead of refusing to open. The bytes
  // after the cut go to a .broken file; every seq that may have been acked
  // past the cut is retired (Meta::salvage_floor), so the log continues with
  // a gap instead of handing such a seq out again.
  bool salvage = false;
  Reporter* reporter = nullptr;
};

struct RecoveredLog {
  Meta meta;                          // as on disk after recovery
  std::vector<SegmentFile> segments;  // empty for a new log
  uint64_t next_seq = 1;              // seq of the next record, before any salvage gap
  uint64_t tail_offset = 0;           // in segments.back(): where it goes
  SegmentHeader tail_header;          // segments.back()'s
};

// Brings a locked log directory to a consistent state: removes temporary
// files, finishes an interrupted trim, sets aside a segment whose roll did
// not complete, finds the end of the valid log, sets the torn tail aside and
// zeroes it, and syncs the newest segment (so that everything kept is
// durable). Damage refuses with Corruption naming file, offset, the seqs that
// would be lost and the way out, unless options.salvage. Creates no segment.
// When the returned meta.salvage_floor >= next_seq, the caller must continue
// at salvage_floor + 1 in a new segment that records the gap.
Result<RecoveredLog> Recover(Env* env, const std::string& dir, const Meta& meta, const RecoveryOptions& options);

// In a segment whose records end at `from`: the end of the non-zero bytes
// that follow before the first record of the file's previous life (a
// recycled segment: seq below `first_seq`), looking at most `window` bytes
// on; `from` if there are none. What recovery would call a torn tail, and
// what a clean close zeroes so that it never does (LogWriter::Close).
// `salts`: the segment's (SaltsOf its header).
Result<uint64_t> TailGarbageEnd(File* file, uint64_t from, uint64_t first_seq, const SegmentSalts& salts,
                                uint64_t window);

// Writes zeros over [from, to) of `file` (no sync).
Status ZeroRange(File* file, uint64_t from, uint64_t to);

struct SideFile {
  std::string path;
  uint64_t bytes;
};

// What VerifyLog found.
struct LogSummary {
  Meta meta;
  size_t segments = 0;
  uint64_t first_seq = 0;  // first record held (0 if none)
  uint64_t last_seq = 0;   // last valid record (0 if none)
  uint64_t records = 0;
  uint64_t payload_bytes = 0;
  uint64_t record_bytes = 0;         // encoded: headers, metadata, payloads, padding
  uint64_t torn_tail_bytes = 0;      // non-zero bytes after the last valid record
  uint64_t proven_durable = 0;       // highest seq the log proves durable
  uint64_t gap_seqs = 0;             // seqs a salvage cut (never readable)
  uint64_t disk_bytes = 0;           // allocated blocks of every file in the directory
  std::vector<SideFile> side_files;  // *.broken: bytes recovery set aside
};

// Reads and checks every record of the log at `dir` without writing or
// locking (safe while a writer runs): headers, checksums, seq continuity
// within and across segments (salvage gaps included), and the same rule as
// recovery. Damage comes back as Corruption naming file, offset and seqs; a
// torn tail past the proven-durable point is the normal end (counted in
// torn_tail_bytes).
Result<LogSummary> VerifyLog(Env* env, const std::string& dir);

}  // namespace wald::storage
