// libFuzzer target: the inbound frame decoder and every accessor the daemon's
// dispatch uses, on arbitrary bytes. The verifier must reject anything whose
// fields cannot be read safely.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "append_check.h"
#include "framing.h"

namespace {

// Touches what Server::Dispatch and the client's Dispatch read.
size_t Walk(const wald::proto::Message* m) {
  using wald::proto::Body;
  size_t n = 0;
  switch (m->body_type()) {
    case Body::Hello:
      n += m->body_as_Hello()->protocol_version();
      if (auto* s = m->body_as_Hello()->client_name()) n += s->size();
      break;
    case Body::Append:
      n += m->body_as_Append()->request_id();
      if (auto* p = m->body_as_Append()->payload()) n += p->size() ? p->Get(p->size() - 1) : 0;
      break;
    case Body::Acks:
      if (auto* a = m->body_as_Acks()->acks()) {
        for (const auto* e : *a) n += e->request_id() + e->seq();
      }
      break;
    case Body::Error:
      n += static_cast<size_t>(m->body_as_Error()->code());
      if (auto* s = m->body_as_Error()->message()) n += s->size();
      break;
    case Body::Records:
      if (auto* r = m->body_as_Records()->records()) {
        for (const auto* rec : *r) n += rec->seq() + (rec->payload() ? rec->payload()->size() : 0);
      }
      break;
    case Body::Read: n += m->body_as_Read()->from_seq(); break;
    case Body::Trim: n += m->body_as_Trim()->up_to_seq(); break;
    case Body::HelloAck:
      if (auto* id = m->body_as_HelloAck()->log_id()) n += id->size();
      break;
    case Body::StatsReply:
      if (auto* h = m->body_as_StatsReply()->records_per_sync()) n += h->bounds() ? h->bounds()->size() : 0;
      break;
    default: break;
  }
  return n;
}

// The Append fast path may only take what the verifier takes
// (append_check.h): checked on the first frame, copied to an aligned buffer.
void CheckAppendFastPath(std::span<const uint8_t> buf) {
  if (buf.size() < 4) return;
  const size_t total = 4 + (buf[0] | buf[1] << 8 | buf[2] << 16 | static_cast<size_t>(buf[3]) << 24);
  if (total > buf.size()) return;
  static std::vector<uint64_t> aligned;
  aligned.assign((total + 7) / 8, 0);
  std::memcpy(aligned.data(), buf.data(), total);
  const auto* frame = reinterpret_cast<const uint8_t*>(aligned.data());
  if (!wald::proto::IsVerifiedAppend(frame, total)) return;
  flatbuffers::Verifier v(frame, total);
  if (!wald::proto::VerifySizePrefixedMessageBuffer(v)) __builtin_trap();
  const wald::proto::Message* m = wald::proto::GetSizePrefixedMessage(frame);
  if (m->body_type() != wald::proto::Body::Append || m->body() == nullptr) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<uint8_t> scratch;
  CheckAppendFastPath({data, size});
  std::span<const uint8_t> buf(data, size);
  volatile size_t sink = 0;
  // A stream: frames back to back, as the daemon consumes them.
  while (!buf.empty()) {
    auto f = wald::proto::ParseFrame(buf, 1 << 20, &scratch);
    if (f.kind != wald::proto::ParsedFrame::kFrame) break;
    sink = sink + Walk(f.msg);
    buf = buf.subspan(f.consumed);
  }
  return 0;
}
