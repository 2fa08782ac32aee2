// The client as an idempotent producer, against a fake daemon: its Hello
// says the id, appends are numbered from HelloAck's producer_seq, and after
// the daemon goes away it reconnects, resends what was in flight under the
// same numbers, and completes each with the seq the new daemon acks.
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "frame_source.h"
#include "framing.h"
#include "wald/client.h"

using namespace wald;

namespace {

constexpr uint64_t kId = 0xfeed;

// One end of a connection the test drives as the daemon.
class FakeDaemon {
 public:
  explicit FakeDaemon(int fd) : fd_(fd) {}
  ~FakeDaemon() {
    if (fd_ >= 0) ::close(fd_);
  }
  void Send(std::span<const uint8_t> b) {
    if (::write(fd_, b.data(), b.size()) != static_cast<ssize_t>(b.size())) throw std::runtime_error("write");
  }
  void HelloAck(uint64_t producer_seq, uint32_t producer_depth = 1000) {
    uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    Send(fb.HelloAck(id, 0, 4096 + 128, 4096, 1000, "test", 1000, producer_seq, producer_depth));
  }
  // The next frame the client sent, or nullptr after 5 s or at its end.
  const proto::Message* Next() { return frames_.Next(); }
  proto::FrameBuilder fb;

 private:
  int fd_;
  test::FrameSource frames_{fd_};
};

// A listening socket in a temporary directory.
class Listener {
 public:
  Listener() {
    char dir[] = "/tmp/wald-client-producer-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp");
    dir_ = dir;
    path = dir_ + "/wald.sock";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 8) != 0) {
      throw std::runtime_error("bind");
    }
  }
  ~Listener() {
    ::close(fd_);
    ::unlink(path.c_str());
    ::rmdir(dir_.c_str());
  }
  int Accept() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return -1;
    return ::accept(fd_, nullptr, nullptr);
  }
  std::string path;

 private:
  std::string dir_;
  int fd_ = -1;
};

struct SeenAppend {
  uint64_t request_id;
  uint64_t producer_seq;
  std::string payload;
  bool operator==(const SeenAppend&) const = default;
};

// Reads Hello, answers HelloAck(producer_seq), then reads `n` Append frames.
struct Session {
  uint64_t hello_producer_id = 0;
  std::vector<SeenAppend> appends;
};
Session Serve(FakeDaemon& d, uint64_t producer_seq, size_t n) {
  Session s;
  const proto::Message* m = d.Next();
  if (m == nullptr || m->body_type() != proto::Body::Hello) return s;
  s.hello_producer_id = m->body_as_Hello()->producer_id();
  d.HelloAck(producer_seq);
  while (s.appends.size() < n && (m = d.Next()) != nullptr) {
    if (m->body_type() != proto::Body::Append) break;
    const auto* a = m->body_as_Append();
    s.appends.push_back({a->request_id(), a->producer_seq(),
                         std::string(reinterpret_cast<const char*>(a->payload()->data()), a->payload()->size())});
  }
  return s;
}

}  // namespace

TEST_CASE("a producer says its id in Hello and numbers its appends from HelloAck's producer_seq") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  FakeDaemon d(sv[0]);
  d.HelloAck(10);
  ClientOptions o{"unit", 2000};
  o.producer = true;
  o.producer_id = kId;
  std::vector<Result<Seq>> got;
  auto c = Client::adopt_fd(sv[1], o);
  REQUIRE(c.ok());
  CHECK(d.Next()->body_as_Hello()->producer_id() == kId);
  CHECK(c->producer_id() == kId);
  for (int i = 0; i < 3; ++i) REQUIRE(c->append_async("x", [&](Result<Seq> r) { got.push_back(r); }).ok());
  REQUIRE(c->flush().ok());
  REQUIRE(c->append_async("y", [&](Result<Seq> r) { got.push_back(r); }).ok());
  REQUIRE(c->flush().ok());
  const proto::Message* batch = d.Next();
  REQUIRE(batch->body_type() == proto::Body::AppendBatch);
  CHECK(batch->body_as_AppendBatch()->producer_seq() == 11);  // its first record's
  const proto::Message* single = d.Next();
  REQUIRE(single->body_type() == proto::Body::Append);
  CHECK(single->body_as_Append()->producer_seq() == 14);
  CHECK(c->producer_seq() == 14);
}

TEST_CASE("a producer refuses a daemon that has no idempotent producers") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  FakeDaemon d(sv[0]);
  d.HelloAck(0, /*producer_depth=*/0);
  ClientOptions o{"unit", 2000};
  o.producer = true;
  auto c = Client::adopt_fd(sv[1], o);
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code == ErrorCode::kUnsupported);
}

TEST_CASE("after the daemon goes away a producer reconnects and resends what was in flight, numbered as before") {
  Listener l;
  Session first, second;
  std::thread daemon([&] {
    {
      FakeDaemon d(l.Accept());
      first = Serve(d, 0, 3);
      const proto::AckEntry ack(1, 50);  // the first is acked, then the daemon dies
      d.Send(d.fb.Acks({&ack, 1}));
    }
    FakeDaemon d(l.Accept());
    second = Serve(d, 2, 2);  // the new daemon's log has producer seqs up to 2
    const proto::AckEntry acks[] = {{2, 51}, {3, 60}};
    d.Send(d.fb.Acks(acks));
    d.Next();  // until the client closes
  });
  ClientOptions o{"unit", 2000};
  o.producer = true;
  o.producer_id = kId;
  o.batch_appends = false;
  o.reconnect_timeout_ms = 5000;
  std::vector<Result<Seq>> got;
  {
    auto c = wald::connect(l.path, o);
    REQUIRE(c.ok());
    for (const char* p : {"a", "b", "c"}) {
      REQUIRE(c->append_async(p, [&](Result<Seq> r) { got.push_back(r); }).ok());
    }
    REQUIRE(c->wait_all(5000).ok());
    CHECK(c->reconnects() == 1);
  }
  daemon.join();
  CHECK(first.hello_producer_id == kId);
  CHECK(first.appends == std::vector<SeenAppend>{{1, 1, "a"}, {2, 2, "b"}, {3, 3, "c"}});
  CHECK(second.hello_producer_id == kId);
  CHECK(second.appends == std::vector<SeenAppend>{{2, 2, "b"}, {3, 3, "c"}});  // the ones not acked, as before
  REQUIRE(got.size() == 3);
  CHECK(got[0].value() == 50);
  CHECK(got[1].value() == 51);
  CHECK(got[2].value() == 60);
}

TEST_CASE("a plain connection with reconnect on gets outcome unknown for what was in flight, then goes on") {
  Listener l;
  Session second;
  std::thread daemon([&] {
    {
      FakeDaemon d(l.Accept());
      Serve(d, 0, 1);
    }
    FakeDaemon d(l.Accept());
    second = Serve(d, 0, 1);
    const proto::AckEntry ack(2, 7);
    d.Send(d.fb.Acks({&ack, 1}));
    d.Next();
  });
  ClientOptions o{"unit", 2000};
  o.reconnect_timeout_ms = 5000;
  std::vector<Result<Seq>> got;
  {
    auto c = wald::connect(l.path, o);
    REQUIRE(c.ok());
    REQUIRE(c->append_async("lost", [&](Result<Seq> r) { got.push_back(r); }).ok());
    REQUIRE(c->wait_all(5000).ok());
    REQUIRE(got.size() == 1);
    CHECK(got[0].error().code == ErrorCode::kOutcomeUnknown);
    auto seq = c->append("next");
    REQUIRE(seq.ok());
    CHECK(seq.value() == 7);
  }
  daemon.join();
  CHECK(second.appends == std::vector<SeenAppend>{{2, 0, "next"}});
}
