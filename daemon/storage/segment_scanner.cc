#include "storage/segment_scanner.h"

#include <algorithm>
#include <cstring>

#include "storage/log_dir.h"

namespace wald::storage {
SegmentScanner::SegmentScanner(std::shared_ptr<File> file, uint64_t first_seq, size_t read_size)
    : file_(std::move(file)), next_seq_(first_seq), read_size_(read_size) {}

Status SegmentScanner::ReadHeader(const LogId* log_id, uint32_t salt_key, SegmentHeader* out) {
  const uint64_t named_seq = next_seq_;
  std::string why;
  WALD_RETURN_IF_ERROR(ReadSegmentHeader(file_.get(), out, &why));
  if (why.empty() && log_id != nullptr && out->log_id != *log_id) why = "log id differs from this log's";
  if (why.empty() && out->first_seq != named_seq) {
    why = "first seq " + std::to_string(out->first_seq) + " differs from the file name's";
  }
  if (!why.empty()) return Status::Corruption(path() + " offset 0: bad segment header: " + why);
  salt_ = SaltOf(*out, salt_key);
  return Status::OK();
}

Result<size_t> SegmentScanner::Fill(size_t need) {
  size_t pos = static_cast<size_t>(offset_ - buf_offset_);
  if (offset_ < buf_offset_ || pos > buf_len_) {  // outside the buffer: start afresh
    buf_offset_ = offset_;
    buf_len_ = 0;
    pos = 0;
  }
  if (buf_len_ - pos >= need) return buf_len_ - pos;
  // Move the unread bytes to the front and read more behind them.
  if (pos > 0) {
    std::memmove(buf_.get(), buf_.get() + pos, buf_len_ - pos);
    buf_len_ -= pos;
    buf_offset_ = offset_;
  }
  if (const size_t want = std::max(need, read_size_); buf_cap_ < want) {
    auto bigger = std::make_unique_for_overwrite<std::byte[]>(want);
    if (buf_len_ > 0) std::memcpy(bigger.get(), buf_.get(), buf_len_);
    buf_ = std::move(bigger);
    buf_cap_ = want;
  }
  auto n = file_->ReadAt(buf_offset_ + buf_len_, buf_.get() + buf_len_, buf_cap_ - buf_len_);
  if (!n.ok()) return n.take_status();
  buf_len_ += *n;
  return buf_len_;
}

void SegmentScanner::ReleaseBuffer() {
  buf_.reset();
  buf_cap_ = 0;
  buf_len_ = 0;
  buf_offset_ = offset_;
}

void SegmentScanner::Stop(std::string reason) {
  stop_reason_ = std::move(reason);
  buf_len_ = 0;  // the next call re-reads: the file may have grown
  buf_offset_ = offset_;
}

SegmentScanner::Step SegmentScanner::Next(RecordView* rec) {
  auto avail = Fill(kRecordHeaderSize);
  if (!avail.ok()) {
    status_ = avail.take_status();
    return Step::kError;
  }
  if (*avail < kRecordHeaderSize) {
    Stop(*avail == 0 ? "end of file" : "truncated record header at end of file");
    return Step::kStop;
  }
  const size_t pos = static_cast<size_t>(offset_ - buf_offset_);
  const size_t size = PeekEncodedSize(std::span(buf_.get() + pos, kRecordHeaderSize));
  if (size > *avail && size > read_size_) {
    // Only a record larger than the buffer makes it grow: first check that
    // the file holds that much, so that a damaged length word near the end of
    // a file (up to 16 MiB) costs no allocation.
    auto file_size = file_->Size();
    if (!file_size.ok()) {
      status_ = file_size.take_status();
      return Step::kError;
    }
    if (offset_ + PeekUnpaddedSize(std::span(buf_.get() + pos, kRecordHeaderSize)) > *file_size) {
      Stop(DecodeStatusName(DecodeStatus::kTruncated));
      return Step::kStop;
    }
  }
  if (size > kRecordHeaderSize) {
    avail = Fill(size);
    if (!avail.ok()) {
      status_ = avail.take_status();
      return Step::kError;
    }
  }
  const size_t at = static_cast<size_t>(offset_ - buf_offset_);
  DecodeStatus ds = DecodeRecord(std::span(buf_.get() + at, buf_len_ - at), rec, salt_);
  if (ds != DecodeStatus::kOk) {
    Stop(DecodeStatusName(ds));
    return Step::kStop;
  }
  if (rec->seq != next_seq_) {
    Stop("seq " + std::to_string(rec->seq) + " where " + std::to_string(next_seq_) + " was expected");
    return Step::kStop;
  }
  record_offset_ = offset_;
  offset_ += rec->encoded_size;
  ++next_seq_;
  stop_reason_.clear();
  return Step::kRecord;
}

}  // namespace wald::storage
