// LogWriter's retention policy (log_writer.h, ApplyRetention): which sealed
// segments are old enough, or too many, to release, and which holds lag too
// far behind the end to keep. Members of LogWriter, kept apart from the
// append path in log_writer.cc because they are a policy on top of Trim.
#include <string>
#include <vector>

#include "storage/log_writer.h"

namespace wald::storage {

uint64_t LogWriter::SealedTimeNs(size_t i) {
  const uint64_t key = segments_[i].first_seq;
  if (auto it = sealed_ns_.find(key); it != sealed_ns_.end()) return it->second;
  uint64_t t = 0;
  // The next segment's first record, if it has one yet: a header, then
  // the whole record (its CRC covers it all).
  const SegmentFile& next = segments_[i + 1];
  bool settled = false;  // the answer will not change: remember it
  if (auto f = env_->Open(next.path, OpenMode::kRead); f.ok()) {
    SegmentHeader h;
    std::string why;
    const bool hdr_ok = ReadSegmentHeader(f->get(), &h, &why).ok() && why.empty();
    std::vector<std::byte> buf(kRecordHeaderSize + kMaxMetaSize);
    auto n = (*f)->ReadAt(kSegmentHeaderSize, buf.data(), buf.size());
    if (hdr_ok && n.ok() && *n == buf.size() && PeekSeq(buf) == next.first_seq) {
      const size_t size = PeekUnpaddedSize(buf);
      if (size > buf.size() && size <= options_.segment_size - kSegmentHeaderSize) {
        buf.resize(size);
        n = (*f)->ReadAt(kSegmentHeaderSize, buf.data(), size);
      }
      RecordView rec;
      if (n.ok() && *n == buf.size() && DecodeRecord(buf, &rec, SaltOf(h, meta_.salt_key)) == DecodeStatus::kOk &&
          rec.seq == next.first_seq) {
        settled = true;
        if (rec.meta.flags & kFlagTime) t = rec.meta.time_ns;
      }
    }
  }
  if (t == 0) t = env_->ModifiedTimeNs(segments_[i].path);
  if (settled && t != 0) sealed_ns_[key] = t;
  return t;
}

Status LogWriter::ApplyRetention(uint64_t now_ns, std::vector<Hold>* invalidated) {
  if (!failure_.ok()) return Failed();
  const uint64_t seg = options_.segment_size;
  if (options_.max_hold_lag > 0 && !holds_.empty()) {
    // A hold's lag: the segments from the one holding seq + 1 to the end.
    std::vector<Hold> next;
    for (const Hold& h : holds_) {
      if (HoldLagBytes(h.seq) > options_.max_hold_lag) {
        invalidated->push_back(h);
      } else {
        next.push_back(h);
      }
    }
    if (next.size() != holds_.size()) {
      Status st = RetryOutOfFds(options_.on_fd_wait, [&] { return WriteHolds(env_, dir_, next); });
      if (!st.ok()) return Fail(std::move(st));
      holds_ = std::move(next);
    }
  }
  // Segments [0, k) go: the oldest, sealed ones.
  const size_t sealed = segments_.size() - 1;
  size_t k = 0;
  if (options_.retain_bytes > 0) {
    const uint64_t keep = options_.retain_bytes / seg;
    if (sealed > keep) k = sealed - keep;
  }
  if (options_.retain_age_ns > 0 && now_ns > options_.retain_age_ns) {
    while (k < sealed) {
      const uint64_t t = SealedTimeNs(k);
      if (t == 0 || t >= now_ns - options_.retain_age_ns) break;
      ++k;
    }
  }
  if (k == 0) return Status::OK();
  // Up to the seq before the first segment kept.
  Status st = Trim(segments_[k].first_seq - 1);
  sealed_ns_.erase(sealed_ns_.begin(), sealed_ns_.lower_bound(segments_.front().first_seq));
  return st;
}

}  // namespace wald::storage
