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
  // A client that already went away is not this thread's failure: the
  // test's checks on what the client saw say what went wrong.
  void Send(std::span<const uint8_t> b) { (void)::send(fd_, b.data(), b.size(), MSG_NOSIGNAL); }
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

// The next connection: Serve, then the acks, then wait for the client to go
// (any Append it sends meanwhile is in the Session too: one too many).
Session ServeAndAck(Listener& l, uint64_t producer_seq, size_t n, std::vector<proto::AckEntry> acks) {
  FakeDaemon d(l.Accept());
  Session s = Serve(d, producer_seq, n);
  if (!acks.empty()) d.Send(d.fb.Acks(acks));
  while (const proto::Message* m = d.Next()) {
    if (m->body_type() != proto::Body::Append) continue;
    const auto* a = m->body_as_Append();
    s.appends.push_back({a->request_id(), a->producer_seq(),
                         std::string(reinterpret_cast<const char*>(a->payload()->data()), a->payload()->size())});
  }
  return s;
}

// The next connection: Serve, then the daemon dies with those unanswered.
void ServeAndDie(Listener& l, size_t n) {
  FakeDaemon d(l.Accept());
  Serve(d, 0, n);
}

// A daemon that takes two appends, acks the first (seq 50) and dies; the
// next one knows nothing of the producer (HelloAck's producer_seq 0) and
// acks the one append it gets at seq 70. Returns that second session.
Session ServeThenForget(Listener& l) {
  {
    FakeDaemon d(l.Accept());
    Serve(d, 0, 2);
    const proto::AckEntry ack(1, 50);
    d.Send(d.fb.Acks({&ack, 1}));
  }
  return ServeAndAck(l, 0, 1, {{3, 70}});
}

// A client that reconnects for up to 5 s.
ClientOptions Reconnecting(bool producer, bool batch = true) {
  ClientOptions o{"unit", 2000};
  o.producer = producer;
  o.producer_id = producer ? kId : 0;
  o.batch_appends = batch;
  o.reconnect_timeout_ms = 5000;
  return o;
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
  std::jthread daemon([&] {  // joined on the way out of a failed REQUIRE too
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
  std::jthread daemon([&] {  // joined on the way out of a failed REQUIRE too
    ServeAndDie(l, 1);
    second = ServeAndAck(l, 0, 1, {{2, 7}});
  });
  const ClientOptions o = Reconnecting(/*producer=*/false);
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

TEST_CASE("a reconnect attempt the daemon refuses is retried afresh, not poisoned by the refusal") {
  Listener l;
  Session third;
  std::jthread daemon([&] {  // joined on the way out of a failed REQUIRE too
    ServeAndDie(l, 1);       // with the append unanswered
    {
      FakeDaemon d(l.Accept());  // full: refuses the next connection, as wald's --max-connections does
      d.Next();
      d.Send(d.fb.Error(0, proto::ErrorCode::TooManyConnections, "full"));
    }
    third = ServeAndAck(l, 0, 1, {{1, 9}});
  });
  const ClientOptions o = Reconnecting(/*producer=*/true);
  {
    auto c = wald::connect(l.path, o);
    REQUIRE(c.ok());
    auto seq = c->append("a");
    REQUIRE_MESSAGE(seq.ok(), seq.error().message);
    CHECK(seq.value() == 9);
    CHECK(c->reconnects() == 1);
  }
  daemon.join();
  CHECK(third.appends == std::vector<SeenAppend>{{1, 1, "a"}});
}

TEST_CASE("after a restart that lost numbers, appends in flight above the daemon's last are renumbered") {
  Listener l;
  Session second;
  std::jthread daemon([&] {  // joined on the way out of a failed REQUIRE too
    {
      FakeDaemon d(l.Accept());
      Serve(d, 0, 3);
      const proto::AckEntry ack(1, 50);
      d.Send(d.fb.Acks({&ack, 1}));
      d.Send(d.fb.Error(2, proto::ErrorCode::DiskBudget, "full disk budget"));  // number 2 is used up
    }
    // Restarted: its table has number 1 only (the refusal of 2 is not in
    // the log), so 3 would be a gap.
    second = ServeAndAck(l, 1, 1, {{3, 51}});
  });
  const ClientOptions o = Reconnecting(/*producer=*/true, /*batch=*/false);
  std::vector<Result<Seq>> got;
  {
    auto c = wald::connect(l.path, o);
    REQUIRE(c.ok());
    for (const char* p : {"a", "b", "c"}) {
      REQUIRE(c->append_async(p, [&](Result<Seq> r) { got.push_back(r); }).ok());
    }
    REQUIRE(c->wait_all(5000).ok());
    CHECK(c->producer_seq() == 2);
  }
  daemon.join();
  CHECK(second.appends == std::vector<SeenAppend>{{3, 2, "c"}});
  REQUIRE(got.size() == 3);
  CHECK(got[0].value() == 50);
  CHECK(got[1].error().code == ErrorCode::kDiskBudget);
  CHECK(got[2].value() == 51);
}

TEST_CASE("a resent append the daemon cannot answer is outcome unknown, not 'nothing appended'") {
  Listener l;
  std::jthread daemon([&] {  // joined on the way out of a failed REQUIRE too
    ServeAndDie(l, 1);
    FakeDaemon d(l.Accept());
    Serve(d, 1, 1);  // number 1 is in its log: the resend is a repeat
    d.Send(d.fb.Error(1, proto::ErrorCode::ProducerSeqStale, "too old to answer"));
    d.Next();
  });
  const ClientOptions o = Reconnecting(/*producer=*/true);
  {
    auto c = wald::connect(l.path, o);
    REQUIRE(c.ok());
    auto seq = c->append("a");
    REQUIRE_FALSE(seq.ok());
    CHECK(seq.error().code == ErrorCode::kOutcomeUnknown);
  }
  daemon.join();
}

TEST_CASE("a daemon that forgot the producer gets no resends: what was in flight is outcome unknown") {
  Listener l;
  Session second;
  std::jthread daemon([&] { second = ServeThenForget(l); });  // joined on the way out of a failed REQUIRE too
  const ClientOptions o = Reconnecting(/*producer=*/true, /*batch=*/false);
  std::vector<Result<Seq>> got;
  {
    auto c = wald::connect(l.path, o);
    REQUIRE(c.ok());
    for (const char* p : {"a", "b"}) REQUIRE(c->append_async(p, [&](Result<Seq> r) { got.push_back(r); }).ok());
    REQUIRE(c->wait_all(5000).ok());
    auto seq = c->append("c");
    REQUIRE(seq.ok());
    CHECK(seq.value() == 70);
  }
  daemon.join();
  REQUIRE(got.size() == 2);
  CHECK(got[0].value() == 50);
  CHECK(got[1].error().code == ErrorCode::kOutcomeUnknown);
  // Not "b"; and numbered after every number used (the daemon knows none).
  CHECK(second.appends == std::vector<SeenAppend>{{3, 3, "c"}});
}

TEST_CASE("an append from the callback that a reconnect fails goes out on the new connection") {
  Listener l;
  Session second;
  std::jthread daemon([&] {  // joined on the way out of a failed REQUIRE too
    ServeAndDie(l, 1);
    second = ServeAndAck(l, 0, 1, {{2, 5}});
  });
  const ClientOptions o = Reconnecting(/*producer=*/false);
  std::vector<Result<Seq>> got;
  {
    auto c = wald::connect(l.path, o);
    REQUIRE(c.ok());
    Client* cp = &c.value();
    REQUIRE(c->append_async("first", [&](Result<Seq> r) {
               got.push_back(r);
               REQUIRE(cp->append_async("retry", [&](Result<Seq> r2) { got.push_back(r2); }).ok());
               CHECK(cp->append("blocking").error().code == ErrorCode::kInvalidArgument);  // not from a callback
             }).ok());
    REQUIRE(c->wait_all(5000).ok());
  }
  daemon.join();
  REQUIRE(got.size() == 2);
  CHECK(got[0].error().code == ErrorCode::kOutcomeUnknown);
  CHECK(got[1].value() == 5);
  CHECK(second.appends == std::vector<SeenAppend>{{2, 0, "retry"}});
}

TEST_CASE("a reconnect to a socket that now serves another log is an error, even with nothing appended") {
  Listener l;
  std::jthread daemon([&] {  // joined on the way out of a failed REQUIRE too
    ServeAndDie(l, 0);
    FakeDaemon d(l.Accept());
    d.Next();
    uint8_t other[16] = {9};
    d.Send(d.fb.HelloAck(other, 0, 4096 + 128, 4096, 1000, "test", 1000, 0, 1000));
    d.Next();
  });
  const ClientOptions o = Reconnecting(/*producer=*/false);
  {
    auto c = wald::connect(l.path, o);
    REQUIRE(c.ok());
    Error e;
    for (int i = 0; i < 100 && e.ok(); ++i) e = c->poll(50);
    CHECK(e.code == ErrorCode::kProtocol);
    CHECK(e.message.find("another log") != std::string::npos);
  }
  daemon.join();
}

TEST_CASE("an append from a failure callback when the daemon forgot the producer goes out once") {
  Listener l;
  Session second;
  std::jthread daemon([&] { second = ServeThenForget(l); });  // joined on the way out of a failed REQUIRE too
  const ClientOptions o = Reconnecting(/*producer=*/true, /*batch=*/false);
  std::vector<Result<Seq>> got;
  {
    auto c = wald::connect(l.path, o);
    REQUIRE(c.ok());
    Client* cp = &c.value();
    REQUIRE(c->append_async("a", [&](Result<Seq> r) { got.push_back(r); }).ok());
    REQUIRE(c->append_async("b", [&](Result<Seq> r) {
               got.push_back(r);
               REQUIRE(cp->append_async("b again", [&](Result<Seq> r2) { got.push_back(r2); }).ok());
             }).ok());
    REQUIRE(c->wait_all(5000).ok());
    CHECK(c->connected());
  }
  daemon.join();
  REQUIRE(got.size() == 3);
  CHECK(got[1].error().code == ErrorCode::kOutcomeUnknown);
  CHECK(got[2].value() == 70);
  CHECK(second.appends == std::vector<SeenAppend>{{3, 3, "b again"}});
}
