#include "stats_command.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "framing.h"

namespace wald {
namespace {

bool WriteAll(int fd, std::span<const uint8_t> b) {
  while (!b.empty()) {
    ssize_t n = ::write(fd, b.data(), b.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    b = b.subspan(static_cast<size_t>(n));
  }
  return true;
}

// Reads one verified frame into buf; returns its message or nullptr.
const proto::Message* ReadFrame(int fd, std::vector<uint8_t>& buf) {
  static std::vector<uint8_t> scratch;
  buf.clear();
  for (;;) {
    auto f = proto::ParseFrame(buf, 64u << 20, &scratch);
    if (f.kind == proto::ParsedFrame::kFrame) return f.msg;
    if (f.kind != proto::ParsedFrame::kNeedMore) return nullptr;
    size_t have = buf.size();
    buf.resize(f.needed);
    while (have < buf.size()) {
      ssize_t n = ::read(fd, buf.data() + have, buf.size() - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return nullptr;
      have += static_cast<size_t>(n);
    }
  }
}

uint64_t Pct(const proto::Histogram* h, double p) {
  if (h == nullptr || h->count() == 0 || !h->bounds() || !h->counts()) return 0;
  uint64_t rank = static_cast<uint64_t>(p * static_cast<double>(h->count() - 1)) + 1, seen = 0;
  for (size_t i = 0; i < h->counts()->size(); ++i) {
    seen += h->counts()->Get(static_cast<flatbuffers::uoffset_t>(i));
    if (seen >= rank) return h->bounds()->Get(static_cast<flatbuffers::uoffset_t>(i));
  }
  return 0;
}

double Mean(const proto::Histogram* h) {
  return h && h->count() ? static_cast<double>(h->sum()) / static_cast<double>(h->count()) : 0.0;
}

}  // namespace

int RunStatsCommand(const std::string& socket_path, bool json) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "wald stats: cannot connect to %s: %s\n", socket_path.c_str(), std::strerror(errno));
    return 1;
  }
  proto::FrameBuilder fb;
  std::vector<uint8_t> buf;
  if (!WriteAll(fd, fb.Hello("wald stats"))) return 1;
  const proto::Message* m = ReadFrame(fd, buf);
  if (m == nullptr || m->body_type() != proto::Body::HelloAck) {
    if (m && m->body_type() == proto::Body::Error) {
      std::fprintf(stderr, "wald stats: %s\n", m->body_as_Error()->message()->c_str());
    } else {
      std::fprintf(stderr, "wald stats: no HelloAck from %s\n", socket_path.c_str());
    }
    return 1;
  }
  if (!WriteAll(fd, fb.StatsRequest(1))) return 1;
  m = ReadFrame(fd, buf);
  ::close(fd);
  if (m == nullptr || m->body_type() != proto::Body::StatsReply) {
    std::fprintf(stderr, "wald stats: no StatsReply from %s\n", socket_path.c_str());
    return 1;
  }
  const proto::StatsReply* s = m->body_as_StatsReply();
  const uint64_t syncs = s->syncs();
  const double rps = syncs ? Mean(s->records_per_sync()) : 0.0;
  if (json) {
    std::printf(
        "{\"uptime_us\":%llu,\"connections\":%llu,\"records\":%llu,\"bytes\":%llu,\"syncs\":%llu,"
        "\"durable_seq\":%llu,\"next_seq\":%llu,\"records_per_sync\":%.3f,\"records_per_sync_p50\":%llu,"
        "\"sync_latency_p50_us\":%llu,\"sync_latency_p99_us\":%llu,\"ack_latency_p50_us\":%llu,"
        "\"ack_latency_p99_us\":%llu,\"rejected_frames\":%llu,\"backpressure_events\":%llu}\n",
        (unsigned long long)s->uptime_us(), (unsigned long long)s->connections(), (unsigned long long)s->records(),
        (unsigned long long)s->bytes(), (unsigned long long)syncs, (unsigned long long)s->durable_seq(),
        (unsigned long long)s->next_seq(), rps, (unsigned long long)Pct(s->records_per_sync(), 0.5),
        (unsigned long long)Pct(s->sync_latency_us(), 0.5), (unsigned long long)Pct(s->sync_latency_us(), 0.99),
        (unsigned long long)Pct(s->ack_latency_us(), 0.5), (unsigned long long)Pct(s->ack_latency_us(), 0.99),
        (unsigned long long)s->rejected_frames(), (unsigned long long)s->backpressure_events());
    return 0;
  }
  std::printf("uptime            %.1f s\n", static_cast<double>(s->uptime_us()) / 1e6);
  std::printf("connections       %llu\n", (unsigned long long)s->connections());
  std::printf("records           %llu (%llu payload bytes)\n", (unsigned long long)s->records(),
              (unsigned long long)s->bytes());
  std::printf("durable seq       %llu (next %llu)\n", (unsigned long long)s->durable_seq(),
              (unsigned long long)s->next_seq());
  std::printf("fdatasyncs        %llu, %.2f records each (p50 %llu)\n", (unsigned long long)syncs, rps,
              (unsigned long long)Pct(s->records_per_sync(), 0.5));
  std::printf("sync latency      p50 %llu us, p99 %llu us\n", (unsigned long long)Pct(s->sync_latency_us(), 0.5),
              (unsigned long long)Pct(s->sync_latency_us(), 0.99));
  std::printf("ack latency       p50 %llu us, p99 %llu us\n", (unsigned long long)Pct(s->ack_latency_us(), 0.5),
              (unsigned long long)Pct(s->ack_latency_us(), 0.99));
  std::printf("rejected frames   %llu\n", (unsigned long long)s->rejected_frames());
  std::printf("backpressure      %llu pauses\n", (unsigned long long)s->backpressure_events());
  return 0;
}

}  // namespace wald
