#include "storage/format.h"

#include <cstdio>
#include <cstring>

#include "storage/crc32c.h"

namespace wald::storage {
namespace {

template <typename T>
void Put(std::byte* dst, T v) {
  std::memcpy(dst, &v, sizeof v);
}
template <typename T>
T Get(const std::byte* src) {
  T v;
  std::memcpy(&v, src, sizeof v);
  return v;
}

// A record's CRC covers its header, with the CRC field read as zero, its
// metadata and its payload: bytes [0, 16 + m + n) of the record, one
// contiguous range, so that the
// writer computes it in one call over what it just encoded. (Version 1 made
// three calls, two of them under 16 bytes, which ISA-L serves through a
// store-forwarding stall: 10% of the daemon's CPU samples in a profile.)
uint32_t HeaderAndPayloadCrc(const std::byte* header, std::span<const std::byte> body) {
  std::byte h[kRecordHeaderSize];
  std::memcpy(h, header, sizeof h);
  std::memset(h + 4, 0, 4);
  return crc32c::Extend(crc32c::Value(h, sizeof h), body.data(), body.size());
}

// Header and meta share one shape: magic, version, a body, masked CRC at 60.
void SealFixed(std::byte* dst) { Put<uint32_t>(dst + 60, crc32c::Mask(crc32c::Value(dst, 60))); }
std::string CheckFixed(std::span<const std::byte> bytes, std::string_view magic) {
  if (bytes.size() < 64) return "shorter than 64 bytes";
  if (std::memcmp(bytes.data(), magic.data(), magic.size()) != 0) return "bad magic";
  if (crc32c::Unmask(Get<uint32_t>(bytes.data() + 60)) != crc32c::Value(bytes.data(), 60)) {
    return "bad header checksum";
  }
  uint32_t version = Get<uint32_t>(bytes.data() + 8);
  if (version < kOldestFormatVersion || version > kFormatVersion) {
    return "unsupported format version " + std::to_string(version) + " (this build reads versions " +
           std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion) +
           ": read the log with the wald release that wrote it)";
  }
  return {};
}

}  // namespace

std::string LogIdToString(const LogId& id) {
  std::string s(32, '0');
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < id.size(); ++i) {
    s[2 * i] = kHex[id[i] >> 4];
    s[2 * i + 1] = kHex[id[i] & 0xf];
  }
  return s;
}

size_t EncodeRecord(uint64_t seq, const RecordMeta& meta, std::span<const std::byte> payload, std::byte* dst,
                    uint32_t salt) {
  const uint32_t flags = meta.flags & kKnownFlags;
  const size_t meta_len = MetaSize(flags);
  const size_t total = EncodedSize(payload.size(), meta_len);
  Put<uint32_t>(dst, static_cast<uint32_t>(payload.size()) | (flags << kLengthBits));
  Put<uint32_t>(dst + 4, 0);
  Put<uint64_t>(dst + 8, seq);
  std::byte* p = dst + kRecordHeaderSize;
  if (flags & kFlagDurable) {
    Put<uint64_t>(p, meta.durable_seq);
    p += 8;
  }
  if (flags & kFlagTime) {
    Put<uint64_t>(p, meta.time_ns);
    p += 8;
  }
  if (flags & kFlagProducer) {
    Put<uint32_t>(p, meta.pid);
    Put<uint32_t>(p + 4, meta.uid);
    Put<uint32_t>(p + 8, meta.gid);
    p += 12;
  }
  if (flags & kFlagProducerSeq) {
    Put<uint64_t>(p, meta.producer_id);
    Put<uint64_t>(p + 8, meta.producer_seq);
    p += 16;
  }
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
  const size_t used = kRecordHeaderSize + meta_len + payload.size();
  Put<uint32_t>(dst + 4, crc32c::Mask(crc32c::Value(dst, used)) ^ salt);
  std::memset(dst + used, 0, total - used);
  return total;
}

bool RestampDurable(std::byte* record, uint64_t durable_seq, uint32_t salt) {
  const uint32_t word = Get<uint32_t>(record);
  const uint32_t flags = word >> kLengthBits;
  if (!(flags & kFlagDurable) || Get<uint64_t>(record + kRecordHeaderSize) >= durable_seq) return false;
  Put<uint64_t>(record + kRecordHeaderSize, durable_seq);  // the first metadata field
  const size_t used = kRecordHeaderSize + MetaSize(flags) + (word & kMaxPayload);
  Put<uint32_t>(record + 4, 0);
  Put<uint32_t>(record + 4, crc32c::Mask(crc32c::Value(record, used)) ^ salt);
  return true;
}

const char* DecodeStatusName(DecodeStatus s) {
  switch (s) {
    case DecodeStatus::kOk: return "ok";
    case DecodeStatus::kTruncated: return "truncated record";
    case DecodeStatus::kBadFlags: return "unknown record flags";
    case DecodeStatus::kBadChecksum: return "record checksum mismatch";
    case DecodeStatus::kBadPadding: return "non-zero record padding";
  }
  return "?";
}

DecodeStatus DecodeRecord(std::span<const std::byte> bytes, RecordView* out, uint32_t salt) {
  if (bytes.size() < kRecordHeaderSize) return DecodeStatus::kTruncated;
  const uint32_t length_word = Get<uint32_t>(bytes.data());
  const uint32_t flags = length_word >> kLengthBits;
  const uint32_t len = length_word & kMaxPayload;
  if ((flags & ~kKnownFlags) != 0) return DecodeStatus::kBadFlags;
  const size_t meta_len = MetaSize(flags);
  if (bytes.size() < kRecordHeaderSize + meta_len + len) return DecodeStatus::kTruncated;
  if (crc32c::Unmask(Get<uint32_t>(bytes.data() + 4) ^ salt) !=
      HeaderAndPayloadCrc(bytes.data(), bytes.subspan(kRecordHeaderSize, meta_len + len))) {
    return DecodeStatus::kBadChecksum;
  }
  // Padding is not under the CRC but must be zero: a flipped bit there is
  // damage too, and is seen.
  const size_t unpadded = kRecordHeaderSize + meta_len + len;
  const size_t total = EncodedSize(len, meta_len);
  for (size_t i = unpadded; i < total && i < bytes.size(); ++i) {
    if (bytes[i] != std::byte{0}) return DecodeStatus::kBadPadding;
  }
  out->seq = Get<uint64_t>(bytes.data() + 8);
  out->meta = RecordMeta{};
  out->meta.flags = flags;
  const std::byte* p = bytes.data() + kRecordHeaderSize;
  if (flags & kFlagDurable) {
    out->meta.durable_seq = Get<uint64_t>(p);
    p += 8;
  }
  if (flags & kFlagTime) {
    out->meta.time_ns = Get<uint64_t>(p);
    p += 8;
  }
  if (flags & kFlagProducer) {
    out->meta.pid = Get<uint32_t>(p);
    out->meta.uid = Get<uint32_t>(p + 4);
    out->meta.gid = Get<uint32_t>(p + 8);
    p += 12;
  }
  if (flags & kFlagProducerSeq) {
    out->meta.producer_id = Get<uint64_t>(p);
    out->meta.producer_seq = Get<uint64_t>(p + 8);
  }
  out->payload = bytes.subspan(kRecordHeaderSize + meta_len, len);
  out->encoded_size = total;
  return DecodeStatus::kOk;
}

namespace {
size_t PeekMetaAndPayload(std::span<const std::byte> bytes) {
  const uint32_t word = Get<uint32_t>(bytes.data());
  const uint32_t flags = word >> kLengthBits;
  return (word & kMaxPayload) + ((flags & ~kKnownFlags) != 0 ? 0 : MetaSize(flags));
}
}  // namespace

size_t PeekEncodedSize(std::span<const std::byte> bytes) {
  if (bytes.size() < kRecordHeaderSize) return 0;
  return EncodedSize(PeekMetaAndPayload(bytes));
}

size_t PeekUnpaddedSize(std::span<const std::byte> bytes) {
  if (bytes.size() < kRecordHeaderSize) return 0;
  return kRecordHeaderSize + PeekMetaAndPayload(bytes);
}

uint64_t PeekSeq(std::span<const std::byte> bytes) {
  return bytes.size() < kRecordHeaderSize ? 0 : Get<uint64_t>(bytes.data() + 8);
}

void SaltRecords(std::span<std::byte> records, uint32_t salt) {
  for (size_t off = 0; off + kRecordHeaderSize <= records.size();) {
    const size_t size = PeekEncodedSize(records.subspan(off));
    Put<uint32_t>(records.data() + off + 4, Get<uint32_t>(records.data() + off + 4) ^ salt);
    off += size;
  }
}

uint32_t SegmentSalt(uint32_t salt_key, uint64_t first_seq) {
  // SplitMix64's finalizer over the key and the first seq: every bit of
  // each reaches every bit of the salt.
  uint64_t z = (static_cast<uint64_t>(salt_key) << 32 | salt_key) ^ (first_seq * 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const auto salt = static_cast<uint32_t>(z ^ (z >> 32));
  return salt != 0 ? salt : 1;
}

SegmentSalts SaltsOf(const SegmentHeader& h, uint32_t salt_key) {
  if (h.version < kFirstSaltedVersion) return {};
  return {SegmentSalt(salt_key, h.first_seq), h.stale_salt, h.stale_salt != 0};
}

void EncodeSegmentHeader(const SegmentHeader& h, std::byte* dst) {
  std::memset(dst, 0, kSegmentHeaderSize);
  std::memcpy(dst, kSegmentMagic.data(), kSegmentMagic.size());
  Put<uint32_t>(dst + 8, kFormatVersion);
  Put<uint32_t>(dst + 12, static_cast<uint32_t>(kSegmentHeaderSize));
  std::memcpy(dst + 16, h.log_id.data(), h.log_id.size());
  Put<uint64_t>(dst + 32, h.first_seq);
  Put<uint64_t>(dst + 40, h.gap_from);
  Put<uint32_t>(dst + 48, h.stale_salt);
  SealFixed(dst);
}

std::string DecodeSegmentHeader(std::span<const std::byte> bytes, SegmentHeader* out) {
  if (std::string why = CheckFixed(bytes, kSegmentMagic); !why.empty()) return why;
  if (Get<uint32_t>(bytes.data() + 12) != kSegmentHeaderSize) return "unexpected header size";
  std::memcpy(out->log_id.data(), bytes.data() + 16, out->log_id.size());
  out->first_seq = Get<uint64_t>(bytes.data() + 32);
  out->gap_from = Get<uint64_t>(bytes.data() + 40);
  out->version = Get<uint32_t>(bytes.data() + 8);
  out->stale_salt = out->version >= kFirstSaltedVersion ? Get<uint32_t>(bytes.data() + 48) : 0;
  if (out->first_seq == 0) return "first seq is 0";
  if (out->gap_from >= out->first_seq) return "gap start is not below the first seq";
  return {};
}

void EncodeMeta(const Meta& m, std::byte* dst) {
  std::memset(dst, 0, kMetaSize);
  std::memcpy(dst, kMetaMagic.data(), kMetaMagic.size());
  Put<uint32_t>(dst + 8, kFormatVersion);
  std::memcpy(dst + 16, m.log_id.data(), m.log_id.size());
  Put<uint64_t>(dst + 32, m.trim_seq);
  Put<uint64_t>(dst + 40, m.durable_floor);
  Put<uint64_t>(dst + 48, m.salvage_floor);
  Put<uint32_t>(dst + 56, m.salt_key);
  SealFixed(dst);
}

std::string DecodeMeta(std::span<const std::byte> bytes, Meta* out) {
  if (std::string why = CheckFixed(bytes, kMetaMagic); !why.empty()) return why;
  std::memcpy(out->log_id.data(), bytes.data() + 16, out->log_id.size());
  out->trim_seq = Get<uint64_t>(bytes.data() + 32);
  out->durable_floor = Get<uint64_t>(bytes.data() + 40);
  out->salvage_floor = Get<uint64_t>(bytes.data() + 48);
  out->version = Get<uint32_t>(bytes.data() + 8);
  out->salt_key = out->version >= kFirstSaltedVersion ? Get<uint32_t>(bytes.data() + 56) : 0;
  return {};
}

std::string SegmentFileName(uint64_t first_seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu.wal", static_cast<unsigned long long>(first_seq));
  return buf;
}

bool ParseSegmentFileName(std::string_view name, uint64_t* first_seq) {
  if (name.size() != 20 + kSegmentSuffix.size() || !name.ends_with(kSegmentSuffix)) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 20; ++i) {
    char c = name[i];
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (v == 0) return false;
  *first_seq = v;
  return true;
}

}  // namespace wald::storage
