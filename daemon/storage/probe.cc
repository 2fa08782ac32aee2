#include "storage/probe.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "storage/log_dir.h"

namespace wald::storage {
namespace {

constexpr size_t kProbeChunk = 64 << 10;

}  // namespace

Result<Probe> ProbeAfter(File* file, uint64_t from, uint64_t min_seq, uint64_t stale_below, const SegmentSalts& salts,
                         uint64_t limit) {
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

Verdict Judge(const Probe& p, uint64_t stop, uint64_t expected, const Meta& meta, uint64_t sealed_by) {
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

std::string At(const std::string& path, uint64_t offset) { return path + " offset " + std::to_string(offset); }

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

uint64_t StartOf(const SegmentHeader& next) { return next.gap_from != 0 ? next.gap_from : next.first_seq; }

}  // namespace wald::storage
