#include "storage/log_dir.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "storage/segment_scanner.h"

namespace wald::storage {
namespace {

constexpr size_t kProbeChunk = 64 << 10;

void Tell(const RecoveryOptions& o, Reporter::Kind kind, const std::string& file, uint64_t offset,
          uint64_t bytes, std::string_view reason) {
  if (o.reporter != nullptr) o.reporter->Report(kind, file, offset, bytes, reason);
}

// What lies after the end of the valid log in a segment.
struct Probe {
  bool found_valid = false;     // a verifying record with seq >= min_seq
  uint64_t valid_offset = 0;    // the last such record starts here
  uint64_t valid_end = 0;       // ...and ends here
  uint64_t nonzero_end = 0;     // end of the last non-zero byte range seen
};

// Scans [from, end of file) at every record-aligned offset for records that
// verify and carry a seq >= min_seq (skipping over each one found), and for
// the extent of non-zero bytes. Preallocated space is zero, so this is fast
// where nothing was written.
Result<Probe> ProbeAfter(File* file, uint64_t from, uint64_t min_seq) {
  Probe p;
  p.nonzero_end = from;
  auto size = file->Size();
  if (!size.ok()) return size.take_status();
  const size_t buf_size = kProbeChunk + kRecordHeaderSize;
  auto buf = std::make_unique_for_overwrite<std::byte[]>(buf_size);
  std::vector<std::byte> rec_buf;  // for a record that crosses the end of buf
  uint64_t buf_off = 0;
  size_t buf_len = 0;
  for (uint64_t off = from; off + 8 <= *size;) {
    if (off < buf_off || off + kRecordHeaderSize > buf_off + buf_len) {
      auto n = file->ReadAt(off, buf.get(), buf_size);
      if (!n.ok()) return n.take_status();
      buf_off = off;
      buf_len = *n;
      if (buf_len < 8) break;
    }
    const std::byte* at = buf.get() + (off - buf_off);
    const size_t have = static_cast<size_t>(buf_off + buf_len - off);
    uint64_t word;
    std::memcpy(&word, at, 8);
    if (word != 0) p.nonzero_end = off + 8;
    if (word == 0 || have < kRecordHeaderSize || PeekSeq(std::span(at, kRecordHeaderSize)) < min_seq) {
      off += kRecordAlign;
      continue;
    }
    const size_t need = PeekEncodedSize(std::span(at, kRecordHeaderSize));
    if (PeekUnpaddedSize(std::span(at, kRecordHeaderSize)) > *size - off) {  // no record fits: damaged length
      off += kRecordAlign;
      continue;
    }
    std::span<const std::byte> bytes(at, have);
    if (need > have) {
      rec_buf.resize(need);
      auto got = file->ReadAt(off, rec_buf.data(), need);
      if (!got.ok()) return got.take_status();
      bytes = std::span<const std::byte>(rec_buf.data(), *got);
    }
    RecordView rec;
    if (DecodeRecord(bytes, &rec) == DecodeStatus::kOk) {
      p.found_valid = true;
      p.valid_offset = off;
      p.valid_end = off + rec.encoded_size;
      p.nonzero_end = std::max(p.nonzero_end, p.valid_end);
      off += rec.encoded_size;
    } else {
      off += kRecordAlign;
    }
  }
  return p;
}

Status ZeroRange(File* file, uint64_t from, uint64_t to) {
  static constexpr size_t kZeroChunk = 1 << 20;  // one static buffer, one write per MiB
  static const std::vector<std::byte> kZeros(kZeroChunk);
  for (uint64_t off = from; off < to; off += kZeroChunk) {
    iovec iov{const_cast<std::byte*>(kZeros.data()), static_cast<size_t>(std::min<uint64_t>(kZeroChunk, to - off))};
    WALD_RETURN_IF_ERROR(file->WriteAt(off, std::span(&iov, 1)));
  }
  return file->DataSync();
}

std::string At(const std::string& path, uint64_t offset) {
  return path + " offset " + std::to_string(offset);
}

}  // namespace

std::string JoinPath(const std::string& dir, std::string_view name) {
  std::string p = dir;
  if (!p.empty() && p.back() != '/') p += '/';
  p += name;
  return p;
}

Result<std::vector<SegmentFile>> ListSegments(Env* env, const std::string& dir) {
  auto names = env->ListDir(dir);
  if (!names.ok()) return names.take_status();
  std::vector<SegmentFile> segs;
  for (const std::string& n : *names) {
    uint64_t first = 0;
    if (ParseSegmentFileName(n, &first)) segs.push_back({first, JoinPath(dir, n)});
  }
  std::sort(segs.begin(), segs.end(), [](const auto& a, const auto& b) { return a.first_seq < b.first_seq; });
  return segs;
}

Status WriteMeta(Env* env, const std::string& dir, const Meta& meta) {
  const std::string tmp = JoinPath(dir, std::string(kMetaFileName) + std::string(kTempSuffix));
  if (env->Kind(tmp) != FileKind::kMissing) WALD_RETURN_IF_ERROR(env->Remove(tmp));
  std::byte buf[kMetaSize];
  EncodeMeta(meta, buf);
  {
    auto f = env->Open(tmp, OpenMode::kCreate);
    if (!f.ok()) return f.take_status();
    iovec iov{buf, sizeof buf};
    WALD_RETURN_IF_ERROR((*f)->WriteAt(0, std::span(&iov, 1)));
    WALD_RETURN_IF_ERROR((*f)->DataSync());
  }
  WALD_RETURN_IF_ERROR(env->Rename(tmp, JoinPath(dir, kMetaFileName)));
  return env->SyncDir(dir);
}

Result<Meta> ReadMeta(Env* env, const std::string& dir) {
  const std::string path = JoinPath(dir, kMetaFileName);
  auto bytes = ReadSmallFile(env, path, kMetaSize + 1);
  if (!bytes.ok()) return bytes.take_status();
  Meta meta;
  if (bytes->size() != kMetaSize) return Status::Corruption(path + ": size is not " + std::to_string(kMetaSize));
  if (std::string why = DecodeMeta(*bytes, &meta); !why.empty()) {
    return Status::Corruption(At(path, 0) + ": " + why);
  }
  return meta;
}

Result<RecoveredLog> Recover(Env* env, const std::string& dir, const Meta& meta, const RecoveryOptions& options) {
  RecoveredLog out;
  out.meta = meta;

  // 1. Half-made files: a prepared segment or meta that never got its name.
  auto names = env->ListDir(dir);
  if (!names.ok()) return names.take_status();
  bool removed = false;
  for (const std::string& n : *names) {
    if (n.ends_with(kTempSuffix)) {
      WALD_RETURN_IF_ERROR(env->Remove(JoinPath(dir, n)));
      removed = true;
    }
  }

  auto listed = ListSegments(env, dir);
  if (!listed.ok()) return listed.take_status();
  std::vector<SegmentFile>& segs = out.segments = std::move(*listed);

  // 2. An interrupted trim: the meta file already says these are released.
  while (segs.size() >= 2 && segs[1].first_seq <= meta.trim_seq + 1) {
    WALD_RETURN_IF_ERROR(env->Remove(segs.front().path));
    segs.erase(segs.begin());
    removed = true;
  }
  if (removed) WALD_RETURN_IF_ERROR(env->SyncDir(dir));
  if (segs.empty()) {
    out.next_seq = meta.trim_seq + 1;
    return out;
  }
  if (segs.front().first_seq > meta.trim_seq + 1) {
    return Status::Corruption(segs.front().path + ": the log starts at seq " + std::to_string(segs.front().first_seq) +
                              " but only seqs up to " + std::to_string(meta.trim_seq) +
                              " were trimmed: earlier segments are missing");
  }

  // 3. A roll that did not complete: the newest segment's header never became
  // durable. Its records (if any survived) were never synced either, unless
  // a valid one lies beyond the unsynced-write window.
  {
    SegmentFile& last = segs.back();
    auto f = env->Open(last.path, OpenMode::kReadWrite);
    if (!f.ok()) return f.take_status();
    SegmentScanner sc(std::move(*f), last.first_seq);
    SegmentHeader h;
    Status st = sc.ReadHeader(&meta.log_id, &h);
    if (!st.ok() && st.code() != Code::kCorruption) return st;
    if (!st.ok()) {
      auto probe = ProbeAfter(sc.file(), kSegmentHeaderSize, last.first_seq);
      if (!probe.ok()) return probe.take_status();
      if (probe->found_valid && probe->valid_end > kMaxUnsyncedWrite && !options.salvage) {
        return Status::Corruption(st.message() + " (and valid records follow at offset " +
                                  std::to_string(probe->valid_offset) + ")");
      }
      Tell(options, Reporter::Kind::kTornTail, last.path, 0, probe->nonzero_end, "segment roll did not complete");
      WALD_RETURN_IF_ERROR(env->Remove(last.path));
      WALD_RETURN_IF_ERROR(env->SyncDir(dir));
      segs.pop_back();
      if (segs.empty()) {
        out.next_seq = meta.trim_seq + 1;
        return out;
      }
    }
  }

  // 4. Headers everywhere, records where asked, the tail of the last segment.
  for (size_t i = 0; i < segs.size(); ++i) {
    const bool last = i + 1 == segs.size();
    const bool scan = last || options.verify == VerifyMode::kAll;
    auto f = env->Open(segs[i].path, last ? OpenMode::kReadWrite : OpenMode::kRead);
    if (!f.ok()) return f.take_status();
    SegmentScanner sc(std::move(*f), segs[i].first_seq);
    SegmentHeader h;
    WALD_RETURN_IF_ERROR(sc.ReadHeader(&meta.log_id, &h));
    if (!scan) continue;
    RecordView rec;
    SegmentScanner::Step step;
    while ((step = sc.Next(&rec)) == SegmentScanner::Step::kRecord) {
    }
    if (step == SegmentScanner::Step::kError) return sc.status();
    if (!last) {
      if (sc.next_seq() == segs[i + 1].first_seq) continue;
      const std::string why = At(sc.path(), sc.offset()) + ": " + sc.stop_reason() + " before seq " +
                              std::to_string(sc.next_seq()) + ", but the next segment starts at seq " +
                              std::to_string(segs[i + 1].first_seq);
      if (!options.salvage) return Status::Corruption(why);
      // Salvage: the log ends here. Drop every later segment.
      for (size_t j = segs.size(); j-- > i + 1;) {
        Tell(options, Reporter::Kind::kDamage, segs[j].path, 0, 0, "dropped by salvage: " + why);
        WALD_RETURN_IF_ERROR(env->Remove(segs[j].path));
      }
      WALD_RETURN_IF_ERROR(env->SyncDir(dir));
      segs.resize(i + 1);
      // Reopen for writing: this segment is the last one now.
      auto rw = env->Open(segs[i].path, OpenMode::kReadWrite);
      if (!rw.ok()) return rw.take_status();
      auto probe = ProbeAfter(rw->get(), sc.offset(), 0);
      if (!probe.ok()) return probe.take_status();
      Tell(options, Reporter::Kind::kDamage, sc.path(), sc.offset(), probe->nonzero_end - sc.offset(), why);
      WALD_RETURN_IF_ERROR(ZeroRange(rw->get(), sc.offset(), probe->nonzero_end));
      out.next_seq = sc.next_seq();
      out.tail_offset = sc.offset();
      return out;
    }
    // The last segment: what follows the last valid record?
    auto probe = ProbeAfter(sc.file(), sc.offset(), sc.next_seq());
    if (!probe.ok()) return probe.take_status();
    const uint64_t stop = sc.offset();
    if (probe->found_valid && probe->valid_end - stop > kMaxUnsyncedWrite) {
      const std::string why = At(sc.path(), stop) + ": " + sc.stop_reason() + ", but a valid record (seq >= " +
                              std::to_string(sc.next_seq()) + ") follows at offset " +
                              std::to_string(probe->valid_offset);
      if (!options.salvage) return Status::Corruption(why);
      Tell(options, Reporter::Kind::kDamage, sc.path(), stop, probe->nonzero_end - stop, why);
    } else if (probe->nonzero_end > stop) {
      Tell(options, Reporter::Kind::kTornTail, sc.path(), stop, probe->nonzero_end - stop, sc.stop_reason());
    }
    if (probe->nonzero_end > stop) WALD_RETURN_IF_ERROR(ZeroRange(sc.file(), stop, probe->nonzero_end));
    out.next_seq = sc.next_seq();
    out.tail_offset = stop;
  }
  return out;
}

Result<LogSummary> VerifyLog(Env* env, const std::string& dir) {
  LogSummary sum;
  auto meta = ReadMeta(env, dir);
  if (!meta.ok()) return meta.take_status();
  sum.meta = *meta;
  auto segs = ListSegments(env, dir);
  if (!segs.ok()) return segs.take_status();
  sum.segments = segs->size();
  for (size_t i = 0; i < segs->size(); ++i) {
    const SegmentFile& seg = (*segs)[i];
    const bool last = i + 1 == segs->size();
    auto f = env->Open(seg.path, OpenMode::kRead);
    if (!f.ok()) return f.take_status();
    SegmentScanner sc(std::move(*f), seg.first_seq);
    SegmentHeader h;
    Status st = sc.ReadHeader(&sum.meta.log_id, &h);
    if (!st.ok()) {
      // Only an incomplete roll may leave the newest header invalid.
      if (last && st.code() == Code::kCorruption) {
        auto probe = ProbeAfter(sc.file(), kSegmentHeaderSize, seg.first_seq);
        if (!probe.ok()) return probe.take_status();
        if (!probe->found_valid || probe->valid_end <= kMaxUnsyncedWrite) {
          sum.torn_tail_bytes += probe->nonzero_end;
          break;
        }
      }
      return st;
    }
    if (i > 0 && seg.first_seq != sum.last_seq + 1) {
      return Status::Corruption(seg.path + " offset 0: starts at seq " + std::to_string(seg.first_seq) +
                                " but the previous segment ends at seq " + std::to_string(sum.last_seq));
    }
    RecordView rec;
    SegmentScanner::Step step;
    while ((step = sc.Next(&rec)) == SegmentScanner::Step::kRecord) {
      if (sum.first_seq == 0) sum.first_seq = rec.seq;
      sum.last_seq = rec.seq;
      ++sum.records;
      sum.payload_bytes += rec.payload.size();
      sum.record_bytes += rec.encoded_size;
    }
    if (step == SegmentScanner::Step::kError) return sc.status();
    if (sum.first_seq == 0) sum.last_seq = seg.first_seq - 1;  // an empty log so far
    const uint64_t stop = sc.offset();
    if (!last) {
      if (sc.next_seq() == (*segs)[i + 1].first_seq) continue;
      return Status::Corruption(At(sc.path(), stop) + ": " + sc.stop_reason() + " before seq " +
                                std::to_string(sc.next_seq()) + ", but the next segment starts at seq " +
                                std::to_string((*segs)[i + 1].first_seq));
    }
    auto probe = ProbeAfter(sc.file(), stop, sc.next_seq());
    if (!probe.ok()) return probe.take_status();
    if (probe->found_valid && probe->valid_end - stop > kMaxUnsyncedWrite) {
      return Status::Corruption(At(sc.path(), stop) + ": " + sc.stop_reason() + ", but a valid record (seq >= " +
                                std::to_string(sc.next_seq()) + ") follows at offset " +
                                std::to_string(probe->valid_offset));
    }
    sum.torn_tail_bytes += probe->nonzero_end > stop ? probe->nonzero_end - stop : 0;
  }
  auto names = env->ListDir(dir);
  if (names.ok()) {
    for (const std::string& n : *names) sum.disk_bytes += env->DiskUsage(JoinPath(dir, n));
  }
  return sum;
}

}  // namespace wald::storage
