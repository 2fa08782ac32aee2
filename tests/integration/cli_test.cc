// The command lines of every binary, as a new user meets them (issue #17):
// --version, bad option values, config-file keys.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "spawn.h"

using namespace wald::test;

namespace {

// Each binary with the arguments it requires.
std::vector<std::vector<std::string>> Binaries() {
  std::vector<std::vector<std::string>> b{{WALD_BINARY}, {WAL_TAIL_BINARY}, {WAL_BENCH_BINARY}};
#ifdef WAL_SHIP_BINARY
  b.push_back({WAL_SHIP_BINARY, "--socket", "/nonexistent.sock", "--nats", "nats://127.0.0.1:1"});
#endif
  return b;
}

}  // namespace

TEST_CASE("every binary answers --version with the project's version, exit 0") {
  for (const auto& cmd : Binaries()) {
    std::string out;
    INFO(cmd[0]);
    CHECK(RunProgram({cmd[0], "--version"}, &out) == 0);
    CHECK(out.find(WALD_VERSION) != std::string::npos);
  }
}

TEST_CASE("a bad option value exits 2 with CLI11's message, in every binary") {
  for (auto cmd : Binaries()) {
    std::string out;
    INFO(cmd[0]);
    cmd.push_back("--no-such-option");
    CHECK(RunProgram(cmd, &out) == 2);
    CHECK(out.find("--no-such-option") != std::string::npos);
  }
}

TEST_CASE("a config key that names no option exits 2 naming it, and nothing is created") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/data";
  for (const std::string key : {"typo-option = 5", "segment_size = \"8MiB\"", "max-recrod = \"4MiB\""}) {
    const std::string conf = tmp.path() + "/wald.toml";
    std::ofstream(conf) << key << "\n";
    std::string out;
    INFO(key);
    CHECK(RunWald({"--config", conf, "--dir", dir, "--socket", tmp.path() + "/s"}, &out) == 2);
    CHECK(out.find(key.substr(0, key.find(' '))) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir));
  }
}

TEST_CASE("a config file's options take effect (segment-size)") {
  TempDir tmp;
  const std::string conf = tmp.path() + "/wald.toml";
  std::ofstream(conf) << "segment-size = \"8MiB\"\n";
  Daemon d(tmp.path(), {"--config", conf});
  struct stat st {};
  REQUIRE(::stat((d.data_dir() + "/00000000000000000001.wal").c_str(), &st) == 0);
  CHECK(st.st_size == 8 << 20);
}

// Issue #17: the log (a 128 MiB first segment) was created before the bind
// failed on the missing directory.
TEST_CASE("a --socket in a missing directory exits 1 naming it, and creates no log") {
  TempDir tmp;
  const std::string dir = tmp.path() + "/data";
  std::string out;
  CHECK(RunWald({"--dir", dir, "--socket", tmp.path() + "/no/such/dir/x.sock"}, &out) == 1);
  CHECK(out.find(tmp.path() + "/no/such/dir") != std::string::npos);
  CHECK(out.find("does not exist") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir));
}

// Issue #17: "Connection refused" for a --socket that is a directory.
TEST_CASE("wald stats --socket naming a directory says it is a directory") {
  TempDir tmp;
  std::string out;
  CHECK(RunWald({"stats", "--socket", tmp.path()}, &out) == 1);
  CHECK(out.find("it is a directory, not wald's socket") != std::string::npos);
}

// Issue #17: metrics to scrape, checked by the real promtool when it is
// installed (Debian's prometheus package; scripts/install-deps installs it).
TEST_CASE("wald stats --format openmetrics: every counter, hold and full histogram, and promtool accepts it") {
  TempDir tmp;
  Daemon d(tmp.path());
  {
    std::string out;
    REQUIRE(RunWald({"hold", "backup", "0", "--socket", d.socket()}, &out) == 0);
  }
  RawClient c(d.socket());
  REQUIRE(c.Handshake() != nullptr);
  for (uint64_t i = 1; i <= 3; ++i) c.QueueAppend(i, "record");
  REQUIRE(c.Flush());
  for (int acks = 0; acks < 3;) {
    const auto* m = c.Next();
    REQUIRE(m != nullptr);
    if (m->body_type() == wald::proto::Body::Acks) acks += static_cast<int>(m->body_as_Acks()->acks()->size());
  }
  const std::string file = tmp.path() + "/metrics.txt";
  std::string out;
  REQUIRE(RunWald({"stats", "--format", "openmetrics", "--socket", d.socket()}, &out) == 0);
  std::ofstream(file) << out;
  for (const char* line : {"wald_records_total 3\n", "wald_durable_seq 3\n", "wald_connections 1\n",
                           "# TYPE wald_records_total counter\n", "wald_hold_seq{hold=\"backup\"} 0\n",
                           "wald_hold_lag_records{hold=\"backup\"} 3\n", "# TYPE wald_sync_latency_seconds histogram\n",
                           "wald_ack_latency_seconds_count 3\n", "wald_records_per_sync_bucket{le=\"+Inf\"}"}) {
    CHECK_MESSAGE(out.find(line) != std::string::npos, "missing: " << line << "in:\n" << out);
  }
  size_t buckets = 0;
  for (size_t at = out.find("wald_sync_latency_seconds_bucket{"); at != std::string::npos;
       at = out.find("wald_sync_latency_seconds_bucket{", at + 1)) {
    ++buckets;
  }
  CHECK(buckets == 304);  // every bucket of the layout, empty ones too
  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    std::string check;
    const int rc = RunProgram({"/bin/sh", "-c", "promtool check metrics < " + file}, &check);
    CHECK_MESSAGE(rc == 0, "promtool check metrics: " << check);
  } else {
    MESSAGE("promtool is not installed: the format was not checked by it");
  }
}

namespace {

// A free TCP port on 127.0.0.1 (bound to 0, then released).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Sends `request` to 127.0.0.1:port and reads until the server closes.
std::string Http(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[65536];
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

}  // namespace

TEST_CASE("--metrics-listen answers GET /metrics from the loop, and promtool accepts the scrape") {
  TempDir tmp;
  const int port = FreePort();
  Daemon d(tmp.path(), {"--metrics-listen", "127.0.0.1:" + std::to_string(port)});
  RawClient c(d.socket());
  REQUIRE(c.Handshake() != nullptr);
  c.QueueAppend(1, "one");
  REQUIRE(c.Flush());
  REQUIRE(c.Next() != nullptr);
  const std::string reply = Http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(reply.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(reply.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  const std::string body = reply.substr(reply.find("\r\n\r\n") + 4);
  CHECK(reply.find("Content-Length: " + std::to_string(body.size()) + "\r\n") != std::string::npos);
  CHECK(body.find("wald_records_total 1\n") != std::string::npos);
  CHECK(body.find("wald_connections 1\n") != std::string::npos);  // the RawClient; a scrape is not one
  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    const std::string file = tmp.path() + "/scrape.txt";
    std::ofstream(file) << body;
    std::string check;
    const int rc = RunProgram({"/bin/sh", "-c", "promtool check metrics < " + file}, &check);
    CHECK_MESSAGE(rc == 0, "promtool check metrics: " << check);
  }
  CHECK(Http(port, "GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0) == 0);
  CHECK(Http(port, "hello\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
  // A request over 8 KiB is dropped unanswered; the endpoint still serves.
  CHECK(Http(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n").empty());
  CHECK(Http(port, "GET /metrics\r\n\r\n").rfind("HTTP/1.1 200", 0) == 0);
  d.Signal(SIGTERM);
  CHECK(d.Wait() == 0);
}

TEST_CASE("--metrics-listen with a bad address exits 2 before anything is created") {
  TempDir tmp;
  std::string out;
  CHECK(RunWald({"--metrics-listen", "localhost", "--dir", tmp.path() + "/data"}, &out) == 2);
  CHECK(out.find("is not ADDR:PORT") != std::string::npos);
  CHECK(RunWald({"--metrics-listen", "127.0.0.1:99999", "--dir", tmp.path() + "/data"}, &out) == 2);
  CHECK_FALSE(std::filesystem::exists(tmp.path() + "/data"));
}

// Issue #17: `wald stats --help` ended with the daemon's examples and exit
// codes.
TEST_CASE("the subcommands' --help gives their own exit codes, not the daemon's") {
  for (const char* sub : {"stats", "trim", "hold", "release", "holds"}) {
    std::string out;
    INFO(sub);
    CHECK(RunWald({sub, "--help"}, &out) == 0);
    CHECK(out.find("the daemon could not be reached") != std::string::npos);
    CHECK(out.find("after a clean shutdown") == std::string::npos);
  }
}

// Issue #17: the periodic line printed "0 records/s" right after 1,003
// appends: the rate was divided by all the quiet time since the last line.
TEST_CASE("the periodic summary's rate counts the last interval, not the quiet time before it") {
  TempDir tmp;
  const std::string sock = tmp.path() + "/s", log = tmp.path() + "/log";
  const pid_t pid =
      Spawn({WALD_BINARY, "--dir", tmp.path() + "/data", "--socket", sock, "--stats-interval", "1"}, "", log);
  for (int i = 0; i < 600 && !std::filesystem::exists(sock); ++i) usleep(10000);
  usleep(4500000);  // quiet: four summary ticks with nothing to say
  {
    RawClient c(sock);
    REQUIRE(c.Handshake() != nullptr);
    for (uint64_t i = 1; i <= 1003; ++i) c.QueueAppend(i, "x");
    REQUIRE(c.Flush());
    for (int acks = 0; acks < 1003;) {
      const auto* m = c.Next();
      REQUIRE(m != nullptr);
      if (m->body_type() == wald::proto::Body::Acks) acks += static_cast<int>(m->body_as_Acks()->acks()->size());
    }
  }
  usleep(2200000);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::ifstream f(log);
  double best = 0;
  for (std::string line; std::getline(f, line);) {
    const size_t at = line.find(" records/s, durable seq");
    if (at == std::string::npos) continue;
    const size_t start = line.rfind(' ', at - 1) + 1;
    best = std::max(best, std::stod(line.substr(start, at - start)));
  }
  MESSAGE("highest rate logged: " << best << " records/s");
  CHECK(best >= 400);  // 1,003 records within about a second; over the quiet 5 s it read at most ~200
}
