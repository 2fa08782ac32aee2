// wald::server::Server in this process, for the paths between its
// constructor and its destructor that the binary cannot show on its own:
// a Server that never started, a Start that fails half-way, and a shutdown
// without the stop-signal handle (handle_stop_signals off, as in the dispatch
// fuzzer). Each must close exactly the handles it opened, the writer before
// the async handle it wakes the loop with (issue #14, item 2).
#include <doctest/doctest.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <string>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "server/server.h"
#include "storage/fault_env.h"

using namespace wald;
using namespace wald::test;

namespace {

server::ServerOptions Options(const TempDir& tmp) {
  server::ServerOptions o;
  o.dir = tmp.path() + "/data";
  o.socket = tmp.path() + "/wald.sock";
  o.segment_size = 1 << 20;
  o.max_record = 4096;
  o.stats_interval_s = 0;
  o.handle_stop_signals = false;  // the test runner's signals stay its own
  return o;
}

// A listening socket at `path`, as another daemon would hold it.
int ListenAt(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 8) == 0);
  return fd;
}

struct Quiet {
  Quiet() {
    spdlog::set_level(spdlog::level::warn);
    ::signal(SIGPIPE, SIG_IGN);  // as wald's main() does: a reset client is an error code, not a signal
  }
  ~Quiet() { spdlog::set_level(spdlog::level::info); }
};

}  // namespace

TEST_CASE("a Server that was never started is destroyed cleanly") {
  TempDir tmp;
  { server::Server s(Options(tmp)); }
}

TEST_CASE("a Start that fails at listen (the socket is taken) leaves a Server that is destroyed cleanly") {
  Quiet quiet;
  TempDir tmp;
  const server::ServerOptions o = Options(tmp);
  const int taken = ListenAt(o.socket);
  {
    server::Server s(o);
    const storage::Status st = s.Start();
    CHECK(!st.ok());
    // The writer runs and the loop's handles are open: ~Server stops the
    // writer, then closes them.
  }
  ::close(taken);
}

TEST_CASE("a writer failure with handle_stop_signals off: fail-stop, every handle closed, Run returns 1") {
  Quiet quiet;
  TempDir tmp;
  server::ServerOptions o = Options(tmp);
  storage::FaultEnv faults(storage::Env::Posix());
  faults.FailSyncAfter(40, EIO);  // the first syncs create the log; fail a little later
  server::Server s(o, &faults);
  REQUIRE(s.Start().ok());
  auto run = std::async(std::launch::async, [&s] { return s.Run(); });
  {
    RawClient c(o.socket);
    REQUIRE(c.Handshake() != nullptr);
    bool failed = false;
    for (uint64_t i = 1; i <= 1000 && !failed; ++i) {
      c.QueueAppend(i, TestPayload(1, i));
      REQUIRE(c.Flush());
      const proto::Message* m = c.Next();
      REQUIRE(m != nullptr);
      failed = m->body_type() == proto::Body::Error;
    }
    CHECK(failed);
  }
  REQUIRE(run.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  CHECK(run.get() == 1);
}
