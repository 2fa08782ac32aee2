#include "storage/recovery.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "storage/probe.h"
#include "storage/segment_scanner.h"

namespace wald::storage {
namespace {

void Tell(const RecoveryOptions& o, Reporter::Kind kind, const std::string& file, uint64_t offset, uint64_t bytes,
          std::string_view reason) {
  if (o.reporter != nullptr) o.reporter->Report(kind, file, offset, bytes, reason);
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

}  // namespace wald::storage
