#include "storage/recovery.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "storage/segment_scanner.h"

namespace wald::storage {
namespace {

constexpr size_t kProbeChunk = 64 << 10;

void Tell(const RecoveryOptions& o, Reporter::Kind kind, const std::string& file, uint64_t offset, uint64_t bytes,
          std::string_view reason) {
  if (o.reporter != nullptr) o.reporter->Report(kind, file, offset, bytes, reason);
}

std::string At(const std::string& path, uint64_t offset) { return path + " offset " + std::to_string(offset); }

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
                         uint64_t limit = UINT64_MAX) {
  Probe p;
  p.nonzero_end = from;
  auto size = file->Size();
  if (!size.ok()) return size.take_status();
  *size = std::min(*size, limit);
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
    const bool before_stale = p.stale_from == 0;
    const uint64_t nonzero_before = p.nonzero_end;
    if (word != 0 && before_stale) p.nonzero_end = off + 8;
    const uint64_t seq = word == 0 || have < kRecordHeaderSize ? 0 : PeekSeq(std::span(at, kRecordHeaderSize));
    const bool candidate = word != 0 && have >= kRecordHeaderSize && (seq >= min_seq || seq < stale_below);
    if (!candidate) {
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
    bool valid = DecodeRecord(bytes, &rec, salts.own) == DecodeStatus::kOk && rec.seq >= min_seq;
    if (!valid && salts.stale_known && seq < stale_below) {
      valid = DecodeRecord(bytes, &rec, salts.stale) == DecodeStatus::kOk;
    }
    if (valid && rec.seq < stale_below) {
      if (before_stale) {
        p.stale_from = off;
        p.nonzero_end = nonzero_before;  // its first word is old content, not torn bytes
      }
      off += rec.encoded_size;
    } else if (valid && rec.seq >= min_seq) {
      p.found_valid = true;
      p.valid_offset = off;
      p.valid_end = off + rec.encoded_size;
      p.max_seq = std::max(p.max_seq, rec.seq);
      if ((rec.meta.flags & kFlagDurable) && rec.meta.durable_seq > p.max_durable) {
        p.max_durable = rec.meta.durable_seq;
        p.stamp_seq = rec.seq;
        p.stamp_offset = off;
      }
      p.nonzero_end = std::max(p.nonzero_end, p.valid_end);
      off += rec.encoded_size;
    } else {
      off += kRecordAlign;
    }
  }
  return p;
}

// The salts of a segment whose header does not verify for its name (a roll
// that did not complete, or damage). Its records were written salted for
// the name's first seq if the log was at version 5. What the file held
// before is told by the header there, if it verifies: a recycled file's
// header from its previous life, which the roll had not yet written over.
Result<SegmentSalts> SaltsOfUnnamed(File* file, uint64_t first_seq, const Meta& meta) {
  if (meta.version < kFirstSaltedVersion) return SegmentSalts{};
  SegmentSalts salts{SegmentSalt(meta.salt_key, first_seq), 0, false};
  SegmentHeader old;
  std::string why;
  WALD_RETURN_IF_ERROR(ReadSegmentHeader(file, &old, &why));
  if (why.empty() && old.log_id == meta.log_id && old.first_seq != first_seq) {
    salts.stale = SaltOf(old, meta.salt_key);
    salts.stale_known = true;
  }
  return salts;
}

// The verdict on a stop at `stop` where seq `expected` was due, in the newest
// segment: the durability rule (recovery.h).
struct Verdict {
  bool damage = false;
  std::string evidence;    // why seq `expected` was durable
  uint64_t lost_to = 0;    // the highest seq known to have existed or been durable
  uint64_t retire_to = 0;  // what a salvage retires: lost_to, or more where damaged bytes may hide records
};

// `sealed_by`: the first seq of a newer segment whose roll did not complete
// and that recovery removed (0: none). Its file exists only because this
// segment was synced in full first (LogWriter::Roll), so this segment must end
// exactly there.
Verdict Judge(const Probe& p, uint64_t stop, uint64_t expected, const Meta& meta, uint64_t sealed_by = 0) {
  Verdict v;
  v.lost_to = std::max({expected - 1, p.max_seq, p.max_durable, meta.durable_floor, meta.salvage_floor,
                        sealed_by > 0 ? sealed_by - 1 : 0});
  // Damaged bytes after the last valid record may hold records that no
  // longer verify, with seqs above every one seen: at most one per 16 bytes
  // (the smallest record). A salvage retires those seqs too.
  const uint64_t tail_from = p.found_valid ? std::max(p.valid_end, stop) : stop;
  const uint64_t hidden = p.nonzero_end > tail_from ? (p.nonzero_end - tail_from) / 16 : 0;
  v.retire_to = std::max(v.lost_to, std::max(expected - 1, p.max_seq) + hidden);
  if (expected <= meta.salvage_floor) return v;  // an earlier salvage cut here; the gap is known
  if (sealed_by != 0 && expected != sealed_by) {
    v.damage = true;
    v.evidence = "a newer segment starting at seq " + std::to_string(sealed_by) +
                 " was created (its roll did not complete), which happens only after this segment was synced in "
                 "full";
  } else if (meta.durable_floor >= expected) {
    v.damage = true;
    v.evidence = "wald.meta records every seq up to " + std::to_string(meta.durable_floor) +
                 " as durable (a clean stop or an earlier recovery)";
  } else if (p.max_durable >= expected) {
    v.damage = true;
    v.evidence = "the record with seq " + std::to_string(p.stamp_seq) + " at offset " + std::to_string(p.stamp_offset) +
                 " was written after every seq up to " + std::to_string(p.max_durable) + " was durable";
  } else if (p.found_valid && p.valid_end - stop > kMaxUnsyncedWrite) {
    v.damage = true;
    v.evidence = "a valid record (seq " + std::to_string(p.max_seq) + ") ends at offset " +
                 std::to_string(p.valid_end) + ", further than one unsynced write reaches";
  }
  return v;
}

std::string SideName(const std::string& path, uint64_t offset) {
  return path + "." + std::to_string(offset) + std::string(kBrokenSuffix);
}

std::string DamageMessage(const std::string& path, uint64_t stop, const std::string& reason, uint64_t expected,
                          const Verdict& v, const std::string& dir) {
  return At(path, stop) + ": " + reason + " at seq " + std::to_string(expected) + ", but " + v.evidence +
         ": damage to durable records, not a torn tail; seqs " + std::to_string(expected) + ".." +
         std::to_string(v.lost_to) + " would be lost. Inspect with `wal-tail --verify " + dir +
         "`; `wald --salvage` keeps seqs up to " + std::to_string(expected - 1) + ", moves the damaged bytes to " +
         SideName(path, stop) + " and continues at seq " + std::to_string(v.retire_to + 1);
}

// Copies [from, to) of `file` to a new .broken file beside it, durably.
Status SetAside(Env* env, const std::string& dir, File* file, uint64_t from, uint64_t to, std::string* side) {
  std::string name = SideName(file->path(), from);
  for (int n = 2; env->Kind(name) != FileKind::kMissing; ++n) {
    name = file->path() + "." + std::to_string(from) + "-" + std::to_string(n) + std::string(kBrokenSuffix);
  }
  auto out = env->Open(name, OpenMode::kCreate);
  if (!out.ok()) return out.take_status();
  static constexpr size_t kCopyChunk = 1 << 20;
  auto buf = std::make_unique_for_overwrite<std::byte[]>(kCopyChunk);
  for (uint64_t off = from; off < to;) {
    auto n = file->ReadAt(off, buf.get(), static_cast<size_t>(std::min<uint64_t>(kCopyChunk, to - off)));
    if (!n.ok()) return n.take_status();
    if (*n == 0) break;
    iovec iov{buf.get(), *n};
    WALD_RETURN_IF_ERROR((*out)->WriteAt(off - from, std::span(&iov, 1)));
    off += *n;
  }
  WALD_RETURN_IF_ERROR((*out)->DataSync());
  WALD_RETURN_IF_ERROR(env->SyncDir(dir));
  *side = name;
  return Status::OK();
}

// Sets [from, to) aside, then zeroes it, so that stale bytes are never read
// as records once new ones are written over part of them.
Status CutAt(Env* env, const std::string& dir, File* file, uint64_t from, uint64_t to, std::string* side) {
  if (to <= from) return Status::OK();
  WALD_RETURN_IF_ERROR(SetAside(env, dir, file, from, to, side));
  return ZeroRange(file, from, to);
}

// A whole segment set aside by a salvage.
Status MoveAside(Env* env, const std::string& dir, const std::string& path) {
  std::string name = SideName(path, 0);
  for (int n = 2; env->Kind(name) != FileKind::kMissing; ++n) {
    name = path + ".0-" + std::to_string(n) + std::string(kBrokenSuffix);
  }
  WALD_RETURN_IF_ERROR(env->Rename(path, name));
  return env->SyncDir(dir);
}

// Where segment i+1 says segment i ends: at its first seq, or at the start of
// the gap a salvage left before it.
uint64_t StartOf(const SegmentHeader& next) { return next.gap_from != 0 ? next.gap_from : next.first_seq; }

}  // namespace

Result<RecoveredLog> Recover(Env* env, const std::string& dir, const Meta& meta_in, const RecoveryOptions& options) {
  RecoveredLog out;
  out.meta = meta_in;
  Meta& meta = out.meta;

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
  out.next_seq = meta.trim_seq + 1;
  if (segs.empty()) return out;
  if (segs.front().first_seq > meta.trim_seq + 1) {
    return Status::Corruption(segs.front().path + ": the log starts at seq " + std::to_string(segs.front().first_seq) +
                              " but only seqs up to " + std::to_string(meta.trim_seq) +
                              " were trimmed: earlier segments are missing");
  }

  uint64_t sealed_by = 0;  // a removed incomplete roll's first seq (see Judge)
  // 3. A roll that did not complete: the newest segment's header never became
  // durable, so neither did any record in it, unless the log proves
  // otherwise (then the header is damage).
  {
    const SegmentFile last = segs.back();
    auto f = env->Open(last.path, OpenMode::kRead);
    if (!f.ok()) return f.take_status();
    SegmentScanner sc(std::move(*f), last.first_seq);
    SegmentHeader h;
    Status st = sc.ReadHeader(&meta.log_id, meta.salt_key, &h);
    if (!st.ok() && st.code() != Code::kCorruption) return st;
    if (!st.ok()) {
      auto salts = SaltsOfUnnamed(sc.file(), last.first_seq, meta);
      if (!salts.ok()) return salts.take_status();
      auto probe = ProbeAfter(sc.file(), kSegmentHeaderSize, last.first_seq, last.first_seq, *salts);
      if (!probe.ok()) return probe.take_status();
      const Verdict v = Judge(*probe, 0, last.first_seq, meta);
      if (v.damage) {
        const std::string why = st.message() + ", but " + v.evidence + ": the header was durable; seqs " +
                                std::to_string(last.first_seq) + ".." + std::to_string(v.lost_to) + " would be lost";
        if (!options.salvage) {
          return Status::Corruption(why + ". Inspect with `wal-tail --verify " + dir +
                                    "`; `wald --salvage` moves the segment to " + SideName(last.path, 0) +
                                    " and continues at seq " + std::to_string(v.retire_to + 1));
        }
        meta.salvage_floor = v.retire_to;
        WALD_RETURN_IF_ERROR(WriteMeta(env, dir, meta));
        Tell(options, Reporter::Kind::kDamage, last.path, 0, probe->nonzero_end, "set aside by salvage: " + why);
        WALD_RETURN_IF_ERROR(MoveAside(env, dir, last.path));
      } else {
        std::string side;
        if (probe->nonzero_end > 0) WALD_RETURN_IF_ERROR(SetAside(env, dir, sc.file(), 0, probe->nonzero_end, &side));
        Tell(options, Reporter::Kind::kTornTail, last.path, 0, probe->nonzero_end,
             "segment roll did not complete" + (side.empty() ? std::string() : "; kept in " + side));
        WALD_RETURN_IF_ERROR(env->Remove(last.path));
        WALD_RETURN_IF_ERROR(env->SyncDir(dir));
        sealed_by = last.first_seq;
      }
      segs.pop_back();
      if (segs.empty()) return out;
    }
  }

  // 4. Every header, and where each segment says its predecessor ends.
  std::vector<SegmentHeader> hdrs(segs.size());
  for (size_t i = 0; i < segs.size(); ++i) {
    auto f = env->Open(segs[i].path, OpenMode::kRead);
    if (!f.ok()) return f.take_status();
    SegmentScanner sc(std::move(*f), segs[i].first_seq);
    WALD_RETURN_IF_ERROR(sc.ReadHeader(&meta.log_id, meta.salt_key, &hdrs[i]));
  }

  // 5. Records: of the newest segment, or of all with VerifyMode::kAll.
  for (size_t i = 0; i < segs.size(); ++i) {
    const bool last = i + 1 == segs.size();
    if (!last && options.verify != VerifyMode::kAll) continue;
    auto f = env->Open(segs[i].path, last ? OpenMode::kReadWrite : OpenMode::kRead);
    if (!f.ok()) return f.take_status();
    SegmentScanner sc(std::move(*f), segs[i].first_seq);
    SegmentHeader h;
    WALD_RETURN_IF_ERROR(sc.ReadHeader(&meta.log_id, meta.salt_key, &h));
    const SegmentSalts salts = SaltsOf(h, meta.salt_key);
    RecordView rec;
    SegmentScanner::Step step;
    while ((step = sc.Next(&rec)) == SegmentScanner::Step::kRecord) {
    }
    if (step == SegmentScanner::Step::kError) return sc.status();
    const uint64_t stop = sc.offset();
    const uint64_t expected = sc.next_seq();
    if (!last) {
      // A sealed segment was synced in full before its successor was made.
      if (expected == StartOf(hdrs[i + 1])) continue;
      Verdict v;
      v.lost_to = std::max({segs[i + 1].first_seq - 1, meta.durable_floor, meta.salvage_floor});
      for (size_t j = i + 1; j < segs.size(); ++j) {
        auto later = env->Open(segs[j].path, OpenMode::kRead);
        if (!later.ok()) return later.take_status();
        auto p = ProbeAfter(later->get(), kSegmentHeaderSize, 0, segs[j].first_seq, SaltsOf(hdrs[j], meta.salt_key));
        if (!p.ok()) return p.take_status();
        v.lost_to = std::max({v.lost_to, p->max_seq, p->max_durable});
      }
      v.evidence = "the next segment starts at seq " + std::to_string(segs[i + 1].first_seq);
      v.retire_to = v.lost_to;
      const std::string why = DamageMessage(sc.path(), stop, sc.stop_reason(), expected, v, dir);
      if (!options.salvage) return Status::Corruption(why);
      // Salvage: the log ends here; the later segments go aside, whole.
      meta.salvage_floor = v.retire_to;
      WALD_RETURN_IF_ERROR(WriteMeta(env, dir, meta));
      for (size_t j = segs.size(); j-- > i + 1;) {
        Tell(options, Reporter::Kind::kDamage, segs[j].path, 0, 0, "set aside by salvage: " + why);
        WALD_RETURN_IF_ERROR(MoveAside(env, dir, segs[j].path));
      }
      segs.resize(i + 1);
      auto rw = env->Open(segs[i].path, OpenMode::kReadWrite);
      if (!rw.ok()) return rw.take_status();
      auto probe = ProbeAfter(rw->get(), stop, 0, segs[i].first_seq, salts);
      if (!probe.ok()) return probe.take_status();
      std::string side;
      WALD_RETURN_IF_ERROR(CutAt(env, dir, rw->get(), stop, probe->nonzero_end, &side));
      WALD_RETURN_IF_ERROR((*rw)->DataSync());
      Tell(options, Reporter::Kind::kDamage, sc.path(), stop, probe->nonzero_end - stop, why);
      out.next_seq = expected;
      out.tail_offset = stop;
      out.tail_header = h;
      return out;
    }
    // The newest segment: a torn tail, or damage?
    auto probe = ProbeAfter(sc.file(), stop, expected, segs[i].first_seq, salts);
    if (!probe.ok()) return probe.take_status();
    const Verdict v = Judge(*probe, stop, expected, meta, sealed_by);
    std::string side;
    if (v.damage) {
      const std::string why = DamageMessage(sc.path(), stop, sc.stop_reason(), expected, v, dir);
      if (!options.salvage) return Status::Corruption(why);
      meta.salvage_floor = v.retire_to;
      WALD_RETURN_IF_ERROR(WriteMeta(env, dir, meta));
      WALD_RETURN_IF_ERROR(CutAt(env, dir, sc.file(), stop, probe->nonzero_end, &side));
      Tell(options, Reporter::Kind::kDamage, sc.path(), stop, probe->nonzero_end - stop,
           "cut by salvage: " + why + (side.empty() ? std::string() : "; kept in " + side));
    } else if (probe->nonzero_end > stop) {
      WALD_RETURN_IF_ERROR(CutAt(env, dir, sc.file(), stop, probe->nonzero_end, &side));
      Tell(options, Reporter::Kind::kTornTail, sc.path(), stop, probe->nonzero_end - stop,
           sc.stop_reason() + "; kept in " + side);
    }
    // Everything kept is made durable: after a SIGKILL the page cache may
    // still hold records that no fdatasync covered.
    WALD_RETURN_IF_ERROR(sc.file()->DataSync());
    out.next_seq = expected;
    out.tail_offset = stop;
    out.tail_header = h;
  }
  return out;
}

Status ZeroRange(File* file, uint64_t from, uint64_t to) {
  static constexpr size_t kZeroChunk = 1 << 20;  // one static buffer, one write per MiB
  static const std::vector<std::byte> kZeros(kZeroChunk);
  for (uint64_t off = from; off < to; off += kZeroChunk) {
    iovec iov{const_cast<std::byte*>(kZeros.data()), static_cast<size_t>(std::min<uint64_t>(kZeroChunk, to - off))};
    WALD_RETURN_IF_ERROR(file->WriteAt(off, std::span(&iov, 1)));
  }
  return Status::OK();
}

Result<uint64_t> TailGarbageEnd(File* file, uint64_t from, uint64_t first_seq, const SegmentSalts& salts,
                                uint64_t window) {
  auto p = ProbeAfter(file, from, UINT64_MAX, first_seq, salts, from + window);
  if (!p.ok()) return p.take_status();
  return p->nonzero_end;
}

Result<LogSummary> VerifyLog(Env* env, const std::string& dir) {
  LogSummary sum;
  auto meta = ReadMeta(env, dir);
  if (!meta.ok()) return meta.take_status();
  sum.meta = *meta;
  sum.proven_durable = std::max(meta->durable_floor, meta->trim_seq);
  auto segs = ListSegments(env, dir);
  if (!segs.ok()) return segs.take_status();
  sum.segments = segs->size();
  uint64_t prev_end = 0;  // seq after the previous segment's last record
  for (size_t i = 0; i < segs->size(); ++i) {
    const SegmentFile& seg = (*segs)[i];
    const bool last = i + 1 == segs->size();
    auto f = env->Open(seg.path, OpenMode::kRead);
    if (!f.ok()) return f.take_status();
    SegmentScanner sc(std::move(*f), seg.first_seq);
    SegmentHeader h;
    Status st = sc.ReadHeader(&sum.meta.log_id, sum.meta.salt_key, &h);
    if (!st.ok()) {
      // Only an incomplete roll may leave the newest header invalid.
      if (last && st.code() == Code::kCorruption) {
        auto salts = SaltsOfUnnamed(sc.file(), seg.first_seq, sum.meta);
        if (!salts.ok()) return salts.take_status();
        auto probe = ProbeAfter(sc.file(), kSegmentHeaderSize, seg.first_seq, seg.first_seq, *salts);
        if (!probe.ok()) return probe.take_status();
        const Verdict v = Judge(*probe, 0, seg.first_seq, sum.meta);
        if (!v.damage) {
          sum.torn_tail_bytes += probe->nonzero_end;
          break;
        }
        return Status::Corruption(st.message() + ", but " + v.evidence + ": the header was durable; seqs " +
                                  std::to_string(seg.first_seq) + ".." + std::to_string(v.lost_to) + " are unreadable");
      }
      return st;
    }
    if (i > 0 && h.gap_from != 0) sum.gap_seqs += h.first_seq - h.gap_from;
    RecordView rec;
    SegmentScanner::Step step;
    while ((step = sc.Next(&rec)) == SegmentScanner::Step::kRecord) {
      if (sum.first_seq == 0) sum.first_seq = rec.seq;
      sum.last_seq = rec.seq;
      ++sum.records;
      sum.payload_bytes += rec.payload.size();
      sum.record_bytes += rec.encoded_size;
      if (rec.meta.flags & kFlagDurable) sum.proven_durable = std::max(sum.proven_durable, rec.meta.durable_seq);
    }
    if (step == SegmentScanner::Step::kError) return sc.status();
    const uint64_t stop = sc.offset();
    const uint64_t expected = sc.next_seq();
    prev_end = expected;
    if (!last) {
      auto next_hdr_file = env->Open((*segs)[i + 1].path, OpenMode::kRead);
      if (!next_hdr_file.ok()) return next_hdr_file.take_status();
      SegmentScanner next_sc(std::move(*next_hdr_file), (*segs)[i + 1].first_seq);
      SegmentHeader nh;
      // A bad next header is reported when its turn comes.
      const bool next_ok = next_sc.ReadHeader(&sum.meta.log_id, sum.meta.salt_key, &nh).ok();
      if (expected == (next_ok ? StartOf(nh) : (*segs)[i + 1].first_seq)) continue;
      return Status::Corruption(At(sc.path(), stop) + ": " + sc.stop_reason() + " before seq " +
                                std::to_string(expected) + ", but the next segment starts at seq " +
                                std::to_string((*segs)[i + 1].first_seq) + ": seqs " + std::to_string(expected) + ".." +
                                std::to_string((*segs)[i + 1].first_seq - 1) + " are unreadable");
    }
    auto probe = ProbeAfter(sc.file(), stop, expected, seg.first_seq, SaltsOf(h, sum.meta.salt_key));
    if (!probe.ok()) return probe.take_status();
    const Verdict v = Judge(*probe, stop, expected, sum.meta);
    if (v.damage) return Status::Corruption(DamageMessage(sc.path(), stop, sc.stop_reason(), expected, v, dir));
    sum.torn_tail_bytes += probe->nonzero_end > stop ? probe->nonzero_end - stop : 0;
  }
  if (sum.first_seq == 0 && !segs->empty()) sum.last_seq = prev_end > 0 ? prev_end - 1 : 0;
  auto names = env->ListDir(dir);
  if (names.ok()) {
    std::sort(names->begin(), names->end());
    for (const std::string& n : *names) {
      const std::string path = JoinPath(dir, n);
      sum.disk_bytes += env->DiskUsage(path);
      if (n.ends_with(kBrokenSuffix)) {
        auto f = env->Open(path, OpenMode::kRead);
        uint64_t bytes = 0;
        if (f.ok()) {
          auto sz = (*f)->Size();
          if (sz.ok()) bytes = *sz;
        }
        sum.side_files.push_back({path, bytes});
      }
    }
  }
  return sum;
}

}  // namespace wald::storage
