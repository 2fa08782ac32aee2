#include "storage/log_reader.h"

namespace wald::storage {

Result<std::unique_ptr<LogReader>> LogReader::Open(Env* env, const std::string& dir, uint64_t from_seq,
                                                   Reporter* reporter, size_t read_size, SharedFiles* files) {
  FileKind kind = env->Kind(dir);
  if (kind == FileKind::kMissing) return Status::NotFound("log directory " + dir + " does not exist");
  if (kind != FileKind::kDirectory) return Status::NotALog(dir + " is not a directory");
  auto meta = ReadMeta(env, dir);
  if (!meta.ok()) {
    if (meta.status().code() == Code::kNotFound) {
      return Status::NotALog(dir + " has no " + std::string(kMetaFileName) + ": not a wald log directory");
    }
    return meta.take_status();
  }
  std::unique_ptr<LogReader> r(new LogReader(env, dir, reporter, read_size, files));
  r->meta_ = *meta;
  r->from_seq_ = from_seq == 0 ? 1 : from_seq;
  auto segs = ListSegments(env, dir);
  if (!segs.ok()) return segs.take_status();
  if (segs->empty()) return r;  // a new log: nothing yet
  if (r->from_seq_ < segs->front().first_seq) {
    return Status::NotFound("seq " + std::to_string(r->from_seq_) + " is trimmed; the first seq held is " +
                            std::to_string(segs->front().first_seq));
  }
  // The segment that holds from_seq: the last one starting at or before it.
  const SegmentFile* at = &segs->front();
  for (const SegmentFile& s : *segs) {
    if (s.first_seq <= r->from_seq_) at = &s;
  }
  WALD_RETURN_IF_ERROR(r->OpenSegment(*at));
  return r;
}

Result<std::shared_ptr<File>> LogReader::OpenFile(const std::string& path) {
  if (files_ != nullptr) return files_->Open(path);
  auto f = env_->Open(path, OpenMode::kRead);
  if (!f.ok()) return f.take_status();
  return std::shared_ptr<File>(std::move(*f));
}

Status LogReader::OpenSegment(const SegmentFile& seg) {
  auto f = OpenFile(seg.path);
  if (!f.ok()) return f.take_status();
  auto sc = std::make_unique<SegmentScanner>(std::move(*f), seg.first_seq, read_size_);
  // A log older than version 5 gets its salt key when a daemon next opens
  // it: a reader that outlives that restart needs the key for the salted
  // segments that follow.
  if (meta_.version < kFirstSaltedVersion) {
    auto m = ReadMeta(env_, dir_);
    if (!m.ok()) return m.take_status();
    meta_ = *m;
  }
  SegmentHeader h;
  Status st = sc->ReadHeader(&meta_.log_id, meta_.salt_key, &h);
  if (!st.ok()) {
    // Released since it was listed, and its file reused (a cached
    // descriptor shows the new segment): trimmed, not damage.
    if (env_->Kind(seg.path) == FileKind::kMissing) {
      return Status::NotFound(seg.path + " was released (trimmed) while being opened");
    }
    // A segment being rolled into may not have its header yet: not damage
    // unless it is not the newest (checked by the caller's retry).
    return st;
  }
  scanner_ = std::move(sc);
  cur_first_seq_ = seg.first_seq;
  return Status::OK();
}

LogReader::Step LogReader::Error(Status st) {
  status_ = std::move(st);
  return Step::kError;
}

uint64_t LogReader::next_seq() const { return scanner_ ? scanner_->next_seq() : from_seq_; }

const std::string& LogReader::segment_path() const {
  static const std::string kNone;
  return scanner_ ? scanner_->path() : kNone;
}

uint64_t LogReader::record_offset() const { return scanner_ ? scanner_->record_offset() : 0; }

LogReader::Step LogReader::Next(RecordView* rec) {
  if (!status_.ok()) return Step::kError;
  bool reread = false;  // this segment's end was read again after a newer one was seen
  for (;;) {
    if (scanner_ == nullptr) {  // a log that had no segment yet
      auto segs = ListSegments(env_, dir_);
      if (!segs.ok()) return Error(segs.take_status());
      if (segs->empty()) return Step::kEnd;
      if (Status st = OpenSegment(segs->front()); !st.ok()) {
        return st.code() == Code::kCorruption && segs->size() == 1 ? Step::kEnd : Error(std::move(st));
      }
    }
    SegmentScanner::Step s;
    while ((s = scanner_->Next(rec)) == SegmentScanner::Step::kRecord) {
      if (rec->seq >= from_seq_) return Step::kRecord;
    }
    if (s == SegmentScanner::Step::kError) return Error(scanner_->status());
    // Stopped. The end of the log, unless a newer segment exists: a writer
    // syncs and completes a segment before it creates the next, so then this
    // one must continue exactly where the next begins.
    const uint64_t want = scanner_->next_seq();
    auto segs = ListSegments(env_, dir_);
    if (!segs.ok()) return Error(segs.take_status());
    const SegmentFile* next = nullptr;
    for (const SegmentFile& seg : *segs) {
      if (seg.first_seq > cur_first_seq_) {
        next = &seg;
        break;
      }
    }
    if (next == nullptr) return Step::kEnd;
    if (next->first_seq != want) {
      // A salvage gap: the next segment's header says where this one ends.
      auto f = OpenFile(next->path);
      if (!f.ok()) return Error(f.take_status());
      SegmentScanner peek(std::move(*f), next->first_seq);
      SegmentHeader nh;
      if (peek.ReadHeader(&meta_.log_id, meta_.salt_key, &nh).ok() && nh.gap_from == want) {
        if (Status st = OpenSegment(*next); !st.ok()) return Error(std::move(st));
        gap_from_ = want;
        gap_to_ = next->first_seq - 1;
        if (gap_to_ < from_seq_) continue;  // the reader starts past it
        if (reporter_ != nullptr) {
          reporter_->Report(Reporter::Kind::kGap, next->path, gap_from_, gap_to_ - gap_from_ + 1,
                            "seqs retired by a salvage");
        }
        return Step::kGap;
      }
    }
    if (next->first_seq == want) {
      if (Status st = OpenSegment(*next); !st.ok()) {
        // Its header is not written yet: the roll is under way.
        if (st.code() == Code::kCorruption && &*next == &segs->back()) return Step::kEnd;
        return Error(std::move(st));
      }
      reread = false;
      continue;
    }
    // The next segment starts later than this one ends. We may have read this
    // one before the writer finished it: read once more before calling it
    // damage.
    if (!reread) {
      reread = true;
      continue;
    }
    // Released under us, and its file recycled as a newer segment (a trim:
    // LogWriter::Trim): what the descriptor shows is no longer this segment.
    if (env_->Kind(scanner_->path()) == FileKind::kMissing) {
      return Error(Status::NotFound(scanner_->path() + " was released (trimmed) while seq " + std::to_string(want) +
                                    " was being read"));
    }
    const std::string why = scanner_->stop_reason() + " before seq " + std::to_string(want) +
                            ", but the next segment starts at seq " + std::to_string(next->first_seq);
    if (reporter_ != nullptr) reporter_->Report(Reporter::Kind::kDamage, scanner_->path(), scanner_->offset(), 0, why);
    return Error(Status::Corruption(scanner_->path() + " offset " + std::to_string(scanner_->offset()) + ": " + why));
  }
}

}  // namespace wald::storage
