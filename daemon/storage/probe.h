// What recovery (Recover) and verification (VerifyLog) share: the probe of
// what lies after the end of a segment's valid records, the verdict on it
// (the durability rule, recovery.h), and the wording of what they report.
// Internal to the storage library: included by recovery.cc, verify_log.cc
// and probe.cc only. Every function here reads; none writes or syncs.
#pragma once

#include <cstdint>
#include <string>

#include "storage/env.h"
#include "storage/format.h"

namespace wald::storage {

// What lies after the end of the valid log in a segment.
struct Probe {
  bool found_valid = false;   // a verifying record with seq >= min_seq
  uint64_t valid_offset = 0;  // the last such record starts here
  uint64_t valid_end = 0;     // ...and ends here
  uint64_t max_seq = 0;       // the highest seq among them
  uint64_t max_durable = 0;   // the highest durability stamp among them
  uint64_t stamp_seq = 0;     // the record that carries it
  uint64_t stamp_offset = 0;
  uint64_t nonzero_end = 0;  // end of the last non-zero byte range seen before any stale record
  uint64_t stale_from = 0;   // where the first stale record starts (0: none)
};

// Scans [from, end of file) at every record-aligned offset for records that
// verify and carry a seq >= min_seq (skipping over each one found), and for
// the extent of non-zero bytes. Preallocated space is zero, so this is fast
// where nothing was written.
//
// A recycled segment (FORMAT.md, "Recycling") holds the records of the
// segment it was before: they verify but carry seqs below `stale_below`, the
// segment's own first seq, which no record of this segment can have. Such a
// stale record is skipped whole, and the first one ends the range whose
// non-zero bytes count: from there on lies the old content (and the cut
// ends of older records), which was never written in this segment's life.
// Records with seq >= min_seq count wherever they lie.
//
// Records verify under the segment's salts (FORMAT.md, "Salted records"):
// its own for this segment's records, the stale one for the previous
// life's. A version-5 segment made from zeros has no previous life
// (salts.stale_known false), so nothing in it is stale.
Result<Probe> ProbeAfter(File* file, uint64_t from, uint64_t min_seq, uint64_t stale_below, const SegmentSalts& salts,
                         uint64_t limit = UINT64_MAX);

// The salts of a segment whose header does not verify for its name (a roll
// that did not complete, or damage). Its records were written salted for
// the name's first seq if the log was at version 5. What the file held
// before is told by the header there, if it verifies: a recycled file's
// header from its previous life, which the roll had not yet written over.
Result<SegmentSalts> SaltsOfUnnamed(File* file, uint64_t first_seq, const Meta& meta);

// The verdict on a stop at `stop` where seq `expected` was due, in the newest
// segment: the durability rule (recovery.h).
struct Verdict {
  bool damage = false;
  std::string evidence;    // why seq `expected` was durable
  uint64_t lost_to = 0;    // the highest seq known to have existed or been durable
  uint64_t retire_to = 0;  // what a salvage retires: lost_to, or more where damaged bytes may hide records
};

// Judges probe `p` of what follows the stop by the durability rule.
// `sealed_by`: the first seq of a newer segment whose roll did not complete
// and that recovery removed (0: none). Its file exists only because this
// segment was synced in full first (LogWriter::Roll), so this segment must end
// exactly there.
Verdict Judge(const Probe& p, uint64_t stop, uint64_t expected, const Meta& meta, uint64_t sealed_by = 0);

// "path offset N", for messages.
std::string At(const std::string& path, uint64_t offset);

// The .broken file that the bytes from `offset` of `path` go to.
std::string SideName(const std::string& path, uint64_t offset);

// Why a stop at `stop` (for `reason`) where seq `expected` was due is damage,
// not a torn tail (v.damage), and the way out.
std::string DamageMessage(const std::string& path, uint64_t stop, const std::string& reason, uint64_t expected,
                          const Verdict& v, const std::string& dir);

// Where segment i+1 says segment i ends: at its first seq, or at the start of
// the gap a salvage left before it.
uint64_t StartOf(const SegmentHeader& next);

}  // namespace wald::storage
