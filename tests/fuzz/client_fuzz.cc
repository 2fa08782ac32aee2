// libFuzzer target: the client library on arbitrary bytes from its daemon.
// Each input is one connection, a socketpair whose far end the harness
// plays: it writes the input's bytes as the daemon's stream, and the real
// wald::Client handshakes, appends, reads, trims and asks for stats against
// them. The client must not crash, trip a sanitizer or hang; every call must
// end, with a result or an error, once the "daemon" is gone.
//
// Input layout:
//   byte 0: control. bit 0: a valid HelloAck first (so that the fuzzer gets
//           past the handshake); bit 1: the daemon closes its end (the
//           client's writes then fail) rather than only shutting down its
//           writes; bits 2-3: the last call (0 wait_all, 1 read, 2 trim,
//           3 stats).
//   bytes 1-2: little-endian split point k. Bytes [3, 3+k) arrive before the
//           handshake, the rest after three append_async calls (whose
//           callbacks append and flush again, as applications do).
// Request ids the client uses: appends 1, 2, 3...; a Read or Trim
// 2^63 + 1 (PROTOCOL.md: control ids sit above 2^63); Stats 1.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

#include "framing.h"
#include "wald/client.h"

namespace {

void WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) std::abort();  // the socket buffer holds any input we take
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void ValidHelloAck(int fd) {
  wald::proto::FrameBuilder fb;
  const uint8_t id[16] = {7};
  auto f = fb.HelloAck(id, 5, 4096 + wald::proto::kAppendOverhead, 4096, 4, "fuzz");
  WriteAll(fd, f.data(), f.size());
}

void Run(wald::Client& c, int control) {
  for (int i = 0; i < 3; ++i) {
    (void)c.append_async("abc", [&c](wald::Result<wald::Seq> r) {
      if (r.ok() && c.inflight() < 8) (void)c.append_async("again", [](wald::Result<wald::Seq>) {});
      (void)c.flush();
    });
  }
  (void)c.flush();
  switch ((control >> 2) & 3) {
    case 0: (void)c.wait_all(5000); break;
    case 1:
      (void)c.read(
          1, [](wald::Seq, std::span<const std::byte>) { return true; }, 10);
      break;
    case 2: (void)c.trim(3); break;
    case 3: (void)c.stats(5000); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)init;
  if (size < 3 || size > (64 << 10)) return 0;  // larger would not fit the socket buffer
  const int control = data[0];
  size_t k = data[1] | (size_t{data[2]} << 8);
  data += 3;
  size -= 3;
  if (k > size) k = size;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  const int daemon = sv[0];
  if (control & 1) ValidHelloAck(daemon);
  WriteAll(daemon, data, k);
  // Without a valid HelloAck first, the handshake would wait for one: send
  // everything now and end the stream, so that it ends at the data's end.
  const bool all_now = (control & 1) == 0;
  if (all_now) {
    WriteAll(daemon, data + k, size - k);
    ::shutdown(daemon, SHUT_WR);
  }
  auto c = wald::Client::adopt_fd(sv[1], {"fuzz", 5000});
  if (c.ok()) {
    if (!all_now) {
      WriteAll(daemon, data + k, size - k);
      if (control & 2) {
        ::close(daemon);
      } else {
        ::shutdown(daemon, SHUT_WR);
      }
    }
    Run(c.value(), control);
  }
  // adopt_fd closes the client's end on failure; a Client closes it on exit.
  if (!(!all_now && c.ok() && (control & 2))) ::close(daemon);
  return 0;
}
