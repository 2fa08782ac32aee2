// VerifyLog (recovery.h): reads and checks a whole log without writing or
// locking, by the same rule as recovery (probe.h). Apart from recovery.cc
// because it never changes the log.
#include <algorithm>
#include <string>

#include "storage/probe.h"
#include "storage/recovery.h"
#include "storage/segment_scanner.h"

namespace wald::storage {

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
