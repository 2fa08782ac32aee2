// libFuzzer target: the daemon's own input path on arbitrary bytes. A real
// wald::server::Server (loop thread, CommitWriter, a log under /dev/shm) runs
// inside this process; each input is one client connection: optionally a
// valid Hello first (so that the fuzzer reaches past the handshake), then the
// input's bytes, then end-of-stream. The server's read callback, Consume,
// Dispatch and every handler (Append, Stats, Read, Trim, errors) see them
// exactly as from a socket. The harness reads until the server closes the
// connection; a server that crashes, trips a sanitizer, or stops answering
// (10 s) fails the run.
//
// Input layout: byte 0 is control (bit 0: send a valid Hello first), the rest
// goes to the socket as it is. Every 256 inputs the harness trims the log to
// its current 1 MiB segment, so the log inputs build up stays small.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "framing.h"
#include "server/server.h"

namespace {

struct Harness {
  std::string dir;
  std::string socket;
  wald::server::Server* server = nullptr;  // runs until the process exits

  Harness() {
    std::string tmpl = std::filesystem::is_directory("/dev/shm") ? "/dev/shm/wald-dispatch-XXXXXX"
                                                                  : "/tmp/wald-dispatch-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("dispatch_fuzz: mkdtemp");
      std::abort();
    }
    dir = tmpl;
    socket = dir + "/s";
    spdlog::set_level(spdlog::level::off);  // a line per bad frame would be the whole profile
    ::signal(SIGPIPE, SIG_IGN);
    wald::server::ServerOptions o;
    o.dir = dir + "/log";
    o.socket = socket;
    o.segment_size = 1 << 20;  // rolls and trims happen within a run
    o.max_record = 4096;
    o.max_inflight = 64;
    o.max_connection_bytes = 256 << 10;
    o.stats_interval_s = 0;
    o.ack_spin_us = 0;
    // SIGINT and SIGTERM stay libFuzzer's: a drain would stop the server and
    // the next input would look like a crash.
    o.handle_stop_signals = false;
    server = new wald::server::Server(o);
    if (auto st = server->Start(); !st.ok()) {
      std::fprintf(stderr, "dispatch_fuzz: cannot start the server: %s\n", st.ToString().c_str());
      std::abort();
    }
    std::thread([s = server] { (void)s->Run(); }).detach();
    // The server runs until the process ends. At libFuzzer's exit(), libuv's
    // library destructor would join its thread pool while the loop still
    // runs, and hang; end the process before the destructors instead (this
    // handler runs first: it is registered last), keeping the exit status.
    ::on_exit(
        [](int status, void* d) {
          std::error_code ec;
          std::filesystem::remove_all(*static_cast<std::string*>(d), ec);
          std::_Exit(status);
        },
        &dir);
  }
};

int Connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("dispatch_fuzz: connect");
    std::abort();
  }
  return fd;
}

// Writes what the server will take and reads whatever it answers, until it
// closes the connection. Output is discarded; the server must not hang.
void Exchange(int fd, const uint8_t* data, size_t size) {
  size_t sent = 0;
  bool shut = false;
  char sink[64 << 10];
  for (;;) {
    if (sent == size && !shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (shut ? 0 : POLLOUT)), 0};
    if (::poll(&p, 1, 10'000) == 0) {
      std::fprintf(stderr, "dispatch_fuzz: the server did not answer or close within 10 s\n");
      std::abort();
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(fd, sink, sizeof sink);
      if (n <= 0) return;  // closed (or reset after an Error)
    }
    if (!shut && (p.revents & POLLOUT)) {
      ssize_t n = ::send(fd, data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN) return;  // the server closed on us
      if (n > 0) sent += static_cast<size_t>(n);
    }
  }
}

// Every 256 inputs, trims the log to its current segment (1 MiB), so that
// it stays small in /dev/shm and reads from seq 1 stay cheap.
void TrimLog(const Harness& h) {
  wald::proto::FrameBuilder fb;
  std::string bytes;
  auto hello = fb.Hello("fuzz-trim");
  bytes.assign(reinterpret_cast<const char*>(hello.data()), hello.size());
  auto trim = fb.Trim(1, UINT64_MAX);
  bytes.append(reinterpret_cast<const char*>(trim.data()), trim.size());
  int fd = Connect(h.socket);
  Exchange(fd, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness* h = new Harness;
  static uint64_t inputs = 0;
  if (++inputs % 256 == 0) TrimLog(*h);
  if (size == 0) return 0;
  int fd = Connect(h->socket);
  std::string bytes;
  if (data[0] & 1) {
    wald::proto::FrameBuilder fb;
    auto hello = fb.Hello("fuzz");
    bytes.assign(reinterpret_cast<const char*>(hello.data()), hello.size());
  }
  bytes.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  Exchange(fd, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ::close(fd);
  return 0;
}
