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
// [0,4)   length word: bits 0..23 payload length, bits 24..31 flags
// [4,8)   masked CRC32C of the record's bytes [0, 16+n) with [4,8) read as zero
// [8,16)  seq
// [16,..) payload, then zero padding to a multiple of 8
inline constexpr size_t kRecordHeaderSize = 16;
inline constexpr size_t kRecordAlign = 8;
inline constexpr uint32_t kLengthBits = 24;
inline constexpr uint32_t kMaxPayload = (1u << kLengthBits) - 1;  // 16 MiB - 1
// No flag is defined by format version 2; a record with any flag set is
// invalid to this version (a later version announces metadata this way).
inline constexpr uint32_t kKnownFlags = 0;

constexpr size_t EncodedSize(size_t payload_len) {
  return (kRecordHeaderSize + payload_len + kRecordAlign - 1) & ~(kRecordAlign - 1);
}

// Writes the record (header, payload, padding) to dst, which must hold
// EncodedSize(payload.size()) bytes; payload.size() <= kMaxPayload.
// Returns the bytes written.
size_t EncodeRecord(uint64_t seq, std::span<const std::byte> payload, std::byte* dst);

struct RecordView {
  uint64_t seq = 0;
  std::span<const std::byte> payload;  // points into the decoded buffer
  size_t encoded_size = 0;             // header + payload + padding
};

enum class DecodeStatus {
  kOk,
  kTruncated,    // fewer bytes than the header or the length announce
  kBadFlags,     // flag bits this version does not know
  kBadChecksum,  // CRC mismatch (also what zero-filled space decodes to)
};
const char* DecodeStatusName(DecodeStatus s);

// Parses and verifies the record at the start of `bytes`. Does not check the
// seq against an expected one: that is the scanner's job.
DecodeStatus DecodeRecord(std::span<const std::byte> bytes, RecordView* out);

// Reads only the header fields (no CRC check): for splitting already-encoded
// chunks at record boundaries. Returns 0 if bytes.size() < kRecordHeaderSize.
size_t PeekEncodedSize(std::span<const std::byte> bytes);
// The bytes DecodeRecord needs: the header and the payload, without padding.
size_t PeekUnpaddedSize(std::span<const std::byte> bytes);
uint64_t PeekSeq(std::span<const std::byte> bytes);

// ---- Segment header ----
// [0,8)   magic "WALDSEG\x1a"
// [8,12)  format version (2)
// [12,16) header size (64): records start here
// [16,32) log id
// [32,40) first seq
// [40,60) reserved, zero
// [60,64) masked CRC32C of [0,60)
inline constexpr size_t kSegmentHeaderSize = 64;
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr std::string_view kSegmentMagic{"WALDSEG\x1a", 8};

struct SegmentHeader {
  LogId log_id{};
  uint64_t first_seq = 0;
};
void EncodeSegmentHeader(const SegmentHeader& h, std::byte* dst);  // kSegmentHeaderSize bytes
// Returns an empty string on success, else why the header is invalid.
std::string DecodeSegmentHeader(std::span<const std::byte> bytes, SegmentHeader* out);

// ---- Meta file (wald.meta) ----
// [0,8)   magic "WALDMETA"
// [8,12)  format version (2)
// [12,16) reserved, zero
// [16,32) log id
// [32,40) trim seq: records at or below it are released
// [40,60) reserved, zero
// [60,64) masked CRC32C of [0,60)
inline constexpr size_t kMetaSize = 64;
inline constexpr std::string_view kMetaMagic{"WALDMETA", 8};

struct Meta {
  LogId log_id{};
  uint64_t trim_seq = 0;
};
void EncodeMeta(const Meta& m, std::byte* dst);  // kMetaSize bytes
std::string DecodeMeta(std::span<const std::byte> bytes, Meta* out);

// ---- File names ----
inline constexpr std::string_view kMetaFileName = "wald.meta";
inline constexpr std::string_view kLockFileName = "wald.lock";
inline constexpr std::string_view kSegmentSuffix = ".wal";
inline constexpr std::string_view kTempSuffix = ".tmp";
std::string SegmentFileName(uint64_t first_seq);  // "00000000000000000001.wal"
// True and *first_seq set if `name` is a segment file name.
bool ParseSegmentFileName(std::string_view name, uint64_t* first_seq);

}  // namespace wald::storage
