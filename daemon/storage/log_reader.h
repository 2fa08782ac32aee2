// LogReader: reads records in seq order from a log directory, straight from
// the segment files. Takes no lock and writes nothing, so it is safe while a
// LogWriter in this or another process appends, and when none runs.
//
// At the end of what is written it stops cleanly (Next returns kEnd): a
// record being written is not an error. Calling Next again later continues,
// across segment rolls, so a reader can follow the log. Note that a reader
// can see records that are written but not yet durable; a caller that must
// not (the daemon serving Read) caps what it returns at its durable seq.
//
// A gap that a salvage left (FORMAT.md) is never skipped silently: Next says
// kGap with its range, then goes on.
//
// Damage (a segment that ends before the next one starts, a bad header) goes
// to the Reporter with file and offset, and Next returns kError. A segment
// released while it was being read, whose file the writer then reused, is
// not damage: kError with kNotFound (the records are trimmed).
//
// Not thread-safe: one thread uses a LogReader at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "storage/env.h"
#include "storage/log_dir.h"
#include "storage/segment_scanner.h"
#include "storage/shared_files.h"

namespace wald::storage {

class LogReader {
 public:
  // Positions the reader at `from_seq` (1 for the start). kNotFound if that
  // seq was trimmed, naming the first seq still held. `read_size` bounds the
  // usual read and so the buffer this reader keeps (see SegmentScanner):
  // small for many long-lived readers, large for one fast scan. With
  // `files`, segments are opened through it, sharing one descriptor with the
  // other readers of the same segment; it must outlive the reader.
  static Result<std::unique_ptr<LogReader>> Open(Env* env, const std::string& dir, uint64_t from_seq,
                                                 Reporter* reporter = nullptr,
                                                 size_t read_size = SegmentScanner::kDefaultReadSize,
                                                 SharedFiles* files = nullptr);

  enum class Step {
    kRecord,  // *rec is the next record, valid until the next call
    kGap,     // seqs gap_from()..gap_to() do not exist (a salvage retired
              // them); the next call continues after them
    kEnd,
    kError,
  };
  Step Next(RecordView* rec);
  // Frees the read buffer while the reader waits; the next Next reads afresh.
  void ReleaseBuffer() {
    if (scanner_) scanner_->ReleaseBuffer();
  }
  uint64_t gap_from() const { return gap_from_; }  // of the last kGap
  uint64_t gap_to() const { return gap_to_; }

  const Status& status() const { return status_; }
  const LogId& log_id() const { return meta_.log_id; }
  uint64_t next_seq() const;                // of the record Next would return
  const std::string& segment_path() const;  // of the last record returned
  uint64_t record_offset() const;           // ...and its offset in it
  uint64_t trim_seq() const { return meta_.trim_seq; }

 private:
  LogReader(Env* env, std::string dir, Reporter* reporter, size_t read_size, SharedFiles* files)
      : env_(env), dir_(std::move(dir)), reporter_(reporter), read_size_(read_size), files_(files) {}
  Result<std::shared_ptr<File>> OpenFile(const std::string& path);
  Status OpenSegment(const SegmentFile& seg);
  Step Error(Status st);

  Env* const env_;
  const std::string dir_;
  Reporter* const reporter_;
  const size_t read_size_;
  SharedFiles* const files_;  // may be null
  Meta meta_;
  uint64_t from_seq_ = 1;
  std::unique_ptr<SegmentScanner> scanner_;
  uint64_t cur_first_seq_ = 0;  // of scanner_'s segment
  uint64_t gap_from_ = 0;
  uint64_t gap_to_ = 0;
  Status status_;
};

}  // namespace wald::storage
