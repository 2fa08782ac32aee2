// MetricsListener on a loop stepped by the test, with a plain TCP client:
// what GET /metrics costs the loop thread.
#include "server/metrics_listener.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "loop_fixture.h"

using namespace wald;
using wald::test::LoopFixture;

namespace {

// A TCP port on 127.0.0.1 that nothing listens on just now.
uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

class MetricsTest : public LoopFixture {
 public:
  MetricsTest()
      : listener([this] {
          ++renders;
          return "wald_records_total " + std::to_string(records) + "\n";
        }) {
    REQUIRE(listener.Start(loop(), "127.0.0.1:" + std::to_string(FreePort())).ok());
  }
  ~MetricsTest() {
    listener.Close();
    Finish();
  }

  // Sends `request` in pieces of `piece` bytes, stepping the loop between
  // them, and returns the whole answer (the server closes after it).
  std::string Get(const std::string& request, size_t piece = SIZE_MAX) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(listener.port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    for (size_t at = 0; at < request.size(); at += piece) {
      const size_t n = std::min(piece, request.size() - at);
      REQUIRE(::write(fd, request.data() + at, n) == static_cast<ssize_t>(n));
      Step(2);
    }
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
    std::string answer;
    bool eof = false;
    StepUntil([&] {
      char buf[4096];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
        if (n < 0) return false;
        answer.append(buf, static_cast<size_t>(n));
      }
      eof = true;
      return true;
    });
    ::close(fd);
    CHECK(eof);
    return answer;
  }

  int renders = 0;
  int records = 0;
  server::MetricsListener listener;
};

}  // namespace

TEST_CASE_FIXTURE(MetricsTest, "metrics: scrapes within a second share one rendering") {
  CHECK(Get("GET /metrics HTTP/1.1\r\n\r\n").find("wald_records_total 0") != std::string::npos);
  records = 5;
  const std::string again = Get("GET /metrics HTTP/1.1\r\n\r\n");
  CHECK(again.find("200 OK") != std::string::npos);
  CHECK(again.find("wald_records_total 0") != std::string::npos);  // at most a second old
  CHECK(renders == 1);
}

TEST_CASE_FIXTURE(MetricsTest, "metrics: a request sent a byte at a time is answered once it ends") {
  const std::string answer = Get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 1);
  CHECK(answer.find("200 OK") != std::string::npos);
  CHECK(renders == 1);
}

TEST_CASE_FIXTURE(MetricsTest, "metrics: anything but GET /metrics renders nothing") {
  CHECK(Get("GET /other HTTP/1.1\r\n\r\n").find("404") != std::string::npos);
  CHECK(Get("POST /metrics HTTP/1.1\r\n\r\n").find("400") != std::string::npos);
  CHECK(renders == 0);
}
