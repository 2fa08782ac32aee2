// Framing for the wald wire protocol: a stream of size-prefixed FlatBuffers
// (4-byte little-endian length, then a wald.proto.Message buffer). See
// PROTOCOL.md. Knows nothing of sockets or files.
//
// ParseFrame verifies every frame with the FlatBuffers verifier before any
// field may be read (an Append with an equivalent check of its own,
// append_check.h). FrameBuilder builds outgoing frames into one reused
// buffer: after warm-up it does not allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "wald_generated.h"

namespace wald::proto {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr size_t kPrefixSize = 4;
// Bytes a frame needs beyond an Append's payload (tables, offsets, padding).
inline constexpr uint32_t kAppendOverhead = 128;
// An AppendBatch frame needs kAppendOverhead plus this much per record (its
// entry in sizes) beyond its payloads.
inline constexpr uint32_t kBatchRecordOverhead = 4;
// A Records frame carries up to this much payload (or one record, if larger);
// so frames from the server are at most max_frame_size + kRecordsChunk.
inline constexpr uint32_t kRecordsChunk = 256 << 10;
// The largest max_frame_size a daemon may announce (a 16 MiB record and its
// Append overhead). A client refuses a HelloAck above it.
inline constexpr uint32_t kMaxFrameSize = (16u << 20) + kAppendOverhead;

struct ParsedFrame {
  enum Kind {
    kNeedMore,  // the buffer ends inside a frame: `needed` total bytes
    kFrame,     // `msg` is a verified frame of `consumed` bytes (prefix included)
    kTooLarge,  // the prefix declares `declared` bytes, over the limit
    kInvalid,   // the frame failed verification (or has no body)
  } kind;
  size_t consumed = 0;
  size_t needed = 0;
  uint32_t declared = 0;
  const Message* msg = nullptr;         // points into the parsed buffer
  std::span<const uint8_t> bytes = {};  // that buffer: the frame, prefix included
};

// Whether this code knows the message's union member (a newer peer may send
// members appended after these: PROTOCOL.md).
inline bool KnownBody(Body b) { return b <= Body::MAX; }

// The request_id of a verified frame whose union member this code does not
// know: its body checked as a table whose field 0 is a u64, as in every
// request; 0 if it is not one.
uint64_t UnknownRequestId(const ParsedFrame& f);

// Parses the frame at the front of `buf`. A frame at an address that is not
// 8-aligned is copied into *scratch first (kInvalid without one); `msg` then
// points into *scratch.
ParsedFrame ParseFrame(std::span<const uint8_t> buf, uint32_t max_frame, std::vector<uint8_t>* scratch = nullptr);

// Builds outgoing frames. Each Build* call replaces the previous frame; the
// returned span is valid until the next call.
class FrameBuilder {
 public:
  explicit FrameBuilder(size_t initial = 1024) : fbb_(initial) {}

  // producer_id 0: a plain connection (PROTOCOL.md, "Idempotent producers").
  std::span<const uint8_t> Hello(std::string_view client_name, uint32_t version = kProtocolVersion,
                                 uint64_t producer_id = 0);
  std::span<const uint8_t> HelloAck(std::span<const uint8_t> log_id, uint64_t durable_seq, uint32_t max_frame,
                                    uint32_t max_record, uint32_t max_inflight, std::string_view server_version,
                                    uint32_t max_batch_records = 0, uint64_t producer_seq = 0,
                                    uint32_t producer_depth = 0);
  // producer_seq 0: not numbered (a plain connection).
  std::span<const uint8_t> Append(uint64_t request_id, std::span<const uint8_t> payload, uint64_t producer_seq = 0);
  // sizes[i] is record i's length; data holds them back to back.
  std::span<const uint8_t> AppendBatch(uint64_t request_id, std::span<const uint32_t> sizes,
                                       std::span<const uint8_t> data, uint64_t producer_seq = 0);
  std::span<const uint8_t> Acks(std::span<const AckEntry> acks, std::span<const BatchAckEntry> batches = {});
  std::span<const uint8_t> Error(uint64_t request_id, ErrorCode code, std::string_view message, uint64_t first_seq = 0);
  std::span<const uint8_t> Read(uint64_t request_id, uint64_t from_seq, uint64_t max_records, bool follow);
  std::span<const uint8_t> Trim(uint64_t request_id, uint64_t up_to_seq);
  std::span<const uint8_t> CancelRead(uint64_t request_id);
  std::span<const uint8_t> TrimAck(uint64_t request_id, uint64_t released_up_to, std::string_view held_by = {});
  std::span<const uint8_t> Hold(uint64_t request_id, std::string_view name, uint64_t seq);
  std::span<const uint8_t> ReleaseHold(uint64_t request_id, std::string_view name);
  std::span<const uint8_t> HoldAck(uint64_t request_id, std::string_view name, uint64_t seq);
  std::span<const uint8_t> StatsRequest(uint64_t request_id);

  // For messages built by hand (StatsReply): finish `body` and return the frame.
  flatbuffers::FlatBufferBuilder& fbb() { return fbb_; }
  std::span<const uint8_t> Finish(Body type, flatbuffers::Offset<void> body);

 private:
  flatbuffers::FlatBufferBuilder fbb_;
};

const char* ErrorCodeName(ErrorCode code);

}  // namespace wald::proto
