#include "framing.h"

#include <cstring>

#include "append_check.h"

namespace wald::proto {

ParsedFrame ParseFrame(std::span<const uint8_t> buf, uint32_t max_frame, std::vector<uint8_t>* scratch) {
  ParsedFrame r{ParsedFrame::kNeedMore};
  if (buf.size() < kPrefixSize) {
    r.needed = kPrefixSize;
    return r;
  }
  uint32_t len;
  std::memcpy(&len, buf.data(), sizeof len);  // little-endian hosts only (static_assert in storage)
  r.declared = len;
  if (len > max_frame) {
    r.kind = ParsedFrame::kTooLarge;
    return r;
  }
  const size_t total = kPrefixSize + len;
  if (buf.size() < total) {
    r.needed = total;
    return r;
  }
  // FlatBuffers reads scalars in place: the frame must start at an 8-aligned
  // address (its builder aligned it so). Frames after one whose size is not
  // a multiple of 8 do not: copy those.
  const uint8_t* frame = buf.data();
  if (reinterpret_cast<uintptr_t>(frame) % 8 != 0) {
    if (scratch == nullptr) {
      r.kind = ParsedFrame::kInvalid;
      return r;
    }
    scratch->assign(frame, frame + total);
    frame = scratch->data();
  }
  // The size-prefixed form: offsets and alignment count from the prefix.
  // An Append is checked in straight code (append_check.h); any other frame,
  // or one that check does not follow, by the general verifier.
  if (!IsVerifiedAppend(frame, total)) {
    flatbuffers::Verifier verifier(frame, total);
    if (!VerifySizePrefixedMessageBuffer(verifier)) {
      r.kind = ParsedFrame::kInvalid;
      return r;
    }
  }
  const Message* msg = GetSizePrefixedMessage(frame);
  if (msg->body_type() == Body::NONE || msg->body() == nullptr) {
    r.kind = ParsedFrame::kInvalid;
    return r;
  }
  // The verifier checks a vector's 4-byte length for alignment, not that its
  // 8-byte structs are 8-aligned (found by frame_fuzz). A builder always
  // aligns them; reject a frame that does not, so that reading one is never
  // a misaligned access.
  if (msg->body_type() == Body::Acks) {
    const auto* acks = msg->body_as_Acks()->acks();
    const auto* batches = msg->body_as_Acks()->batches();
    if ((acks != nullptr && reinterpret_cast<uintptr_t>(acks->Data()) % alignof(AckEntry) != 0) ||
        (batches != nullptr && reinterpret_cast<uintptr_t>(batches->Data()) % alignof(BatchAckEntry) != 0)) {
      r.kind = ParsedFrame::kInvalid;
      return r;
    }
  }
  r.kind = ParsedFrame::kFrame;
  r.consumed = total;
  r.msg = msg;
  r.bytes = {frame, total};
  return r;
}

uint64_t UnknownRequestId(const ParsedFrame& f) {
  // The verifier passed the body's offset but, not knowing the member, not
  // the table it points to: check that table and its field 0 now.
  flatbuffers::Verifier v(f.bytes.data(), f.bytes.size());
  const auto* t = reinterpret_cast<const flatbuffers::Table*>(f.msg->body());
  constexpr flatbuffers::voffset_t kField0 = 4;
  if (!t->VerifyTableStart(v) || !t->VerifyField<uint64_t>(v, kField0, sizeof(uint64_t))) return 0;
  return t->GetField<uint64_t>(kField0, 0);
}

std::span<const uint8_t> FrameBuilder::Finish(Body type, flatbuffers::Offset<void> body) {
  auto msg = CreateMessage(fbb_, type, body);
  fbb_.FinishSizePrefixed(msg);
  return {fbb_.GetBufferPointer(), fbb_.GetSize()};
}

std::span<const uint8_t> FrameBuilder::Hello(std::string_view client_name, uint32_t version, uint64_t producer_id) {
  fbb_.Clear();
  auto name = fbb_.CreateString(client_name.data(), client_name.size());
  return Finish(Body::Hello, CreateHello(fbb_, version, name, producer_id).Union());
}

std::span<const uint8_t> FrameBuilder::HelloAck(std::span<const uint8_t> log_id, uint64_t durable_seq,
                                                uint32_t max_frame, uint32_t max_record, uint32_t max_inflight,
                                                std::string_view server_version, uint32_t max_batch_records,
                                                uint64_t producer_seq, uint32_t producer_depth) {
  fbb_.Clear();
  auto id = fbb_.CreateVector(log_id.data(), log_id.size());
  auto ver = fbb_.CreateString(server_version.data(), server_version.size());
  return Finish(Body::HelloAck, CreateHelloAck(fbb_, kProtocolVersion, id, durable_seq, max_frame, max_record,
                                               max_inflight, ver, max_batch_records, producer_seq, producer_depth)
                                    .Union());
}

std::span<const uint8_t> FrameBuilder::Append(uint64_t request_id, std::span<const uint8_t> payload,
                                              uint64_t producer_seq) {
  fbb_.Clear();
  auto data = fbb_.CreateVector(payload.data(), payload.size());
  return Finish(Body::Append, CreateAppend(fbb_, request_id, data, producer_seq).Union());
}

std::span<const uint8_t> FrameBuilder::AppendBatch(uint64_t request_id, std::span<const uint32_t> sizes,
                                                   std::span<const uint8_t> data, uint64_t producer_seq) {
  fbb_.Clear();
  auto d = fbb_.CreateVector(data.data(), data.size());
  auto s = fbb_.CreateVector(sizes.data(), sizes.size());
  return Finish(Body::AppendBatch, CreateAppendBatch(fbb_, request_id, s, d, producer_seq).Union());
}

std::span<const uint8_t> FrameBuilder::Acks(std::span<const AckEntry> acks, std::span<const BatchAckEntry> batches) {
  fbb_.Clear();
  auto v = acks.empty() ? 0 : fbb_.CreateVectorOfStructs(acks.data(), acks.size());
  auto b = batches.empty() ? 0 : fbb_.CreateVectorOfStructs(batches.data(), batches.size());
  return Finish(Body::Acks, CreateAcks(fbb_, v, b).Union());
}

std::span<const uint8_t> FrameBuilder::Error(uint64_t request_id, ErrorCode code, std::string_view message,
                                             uint64_t first_seq) {
  fbb_.Clear();
  auto m = fbb_.CreateString(message.data(), message.size());
  return Finish(Body::Error, CreateError(fbb_, request_id, code, m, first_seq).Union());
}

std::span<const uint8_t> FrameBuilder::Read(uint64_t request_id, uint64_t from_seq, uint64_t max_records, bool follow) {
  fbb_.Clear();
  return Finish(Body::Read, CreateRead(fbb_, request_id, from_seq, max_records, follow).Union());
}

std::span<const uint8_t> FrameBuilder::Trim(uint64_t request_id, uint64_t up_to_seq) {
  fbb_.Clear();
  return Finish(Body::Trim, CreateTrim(fbb_, request_id, up_to_seq).Union());
}

std::span<const uint8_t> FrameBuilder::CancelRead(uint64_t request_id) {
  fbb_.Clear();
  return Finish(Body::CancelRead, CreateCancelRead(fbb_, request_id).Union());
}

std::span<const uint8_t> FrameBuilder::TrimAck(uint64_t request_id, uint64_t released_up_to, std::string_view held_by) {
  fbb_.Clear();
  auto by = held_by.empty() ? 0 : fbb_.CreateString(held_by.data(), held_by.size());
  return Finish(Body::TrimAck, CreateTrimAck(fbb_, request_id, released_up_to, by).Union());
}

std::span<const uint8_t> FrameBuilder::Hold(uint64_t request_id, std::string_view name, uint64_t seq) {
  fbb_.Clear();
  auto n = fbb_.CreateString(name.data(), name.size());
  return Finish(Body::Hold, CreateHold(fbb_, request_id, n, seq).Union());
}

std::span<const uint8_t> FrameBuilder::ReleaseHold(uint64_t request_id, std::string_view name) {
  fbb_.Clear();
  auto n = fbb_.CreateString(name.data(), name.size());
  return Finish(Body::ReleaseHold, CreateReleaseHold(fbb_, request_id, n).Union());
}

std::span<const uint8_t> FrameBuilder::HoldAck(uint64_t request_id, std::string_view name, uint64_t seq) {
  fbb_.Clear();
  auto n = fbb_.CreateString(name.data(), name.size());
  return Finish(Body::HoldAck, CreateHoldAck(fbb_, request_id, n, seq).Union());
}

std::span<const uint8_t> FrameBuilder::StatsRequest(uint64_t request_id) {
  fbb_.Clear();
  return Finish(Body::StatsRequest, CreateStatsRequest(fbb_, request_id).Union());
}

const char* ErrorCodeName(ErrorCode code) {
  const char* n = EnumNameErrorCode(code);
  return n && *n ? n : "Unknown";
}

}  // namespace wald::proto
