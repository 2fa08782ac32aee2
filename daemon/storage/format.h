// The on-disk format, byte for byte: see FORMAT.md beside this file for the
// prose. Everything here is a pure function over caller-owned memory, so that
// the loop thread can encode records while the writer thread only does I/O.
// All integers are little-endian.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace wald::storage {

static_assert(std::endian::native == std::endian::little, "the format code assumes a little-endian host");

using LogId = std::array<uint8_t, 16>;
std::string LogIdToString(const LogId& id);  // 32 lowercase hex digits

// ---- Records ----
// [0,4)     length word: bits 0..23 payload length, bits 24..31 flags
// [4,8)     masked CRC32C of the record's bytes [0, 16+m+n) with [4,8) read as
//           zero, XORed with the salt of the segment it lies in (0 before
//           version 5; see SegmentSalt)
// [8,16)    seq
// [16,16+m) metadata announced by the flags, in flag-bit order (m may be 0)
// then the payload (n bytes) and zero padding to a multiple of 8
inline constexpr size_t kRecordHeaderSize = 16;
inline constexpr size_t kRecordAlign = 8;
inline constexpr uint32_t kLengthBits = 24;
inline constexpr uint32_t kMaxPayload = (1u << kLengthBits) - 1;  // 16 MiB - 1

// Flags (bits of the length word's top byte) and the metadata each announces.
// kFlagDurable: u64, the writer's durable seq when the record was encoded:
//   every seq at or below it had survived an fdatasync before this record was
//   written. Recovery proves damage with it (FORMAT.md, "The durability rule").
// kFlagTime: u64, wall-clock time of receipt, ns since the Unix epoch.
// kFlagProducer: u32 pid, u32 uid, u32 gid of the sending process
//   (SO_PEERCRED at accept).
// kFlagProducerSeq: u64 producer id, u64 producer seq: an idempotent
//   producer's record and its number (PROTOCOL.md, "Idempotent producers");
//   recovery rebuilds the de-duplication table from them.
inline constexpr uint32_t kFlagDurable = 1u << 0;
inline constexpr uint32_t kFlagTime = 1u << 1;
inline constexpr uint32_t kFlagProducer = 1u << 2;
inline constexpr uint32_t kFlagProducerSeq = 1u << 3;
inline constexpr uint32_t kKnownFlags = kFlagDurable | kFlagTime | kFlagProducer | kFlagProducerSeq;
inline constexpr size_t kMaxMetaSize = 8 + 8 + 12 + 16;

constexpr size_t MetaSize(uint32_t flags) {
  return ((flags & kFlagDurable) ? 8 : 0) + ((flags & kFlagTime) ? 8 : 0) + ((flags & kFlagProducer) ? 12 : 0) +
         ((flags & kFlagProducerSeq) ? 16 : 0);
}

// Optional metadata of one record; `flags` says which fields are present.
struct RecordMeta {
  uint32_t flags = 0;
  uint64_t durable_seq = 0;  // kFlagDurable
  uint64_t time_ns = 0;      // kFlagTime
  uint32_t pid = 0;          // kFlagProducer
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t producer_id = 0;  // kFlagProducerSeq
  uint64_t producer_seq = 0;
};

constexpr size_t EncodedSize(size_t payload_len, size_t meta_len = 0) {
  return (kRecordHeaderSize + meta_len + payload_len + kRecordAlign - 1) & ~(kRecordAlign - 1);
}

// Writes the record (header, metadata, payload, padding) to dst, which must
// hold EncodedSize(payload.size(), MetaSize(meta.flags)) bytes;
// payload.size() <= kMaxPayload; meta.flags within kKnownFlags. The CRC is
// salted with `salt` (the segment's it is meant for; see SegmentSalt).
// Returns the bytes written.
size_t EncodeRecord(uint64_t seq, const RecordMeta& meta, std::span<const std::byte> payload, std::byte* dst,
                    uint32_t salt = 0);
// The same without metadata.
inline size_t EncodeRecord(uint64_t seq, std::span<const std::byte> payload, std::byte* dst) {
  return EncodeRecord(seq, RecordMeta{}, payload, dst);
}

// Raises the durable stamp of the encoded record at `record` (salted with
// `salt`) to `durable_seq` and recomputes its CRC, if the record carries
// kFlagDurable and its stamp is lower; returns whether it did. The writer
// thread does this to the first record of each batch just before writing
// it, when it knows exactly what is durable (FORMAT.md, "The durability
// rule").
bool RestampDurable(std::byte* record, uint64_t durable_seq, uint32_t salt = 0);

struct RecordView {
  uint64_t seq = 0;
  RecordMeta meta;                     // flags == 0: none stored
  std::span<const std::byte> payload;  // points into the decoded buffer
  size_t encoded_size = 0;             // header + metadata + payload + padding
};

enum class DecodeStatus {
  kOk,
  kTruncated,    // fewer bytes than the header or the length announce
  kBadFlags,     // flag bits this version does not know
  kBadChecksum,  // CRC mismatch (also what zero-filled space decodes to)
  kBadPadding,   // the zero padding after the payload is not zero
};
const char* DecodeStatusName(DecodeStatus s);

// Parses and verifies the record at the start of `bytes`, stored with
// `salt` (its segment's: SaltOf). Does not check the seq against an expected
// one: that is the scanner's job.
DecodeStatus DecodeRecord(std::span<const std::byte> bytes, RecordView* out, uint32_t salt = 0);

// XORs `salt` into the CRC field of each record in `records` (whole encoded
// records, back to back): what the writer does to records as it writes them
// into a segment. XOR undoes itself.
void SaltRecords(std::span<std::byte> records, uint32_t salt);

// Reads only the header fields (no CRC check): for splitting already-encoded
// chunks at record boundaries. Returns 0 if bytes.size() < kRecordHeaderSize.
// Unknown flags count no metadata (the record will not decode anyway).
size_t PeekEncodedSize(std::span<const std::byte> bytes);
// The bytes DecodeRecord needs: header, metadata and payload, no padding.
size_t PeekUnpaddedSize(std::span<const std::byte> bytes);
uint64_t PeekSeq(std::span<const std::byte> bytes);

// ---- Segment header ----
// [0,8)   magic "WALDSEG\x1a"
// [8,12)  format version (4; version 3 is read too)
// [12,16) header size (64): records start here
// [16,32) log id
// [32,40) first seq
// [40,48) gap from: 0, or the first seq of a range [gap_from, first_seq)
//         that a salvage cut: those seqs do not exist, and the previous
//         segment ends just before gap_from
// [48,52) stale salt (version 5): the salt of the records a recycled file
//         still holds from its previous life; 0 for a zero-filled file
// [52,60) reserved, zero
// [60,64) masked CRC32C of [0,60)
inline constexpr size_t kSegmentHeaderSize = 64;
// Written: kFormatVersion. Read: kOldestFormatVersion up to it. Version 4
// added kFlagProducerSeq; a version-3 file has no such record, and an
// older daemon refuses a version-4 file instead of misreading its records.
// Version 5 salts records (SegmentSalt) and keeps the log's salt key in
// wald.meta.
inline constexpr uint32_t kFormatVersion = 5;
inline constexpr uint32_t kOldestFormatVersion = 3;
inline constexpr uint32_t kFirstSaltedVersion = 5;
inline constexpr std::string_view kSegmentMagic{"WALDSEG\x1a", 8};

struct SegmentHeader {
  LogId log_id{};
  uint64_t first_seq = 0;
  uint64_t gap_from = 0;              // 0: the previous segment ends at first_seq - 1
  uint32_t stale_salt = 0;            // version 5; 0 before
  uint32_t version = kFormatVersion;  // as read; EncodeSegmentHeader writes kFormatVersion
};
void EncodeSegmentHeader(const SegmentHeader& h,
                         std::byte* dst);  // kSegmentHeaderSize bytes
// Returns an empty string on success, else why the header is invalid.
std::string DecodeSegmentHeader(std::span<const std::byte> bytes, SegmentHeader* out);

// ---- Meta file (wald.meta) ----
// [0,8)   magic "WALDMETA"
// [8,12)  format version (5; versions 3 and 4 are read, and rewritten as 5 at
//         open)
// [12,16) reserved, zero
// [16,32) log id
// [32,40) trim seq: records at or below it are released
// [40,48) durable floor: every seq at or below it survived an fdatasync
//         (written at a clean close and after recovery; only ever grows)
// [48,56) salvage floor: seqs at or below it may have been acked by an
//         earlier run, so they are never handed out again (0: no salvage)
// [56,60) salt key (version 5; read as 0 before): see SegmentSalt
// [60,64) masked CRC32C of [0,60)
inline constexpr size_t kMetaSize = 64;
inline constexpr std::string_view kMetaMagic{"WALDMETA", 8};

struct Meta {
  LogId log_id{};
  uint64_t trim_seq = 0;
  uint64_t durable_floor = 0;
  uint64_t salvage_floor = 0;
  uint32_t salt_key = 0;
  uint32_t version = kFormatVersion;  // as read (DecodeMeta); EncodeMeta writes kFormatVersion
};
void EncodeMeta(const Meta& m, std::byte* dst);  // kMetaSize bytes
std::string DecodeMeta(std::span<const std::byte> bytes, Meta* out);

// ---- Salts ----
// Records in a version-5 segment are salted: their stored CRC is XORed with
// a salt that depends on the log's secret salt key (drawn when the log is
// made, kept in wald.meta) and on the segment's first seq. A record is
// valid only in the segment life it was written for. Old records left in a
// recycled segment do not verify in its new life, nor does a record a
// client forges inside a payload: a client cannot know the salt (FORMAT.md,
// "Salted records"). Never 0.
uint32_t SegmentSalt(uint32_t salt_key, uint64_t first_seq);
// The salts a segment's bytes verify under: `own` for its records; `stale`
// for the records of the segment a recycled file was before (recovery skips
// those), known unless the file was zero-filled. Before version 5 both are 0:
// nothing was salted.
struct SegmentSalts {
  uint32_t own = 0;
  uint32_t stale = 0;
  bool stale_known = true;
};
SegmentSalts SaltsOf(const SegmentHeader& h, uint32_t salt_key);
inline uint32_t SaltOf(const SegmentHeader& h, uint32_t salt_key) { return SaltsOf(h, salt_key).own; }

// ---- File names ----
inline constexpr std::string_view kMetaFileName = "wald.meta";
inline constexpr std::string_view kLockFileName = "wald.lock";
inline constexpr std::string_view kSegmentSuffix = ".wal";
inline constexpr std::string_view kTempSuffix = ".tmp";
// Bytes recovery cut from a segment, kept for the operator:
// "<segment name>.<offset>.broken" (a whole segment: offset 0).
inline constexpr std::string_view kBrokenSuffix = ".broken";
std::string SegmentFileName(uint64_t first_seq);  // "00000000000000000001.wal"
// True and *first_seq set if `name` is a segment file name.
bool ParseSegmentFileName(std::string_view name, uint64_t* first_seq);

}  // namespace wald::storage
