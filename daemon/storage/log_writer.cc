#include "storage/log_writer.h"

#include <sys/random.h>

#include <algorithm>

#include "storage/segment_preparer.h"

namespace wald::storage {

namespace {

// The secret a new or upgraded log's segment salts derive from.
Result<uint32_t> NewSaltKey() {
  uint32_t key = 0;
  while (key == 0) {
    if (getrandom(&key, sizeof key, 0) != static_cast<ssize_t>(sizeof key)) {
      return Status::IoError("getrandom for a salt key", errno);
    }
  }
  return key;
}

}  // namespace

LogWriter::LogWriter(Env* env, std::string dir, const LogOptions& options)
    : env_(env), dir_(std::move(dir)), options_(options) {}

LogWriter::~LogWriter() = default;

Result<std::unique_ptr<LogWriter>> LogWriter::Open(Env* env, const std::string& dir, const LogOptions& options) {
  if (options.segment_size < kSegmentHeaderSize + EncodedSize(0) || options.segment_size % kRecordAlign != 0) {
    return Status::InvalidArgument("segment size " + std::to_string(options.segment_size) +
                                   " is too small or not a multiple of 8");
  }
  switch (env->Kind(dir)) {
    case FileKind::kMissing: {
      if (!options.create_if_missing) return Status::NotFound("log directory " + dir + " does not exist");
      WALD_RETURN_IF_ERROR(env->CreateDir(dir));
      auto slash = dir.find_last_of('/');
      WALD_RETURN_IF_ERROR(env->SyncDir(slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash)));
      break;
    }
    case FileKind::kDirectory: WALD_RETURN_IF_ERROR(env->CheckPrivateDir(dir)); break;
    case FileKind::kSymlink: return Status::NotALog(dir + " is a symbolic link; give the directory's real path");
    default: return Status::NotALog(dir + " exists and is not a directory");
  }
  std::unique_ptr<LogWriter> w(new LogWriter(env, dir, options));
  auto lock = env->Lock(JoinPath(dir, kLockFileName));
  if (!lock.ok()) return lock.take_status();
  w->lock_ = std::move(*lock);

  auto meta = ReadMeta(env, dir);
  if (meta.ok()) {
    w->meta_ = *meta;
    // A log from before version 5 gets its salt key now, before recovery:
    // a salvage rewrites wald.meta (as version 5), and must write the key
    // with it.
    if (w->meta_.version < kFirstSaltedVersion) {
      auto key = NewSaltKey();
      if (!key.ok()) return key.take_status();
      w->meta_.salt_key = *key;
    }
  } else if (meta.status().code() == Code::kNotFound) {
    auto names = env->ListDir(dir);
    if (!names.ok()) return names.take_status();
    for (const std::string& n : *names) {
      if (n != kLockFileName) {
        return Status::NotALog(dir + " holds files (" + n + ") but no " + std::string(kMetaFileName) +
                               ": not a wald log directory");
      }
    }
    if (getrandom(w->meta_.log_id.data(), w->meta_.log_id.size(), 0) != static_cast<ssize_t>(w->meta_.log_id.size())) {
      return Status::IoError("getrandom for a new log id", errno);
    }
    auto key = NewSaltKey();
    if (!key.ok()) return key.take_status();
    w->meta_.salt_key = *key;
    WALD_RETURN_IF_ERROR(WriteMeta(env, dir, w->meta_));
  } else {
    return meta.take_status();
  }

  auto rec = Recover(env, dir, w->meta_, options.recovery);
  if (!rec.ok()) return rec.take_status();
  auto holds = ReadHolds(env, dir);
  if (!holds.ok()) return holds.take_status();
  w->holds_ = std::move(*holds);
  w->meta_ = rec->meta;
  w->segments_ = std::move(rec->segments);
  w->next_seq_ = rec->next_seq;
  w->durable_seq_ = rec->next_seq - 1;  // recovery synced what it kept
  // Recorded so that damage to what recovery kept is provable later, even if
  // no record is ever written after it. An older meta is rewritten as the
  // current version before any record of the current one is written, so that
  // an older daemon refuses the log rather than misreading its records; from
  // version 5 on it holds the salt key (drawn above).
  if (w->durable_seq_ > w->meta_.durable_floor || w->meta_.version < kFormatVersion) {
    Meta next = w->meta_;
    next.durable_floor = std::max(next.durable_floor, w->durable_seq_);
    next.version = kFormatVersion;
    WALD_RETURN_IF_ERROR(WriteMeta(env, dir, next));
    w->meta_ = next;
  }
  w->preparer_ = std::make_unique<SegmentPreparer>(env, dir, options.segment_size, options.prepare_in_background,
                                                   options.on_fd_wait);
  if (!w->segments_.empty()) {
    auto f = env->Open(w->segments_.back().path, OpenMode::kReadWrite);
    if (!f.ok()) return f.take_status();
    w->file_ = std::move(*f);
    w->tail_ = rec->tail_offset;
    w->salts_ = SaltsOf(rec->tail_header, w->meta_.salt_key);
  }
  if (w->meta_.salvage_floor >= w->next_seq_ && w->segments_.empty()) {
    // A salvage set aside every segment: nothing precedes the retired seqs,
    // so they are released like a trim (a read below gets Trimmed), and the
    // log starts again above them.
    Meta next = w->meta_;
    next.trim_seq = next.salvage_floor;
    WALD_RETURN_IF_ERROR(WriteMeta(env, dir, next));
    w->meta_ = next;
    w->next_seq_ = next.trim_seq + 1;
    w->durable_seq_ = next.trim_seq;
  }
  if (w->meta_.salvage_floor >= w->next_seq_) {
    // A salvage retired the seqs up to salvage_floor: some may have been
    // acked. Continue above them in a new segment whose header records the
    // gap, so that readers can say which seqs do not exist.
    const uint64_t gap_from = w->next_seq_;
    w->next_seq_ = w->meta_.salvage_floor + 1;
    w->durable_seq_ = w->meta_.salvage_floor;
    WALD_RETURN_IF_ERROR(w->Roll(gap_from));
    WALD_RETURN_IF_ERROR(w->Sync());  // the gap is on disk before anything is acked above it
    if (options.recovery.reporter != nullptr) {
      options.recovery.reporter->Report(Reporter::Kind::kGap, w->segments_.back().path, gap_from,
                                        w->next_seq_ - gap_from, "seqs retired by a salvage");
    }
  } else if (w->segments_.empty()) {
    WALD_RETURN_IF_ERROR(w->Roll());
  } else if (rec->tail_header.version < kFirstSaltedVersion) {
    // A log from before version 5: its newest segment's records are not
    // salted. New records go into a new, salted segment, so that the newest
    // segment is always one whose records recovery can verify from the name
    // alone when its header does not (SaltsOfUnnamed). An empty one is
    // replaced: a roll makes a segment with the same first seq and name.
    uint64_t gap_from = 0;
    if (w->tail_ == kSegmentHeaderSize) {
      gap_from = rec->tail_header.gap_from;
      w->segments_.pop_back();
    }
    WALD_RETURN_IF_ERROR(w->Roll(gap_from));
    WALD_RETURN_IF_ERROR(w->Sync());
  }
  return w;
}

Status LogWriter::Close() {
  WALD_RETURN_IF_ERROR(Sync());
  if (file_) {
    // Records written over a recycled segment's old ones stop inside one of
    // them: its cut-off end would read as a torn tail at the next open. (In
    // a pre-zeroed segment the bytes after the tail are zero: a read.)
    const uint64_t window = std::max<uint64_t>(kMaxUnsyncedWrite, options_.max_record_bytes + kRecordHeaderSize);
    auto end = TailGarbageEnd(file_.get(), tail_, segments_.back().first_seq, salts_, window);
    if (!end.ok()) return Fail(end.take_status());
    if (*end > tail_) {
      Status st = ZeroRange(file_.get(), tail_, *end);
      if (st.ok()) st = file_->DataSync();
      if (!st.ok()) return Fail(std::move(st));
    }
  }
  if (durable_seq_ <= meta_.durable_floor) return Status::OK();
  Meta next = meta_;
  next.durable_floor = durable_seq_;
  Status st = RetryOutOfFds(options_.on_fd_wait, [&] { return WriteMeta(env_, dir_, next); });
  if (!st.ok()) return Fail(std::move(st));
  meta_ = next;
  return Status::OK();
}

Status LogWriter::Fail(Status cause) {
  if (failure_.ok()) failure_ = cause;
  return cause;
}

Status LogWriter::Failed() const {
  return Status::Failed("the log writer stopped after an earlier error: " + failure_.ToString());
}

void LogWriter::Add(std::span<std::byte> bytes, uint32_t salt) {
  if (salt != salts_.own) SaltRecords(bytes, salt ^ salts_.own);
  iov_.push_back({bytes.data(), bytes.size()});
  gathered_ += bytes.size();
  appended_ += bytes.size();
  unsynced_ += bytes.size();
}

Status LogWriter::Flush() {
  if (gathered_ == 0) return Status::OK();
  Status st = file_->WriteAt(tail_, iov_);
  if (!st.ok()) return Fail(std::move(st));
  tail_ += gathered_;
  iov_.clear();
  gathered_ = 0;
  return Status::OK();
}

Status LogWriter::Append(std::span<const EncodedChunk> chunks) {
  if (!failure_.ok()) return Failed();
  for (const EncodedChunk& c : chunks) {
    if (c.first_seq != next_seq_ || c.last_seq < c.first_seq) {
      return Fail(Status::InvalidArgument("chunk of seqs " + std::to_string(c.first_seq) + ".." +
                                          std::to_string(c.last_seq) + " does not continue at seq " +
                                          std::to_string(next_seq_)));
    }
    std::span<std::byte> rest = c.bytes;
    while (!rest.empty()) {
      const uint64_t room = options_.segment_size - tail_ - gathered_;
      const uint64_t window = kMaxUnsyncedWrite - std::min(unsynced_, kMaxUnsyncedWrite);
      if (rest.size() <= room && rest.size() <= window) {  // the common case
        Add(rest, c.salt);
        next_seq_ = c.last_seq + 1;
        break;
      }
      // Split at a record boundary: take what fits in the segment and in the
      // unsynced-write window (at least one record into an empty window).
      size_t take = 0;
      uint64_t n = 0;
      while (take < rest.size()) {
        const size_t sz = PeekEncodedSize(rest.subspan(take));
        if (sz == 0 || sz > options_.segment_size - kSegmentHeaderSize) {
          return Fail(
              Status::InvalidArgument("a record of " + std::to_string(sz) + " bytes does not fit in a segment"));
        }
        if (take + sz > room) break;
        if (take + sz > window && unsynced_ + take > 0) break;
        take += sz;
        ++n;
      }
      if (take > 0) {
        Add(rest.first(take), c.salt);
        next_seq_ += n;
        rest = rest.subspan(take);
      }
      WALD_RETURN_IF_ERROR(Sync());
      if (!rest.empty() && PeekEncodedSize(rest) > options_.segment_size - tail_) WALD_RETURN_IF_ERROR(Roll());
    }
  }
  return Flush();
}

Status LogWriter::Sync() {
  if (!failure_.ok()) return Failed();
  WALD_RETURN_IF_ERROR(Flush());
  if (unsynced_ == 0) return Status::OK();
  Status st = file_->DataSync();
  if (!st.ok()) return Fail(std::move(st));
  // Only now, after fdatasync returned 0, do these records count as durable.
  durable_seq_ = next_seq_ - 1;
  unsynced_ = 0;
  return Status::OK();
}

Status LogWriter::Roll(uint64_t gap_from) {
  // The old segment is complete and synced before anything goes into the new
  // one: recovery relies on it (only the newest segment can have a torn tail).
  if (file_) {
    WALD_RETURN_IF_ERROR(Sync());
    // Before Take: the next spare reuses its pages. Not when segments are
    // recycled: one is written over in place later, and each write ending
    // inside a page that is no longer cached would read it from the disk.
    if (!options_.recycle) preparer_->Retire(std::move(file_));
  }
  auto spare = preparer_->Take();
  if (!spare.ok()) return Fail(spare.take_status());
  SegmentHeader header{meta_.log_id, next_seq_, gap_from};
  if (spare->recycled) header.stale_salt = SegmentSalt(meta_.salt_key, spare->old_first_seq);
  std::byte hdr[kSegmentHeaderSize];
  EncodeSegmentHeader(header, hdr);
  iovec iov{hdr, sizeof hdr};
  Status st = spare->file->WriteAt(0, std::span(&iov, 1));
  // The header becomes durable with the first Sync in this segment; a crash
  // before that leaves a newest segment without a valid header, which
  // recovery removes as an incomplete roll.
  const std::string path = JoinPath(dir_, SegmentFileName(next_seq_));
  if (st.ok()) st = env_->Rename(spare->path, path);
  if (st.ok()) st = RetryOutOfFds(options_.on_fd_wait, [&] { return env_->SyncDir(dir_); });
  if (!st.ok()) return Fail(std::move(st));
  // Named for error messages.
  auto f = RetryOutOfFds(options_.on_fd_wait, [&] { return env_->Open(path, OpenMode::kReadWrite); });
  if (!f.ok()) return Fail(f.take_status());
  file_ = std::move(*f);
  segments_.push_back({next_seq_, path});
  salts_ = SaltsOf(header, meta_.salt_key);
  tail_ = kSegmentHeaderSize;
  unsynced_ = kSegmentHeaderSize;  // the header needs a sync too
  return Status::OK();
}

Status LogWriter::Trim(uint64_t up_to) {
  if (!failure_.ok()) return Failed();
  // Never past what is durable, and no up_to + 1: 2^64-1 would wrap to 0.
  up_to = std::min(up_to, durable_seq_);
  // Nor past a hold: its owner still needs what lies above it.
  trim_held_by_.clear();
  if (const Hold* low = LowestHold(holds_); low != nullptr && low->seq < up_to) {
    up_to = low->seq;
    trim_held_by_ = low->name;
  }
  size_t k = 0;  // segments [0, k) hold only seqs <= up_to
  while (k + 1 < segments_.size() && segments_[k + 1].first_seq - 1 <= up_to) ++k;
  if (k == 0) return Status::OK();
  Meta next = meta_;
  next.trim_seq = segments_[k].first_seq - 1;
  next.durable_floor = std::max(next.durable_floor, durable_seq_);
  Status st = RetryOutOfFds(options_.on_fd_wait, [&] { return WriteMeta(env_, dir_, next); });
  // The newest released segment becomes the next spare (recovery deletes a
  // *.tmp it finds, so a crash leaves nothing behind); the others go. Only
  // one waits at a time, and only within the disk budget: after the next
  // roll it is the spare, so it never adds a file to what a roll makes.
  std::string recycled;
  const bool recycle =
      options_.recycle && !preparer_->has_donation() &&
      (options_.max_disk == 0 || segments_.size() - k + 2 <= options_.max_disk / options_.segment_size);
  for (size_t i = 0; st.ok() && i < k; ++i) {
    if (recycle && i + 1 == k) {
      recycled = JoinPath(dir_, "recycle-" + std::to_string(segments_[i].first_seq) + std::string(kTempSuffix));
      st = env_->Rename(segments_[i].path, recycled);
    } else {
      st = env_->Remove(segments_[i].path);
    }
  }
  if (st.ok()) st = RetryOutOfFds(options_.on_fd_wait, [&] { return env_->SyncDir(dir_); });
  if (!st.ok()) return Fail(std::move(st));
  meta_ = next;
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<ptrdiff_t>(k));
  if (!recycled.empty()) preparer_->Donate(std::move(recycled));
  return Status::OK();
}

uint64_t LogWriter::HoldLagBytes(uint64_t seq) const {
  size_t k = 0;
  while (k + 1 < segments_.size() && segments_[k + 1].first_seq - 1 <= seq) ++k;  // no seq + 1: it may wrap
  return (segments_.size() - k) * options_.segment_size;
}

uint64_t LogWriter::AppendLimit() const {
  if (options_.max_disk == 0) return UINT64_MAX;
  const uint64_t seg = options_.segment_size;
  const uint64_t largest = options_.max_record_bytes != 0 ? options_.max_record_bytes : seg - kSegmentHeaderSize;
  // A roll leaves unused less than the record that did not fit: at most
  // largest - 8 bytes (sizes are multiples of 8).
  const uint64_t waste = largest - kRecordAlign;
  auto usable = [&](uint64_t room) { return room > waste ? room - waste : 0; };
  // The files after k more rolls: the segments, k new ones, the spare.
  const uint64_t files = options_.max_disk / seg;
  const uint64_t in_use = segments_.size() + 1;
  const uint64_t rolls = files > in_use ? files - in_use : 0;
  const uint64_t room = usable(seg - tail_ - gathered_) + rolls * usable(seg - kSegmentHeaderSize);
  return room > UINT64_MAX - appended_ ? UINT64_MAX : appended_ + room;
}

Status LogWriter::SetHold(std::string_view name, uint64_t seq) {
  if (!failure_.ok()) return Failed();
  if (std::string why = CheckHoldName(name); !why.empty()) return Status::InvalidArgument(why);
  seq = std::min(seq, durable_seq_);
  if (seq < meta_.trim_seq) {
    return Status::NotFound("seq " + std::to_string(seq + 1) + " is trimmed; the first seq held is " +
                            std::to_string(first_seq()));
  }
  std::vector<Hold> next = holds_;
  auto it = std::find_if(next.begin(), next.end(), [&](const Hold& h) { return h.name == name; });
  if (it != next.end()) {
    if (it->seq == seq) return Status::OK();
    it->seq = seq;
  } else if (next.size() >= kMaxHolds) {
    return Status::InvalidArgument("there are already " + std::to_string(kMaxHolds) + " holds; release one first");
  } else {
    next.push_back({std::string(name), seq});
  }
  Status st = RetryOutOfFds(options_.on_fd_wait, [&] { return WriteHolds(env_, dir_, next); });
  if (!st.ok()) return Fail(std::move(st));
  holds_ = std::move(next);
  return Status::OK();
}

Status LogWriter::ReleaseHold(std::string_view name) {
  if (!failure_.ok()) return Failed();
  std::vector<Hold> next = holds_;
  if (std::erase_if(next, [&](const Hold& h) { return h.name == name; }) == 0) {
    return Status::NotFound("no hold named " + std::string(name));
  }
  Status st = RetryOutOfFds(options_.on_fd_wait, [&] { return WriteHolds(env_, dir_, next); });
  if (!st.ok()) return Fail(std::move(st));
  holds_ = std::move(next);
  return Status::OK();
}

}  // namespace wald::storage
