// libFuzzer target: the inbound frame decoder and every accessor the daemon's
// dispatch uses, on arbitrary bytes. The verifier must reject anything whose
// fields cannot be read safely.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<uint8_t> scratch;
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
