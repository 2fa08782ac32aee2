// LogWriter: appends encoded records to the segment files of one log
// directory and makes them durable. The mechanism only: the caller (the
// daemon's writer thread) decides when to Sync and what a failure means to
// its clients.
//
// Threading: every method is called from one thread, the writer thread. A
// helper thread owned by the LogWriter prepares the next segment (allocate,
// zero-fill, fdatasync) so that a roll never waits for 64 MiB of zeros, or
// hands over a released segment to reuse as it is (options.recycle).
//
// Failure: an I/O error from a write, fdatasync, roll or trim is permanent.
// Linux may have dropped the dirty pages that a failed fdatasync covered, so
// a retry that succeeds would prove nothing (PostgreSQL's 2018 lesson). From
// then on every call returns kFailed naming the first cause, durable_seq()
// never moves again, and the process should exit so that recovery runs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "storage/env.h"
#include "storage/fd_retry.h"
#include "storage/format.h"
#include "storage/holds.h"
#include "storage/log_dir.h"
#include "storage/recovery.h"

namespace wald::storage {

struct LogOptions {
  // Bytes per segment file, header included; preallocated in full.
  uint64_t segment_size = 64ull << 20;
  bool create_if_missing = true;
  RecoveryOptions recovery;
  // False: prepare the next segment on the calling thread when it is needed
  // (slower rolls, but deterministic: for tests that cut power at each step).
  bool prepare_in_background = true;
  // Out of descriptors (EMFILE/ENFILE) where the writer opens files (rolls,
  // trims, the spare segment, directory syncs), the writer waits and retries
  // (fd_retry.h) rather than fail-stop; this hears about it.
  FdWaitHook on_fd_wait;
  // Released segments become spares instead of being unlinked while a fresh
  // one is zero-filled (FORMAT.md, "Recycling"): one at a time waits. Off by
  // default: old payloads could then hold forged records (FORMAT.md).
  bool recycle = false;
  // Retention policy (ApplyRetention), 0: off. Sizes count whole segments
  // (segment_size each, as preallocated), the one being written included
  // for lag, excluded for retain_bytes.
  uint64_t retain_bytes = 0;  // sealed segments past this are released, oldest first
  // Sealed segments whose newest record is older than this are released.
  uint64_t retain_age_ns = 0;
  uint64_t max_hold_lag = 0;  // a hold further behind the end than this is dropped
  // Disk budget (0: none): the segment files, the spare included, never take
  // more than this. The writer does not enforce it: it says how far appends
  // may go (AppendLimit), and the caller refuses records past that. It never
  // releases anything itself.
  uint64_t max_disk = 0;
  // The largest encoded record the caller appends (0: a segment's room):
  // AppendLimit reserves the space a roll may leave unused at a segment's end.
  uint64_t max_record_bytes = 0;
};

// Records as EncodeRecord wrote them, back to back, with the contiguous seqs
// first_seq..last_seq, salted with `salt` (0: none). The bytes must stay
// valid during Append, which re-salts them in place if they go into a
// segment with another salt (SaltRecords): they are the writer's from the
// call on, not to be read as records again.
struct EncodedChunk {
  std::span<std::byte> bytes;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint32_t salt = 0;
};

class SegmentPreparer;

class LogWriter {
 public:
  // Opens `dir` (creating it and a new log if options.create_if_missing),
  // takes its lock (kBusy naming the holder's pid if another process has it),
  // recovers it (recovery.h: Recover) and readies a segment to append to.
  // Refuses a symlink (kNotALog), a file, or a non-empty directory without
  // wald.meta (kNotALog).
  static Result<std::unique_ptr<LogWriter>> Open(Env* env, const std::string& dir, const LogOptions& options);
  ~LogWriter();  // stops the helper thread; does not sync
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Writes the chunks (one pwritev in the common case). The first chunk's
  // first_seq must be next_seq(). Does not sync, except where it must: before
  // rolling to a new segment, and whenever kMaxUnsyncedWrite bytes are
  // written. Rolls when a record does not fit in the current segment.
  Status Append(std::span<const EncodedChunk> chunks);
  // fdatasync of what Append wrote; on success durable_seq() = next_seq() - 1.
  Status Sync();
  // A clean close: Sync, then record durable_seq() in wald.meta as the
  // durable floor, so that recovery can prove damage to any record at or
  // below it (FORMAT.md, "The durability rule"). In a recycled segment it
  // first zeroes the cut-off end of the old record the tail stopped in, so
  // that the next open finds nothing to call a torn tail. The writer stays
  // usable.
  Status Close();
  // Releases every whole segment whose records are all <= up_to (and
  // durable, and at or below every hold), never the one being written: the
  // newest of them becomes the next spare (options.recycle), the rest are
  // deleted.
  // Records the new start in wald.meta first, so a crash mid-trim finishes
  // the trim at the next open.
  Status Trim(uint64_t up_to);
  // Of the last Trim: the hold that kept back records it asked for, or "".
  const std::string& trim_held_by() const { return trim_held_by_; }

  // The retention policy of options: first drops every hold that lags more
  // than max_hold_lag behind the end (so that a dead consumer cannot fill
  // the disk; each goes to *invalidated), then releases the oldest sealed
  // segments while they take more than retain_bytes or are older than
  // retain_age_ns at `now_ns` (wall clock), never past a hold. Writes only
  // when something is released or dropped. For the writer's thread, between
  // batches: after a roll, and now and then for the age.
  //
  // A sealed segment's age is that of its newest record. Finding that record
  // would mean scanning the segment, so it is bounded from above instead by
  // the time of the record after it, the first of the next segment (seqs are
  // stamped in order; one small read per segment, remembered); where that
  // record carries no time (--stamp none), by the segment file's mtime.
  Status ApplyRetention(uint64_t now_ns, std::vector<Hold>* invalidated);
  // With options.max_disk: the appended_bytes() up to which Append never
  // needs a segment past the budget, for records of at most max_record_bytes
  // each. It only grows: with each release, and as rolls waste less than the
  // worst case it reserves. UINT64_MAX without a budget.
  uint64_t AppendLimit() const;
  // Encoded record bytes given to Append since Open.
  uint64_t appended_bytes() const { return appended_; }
  bool retention_enabled() const {
    return options_.retain_bytes > 0 || options_.retain_age_ns > 0 || options_.max_hold_lag > 0;
  }

  // Named holds (holds.h). SetHold creates a hold or moves it (either way) to
  // min(seq, durable_seq()). A seq below the trim point is refused
  // (kNotFound, naming the first seq held): what it asks to keep is gone.
  // kInvalidArgument for a bad name or one hold past kMaxHolds. Both replace
  // wald.holds durably before they return; a failed write is a failure of
  // the writer, like a failed append.
  Status SetHold(std::string_view name, uint64_t seq);
  Status ReleaseHold(std::string_view name);  // kNotFound if there is none
  const std::vector<Hold>& holds() const { return holds_; }
  // The bytes a hold at `seq` keeps: every segment from the one holding
  // seq + 1 to the end, whole (as allocated). What max_hold_lag compares.
  uint64_t HoldLagBytes(uint64_t seq) const;

  const LogId& log_id() const { return meta_.log_id; }
  const std::string& dir() const { return dir_; }
  uint64_t next_seq() const { return next_seq_; }
  // Every record with seq <= durable_seq() survived an fdatasync.
  uint64_t durable_seq() const { return durable_seq_; }
  // The salt of the segment the next record goes into, unless it rolls
  // first: records encoded with it need no second pass (Append).
  uint32_t segment_salt() const { return salts_.own; }
  // The oldest seq still held (trim point + 1).
  uint64_t first_seq() const { return meta_.trim_seq + 1; }
  size_t segment_count() const { return segments_.size(); }
  // The first seq of the segment being written: changes at every roll.
  uint64_t head_segment_seq() const { return segments_.empty() ? 0 : segments_.back().first_seq; }
  // OK, or the error that stopped this writer for good.
  const Status& failure() const { return failure_; }

 private:
  LogWriter(Env* env, std::string dir, const LogOptions& options);
  Status Fail(Status cause);  // records the first cause, returns it
  Status Failed() const;      // the kFailed status returned after a failure
  Status Flush();             // writes iov_ at tail_
  // Syncs, then continues in a prepared segment at next_seq_; gap_from != 0
  // records that seqs [gap_from, next_seq_) were retired by a salvage.
  Status Roll(uint64_t gap_from = 0);
  // Gathers `bytes` (records salted with `salt`) for the next write, salted
  // for the current segment.
  void Add(std::span<std::byte> bytes, uint32_t salt);
  // Of sealed segment i: a time no older than its newest record (see
  // ApplyRetention), 0 if unknown.
  uint64_t SealedTimeNs(size_t i);

  Env* const env_;
  const std::string dir_;
  const LogOptions options_;
  std::unique_ptr<DirLock> lock_;
  Meta meta_;
  std::vector<Hold> holds_;  // as in wald.holds
  std::string trim_held_by_;
  std::vector<SegmentFile> segments_;
  std::map<uint64_t, uint64_t> sealed_ns_;  // SealedTimeNs by first seq, once known
  std::unique_ptr<File> file_;              // segments_.back(), open for writing
  SegmentSalts salts_;                      // file_'s
  uint64_t tail_ = 0;                       // where the next write goes in file_
  uint64_t next_seq_ = 1;
  uint64_t durable_seq_ = 0;
  uint64_t unsynced_ = 0;   // bytes written or gathered since the last sync
  std::vector<iovec> iov_;  // gathered for the next write; reused
  size_t gathered_ = 0;     // bytes in iov_
  uint64_t appended_ = 0;   // record bytes given to Append since Open
  Status failure_;
  std::unique_ptr<SegmentPreparer> preparer_;
};

}  // namespace wald::storage
