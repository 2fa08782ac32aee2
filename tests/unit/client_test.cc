// The client library against a fake server on a socketpair: framing,
// pipelining, a server that closes or talks garbage (AppendBatch is in
// client_batch_test.cc).
#include "wald/client.h"

#include <doctest/doctest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>

#include "client_fixture.h"
#include "framing.h"

using namespace wald;
using wald::test::Connected;
using wald::test::FakeServer;
using wald::test::QueueN;

namespace {

// Makes poll(2) and ppoll(2) fail with EPERM, on the calling thread only
// (a seccomp filter binds the thread that installs it). Returns false where
// that is not possible.
bool ForbidPollOnThisThread() {
#if defined(__x86_64__)
  sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_poll, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ppoll, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
#else
  return false;
#endif
}

// c.poll(0) on a thread of its own where poll(2) fails.
std::optional<Error> PollZeroWithoutPollSyscall(Client& c) {
  std::optional<Error> e;
  std::thread t([&] {
    if (ForbidPollOnThisThread()) e = c.poll(0);
  });
  t.join();
  return e;
}

}  // namespace

TEST_CASE("the handshake exposes log id, durable seq and limits") {
  FakeServer s;
  Client c = Connected(s);
  CHECK(c.log_id()[0] == 1);
  CHECK(c.log_id()[15] == 16);
  CHECK(c.durable_seq() == 41);
  CHECK(c.max_record_size() == 4096);
  CHECK(c.connected());
}

TEST_CASE("a server that never answers Hello times out the handshake") {
  FakeServer s;
  auto c = Client::adopt_fd(s.client_fd, {"unit", 100});
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code == ErrorCode::kTimeout);
}

TEST_CASE("pipelined appends: frames in order, callbacks in order with their seqs") {
  FakeServer s;
  Client c = Connected(s);
  std::vector<Seq> got;
  for (int i = 0; i < 100; ++i) {
    REQUIRE(c.append_async("rec-" + std::to_string(i), [&got](Result<Seq> r) {
               REQUIRE(r.ok());
               got.push_back(r.value());
             }).ok());
  }
  CHECK(c.inflight() == 100);
  REQUIRE(c.flush().ok());
  for (uint64_t i = 0; i < 100; ++i) {
    const proto::Message* m = s.Next();
    REQUIRE(m != nullptr);
    REQUIRE(m->body_type() == proto::Body::Append);
    CHECK(m->body_as_Append()->request_id() == i + 1);
    auto* p = m->body_as_Append()->payload();
    CHECK(std::string(reinterpret_cast<const char*>(p->data()), p->size()) == "rec-" + std::to_string(i));
  }
  std::vector<proto::AckEntry> acks;
  for (uint64_t i = 1; i <= 100; ++i) acks.emplace_back(i, 1000 + i);
  s.Acks({acks.begin(), acks.begin() + 30});
  s.Acks({acks.begin() + 30, acks.end()});
  REQUIRE(c.wait_all(2000).ok());
  REQUIRE(got.size() == 100);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == 1001 + i);
  CHECK(c.durable_seq() == 1100);
  CHECK(c.inflight() == 0);
}

TEST_CASE("append_many sends every record in one write and returns all seqs") {
  FakeServer s;
  Client c = Connected(s);
  std::string a = "one", b = "two", d = "three";
  std::vector<std::span<const std::byte>> ps = {std::as_bytes(std::span(a)), std::as_bytes(std::span(b)),
                                                std::as_bytes(std::span(d))};
  std::thread server([&] {
    for (uint64_t i = 1; i <= 3; ++i) REQUIRE(s.Next() != nullptr);
    s.Acks({{1, 7}, {2, 8}, {3, 9}});
  });
  auto r = c.append_many(ps);
  server.join();
  REQUIRE(r.ok());
  CHECK(r.value() == std::vector<Seq>{7, 8, 9});
}

TEST_CASE("a server that closes mid-stream: acked ones succeed, the rest are outcome unknown") {
  FakeServer s;
  Client c = Connected(s);
  std::vector<Result<Seq>> results;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(c.append_async("x", [&](Result<Seq> r) { results.push_back(std::move(r)); }).ok());
  }
  REQUIRE(c.flush().ok());
  s.Acks({{1, 1}, {2, 2}, {3, 3}, {4, 4}});
  s.Close();
  Error e = c.wait_all(2000);
  CHECK(e.code == ErrorCode::kDaemonGone);
  REQUIRE(results.size() == 10);
  for (int i = 0; i < 4; ++i) CHECK(results[i].ok());
  for (int i = 4; i < 10; ++i) CHECK(results[i].error().code == ErrorCode::kOutcomeUnknown);
  CHECK_FALSE(c.connected());
  CHECK(c.append("more").error().code == ErrorCode::kDaemonGone);
}

TEST_CASE("garbage or an oversized frame from the server is a protocol error") {
  FakeServer s;
  Client c = Connected(s);
  Result<Seq> r = Error{};
  REQUIRE(c.append_async("x", [&](Result<Seq> res) { r = std::move(res); }).ok());
  SUBCASE("garbage") {
    std::vector<uint8_t> junk(64, 0xab);
    junk[0] = 60;
    junk[1] = junk[2] = junk[3] = 0;
    s.Send(junk);
  }
  SUBCASE("oversized") {
    uint8_t big[8] = {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0};
    s.Send(big);
  }
  Error e = c.wait_all(2000);
  CHECK(e.code == ErrorCode::kProtocol);
  CHECK(r.error().code == ErrorCode::kOutcomeUnknown);
}

TEST_CASE("per-request errors reach their own callback, even ahead of earlier acks") {
  FakeServer s;
  Client c = Connected(s);
  std::vector<Result<Seq>> results(3, Error{});
  for (int i = 0; i < 3; ++i) {
    REQUIRE(c.append_async("x", [&results, i](Result<Seq> r) { results[i] = std::move(r); }).ok());
  }
  REQUIRE(c.flush().ok());
  s.Send(s.fb.Error(2, proto::ErrorCode::RecordTooLarge, "too big"));
  s.Acks({{1, 50}, {3, 51}});
  REQUIRE(c.wait_all(2000).ok());
  CHECK(results[0].value() == 50);
  CHECK(results[1].error().code == ErrorCode::kRecordTooLarge);
  CHECK(results[1].error().message == "too big");
  CHECK(results[2].value() == 51);
}

TEST_CASE("a server failure (fail-stop) reaches every pending append") {
  FakeServer s;
  Client c = Connected(s);
  std::vector<Result<Seq>> results;
  for (int i = 0; i < 2; ++i) {
    REQUIRE(c.append_async("x", [&](Result<Seq> r) { results.push_back(std::move(r)); }).ok());
  }
  REQUIRE(c.flush().ok());
  s.Send(s.fb.Error(1, proto::ErrorCode::ServerFailed, "server failed: EIO"));
  s.Send(s.fb.Error(0, proto::ErrorCode::ServerFailed, "server failed: EIO"));
  Error e = c.wait_all(2000);
  CHECK(e.code == ErrorCode::kServerFailed);
  REQUIRE(results.size() == 2);
  // ServerFailed on an append means "outcome unknown" (PROTOCOL.md): the
  // write may have reached the disk before the fdatasync failed. A caller
  // that retries only kOutcomeUnknown with care must see it as such.
  CHECK(results[0].error().code == ErrorCode::kOutcomeUnknown);
  CHECK(results[0].error().message.find("server failed: EIO") != std::string::npos);
  CHECK(results[1].error().code == ErrorCode::kOutcomeUnknown);
}

TEST_CASE("client-side checks: record size, blocking call inside a callback") {
  FakeServer s;
  Client c = Connected(s);
  CHECK(c.append(std::string(5000, 'x')).error().code == ErrorCode::kRecordTooLarge);
  Error inner;
  REQUIRE(c.append_async("x", [&](Result<Seq>) { inner = c.append("nested").error(); }).ok());
  REQUIRE(c.flush().ok());
  REQUIRE(s.Next() != nullptr);
  s.Acks({{1, 1}});
  (void)c.wait_all(2000);
  CHECK(inner.code == ErrorCode::kInvalidArgument);
}

TEST_CASE("connect to a missing socket says the daemon is gone") {
  auto c = wald::connect("/nonexistent/wald.sock");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code == ErrorCode::kDaemonGone);
  CHECK(c.error().message.find("/nonexistent/wald.sock") != std::string::npos);
}

namespace {

// A Records frame for `request_id` with one record (seq, payload).
std::span<const uint8_t> RecordsFrame(proto::FrameBuilder& fb, uint64_t request_id, uint64_t seq, bool done) {
  auto& fbb = fb.fbb();
  fbb.Clear();
  const uint8_t byte = 'r';
  auto rec = proto::CreateRecord(fbb, seq, fbb.CreateVector(&byte, 1));
  std::vector<flatbuffers::Offset<proto::Record>> recs{rec};
  return fb.Finish(proto::Body::Records, proto::CreateRecords(fbb, request_id, fbb.CreateVector(recs), done).Union());
}

}  // namespace

// The daemon's frames are untrusted (#20 item 6): these are what a buggy or
// hostile daemon sent that crashed the library.
TEST_CASE("Records for no read in progress are ignored, not handed to a missing callback") {
  FakeServer s;
  Client c = Connected(s);
  s.Send(RecordsFrame(s.fb, 0, 1, false));  // request id 0: "the read being served" when none is
  s.Send(RecordsFrame(s.fb, 7, 2, true));
  std::optional<Result<Seq>> r;
  REQUIRE(c.append_async("x", [&](Result<Seq> res) { r = std::move(res); }).ok());
  REQUIRE(c.flush().ok());
  s.Acks({{1, 42}});
  REQUIRE(c.wait_all(2000).ok());
  CHECK(r->value() == 42);
  CHECK(c.connected());
}

TEST_CASE("flush from an ack callback after the daemon closed keeps the frame being read intact") {
  FakeServer s;
  Client c = Connected(s);
  std::vector<Result<Seq>> results;
  for (int i = 0; i < 2; ++i) {
    REQUIRE(c.append_async("x", [&](Result<Seq> r) {
               results.push_back(std::move(r));
               if (results.size() == 1) {  // write more and flush into a closed socket
                 (void)c.append_async("y", [&](Result<Seq> r2) { results.push_back(std::move(r2)); });
                 (void)c.flush();
               }
             }).ok());
  }
  REQUIRE(c.flush().ok());
  REQUIRE(s.Next() != nullptr);
  REQUIRE(s.Next() != nullptr);
  s.Acks({{1, 10}, {2, 11}});
  // More than the client's first read holds, so that reading the daemon's
  // last words must grow the input buffer while the Acks frame is in it.
  for (int i = 0; i < 40; ++i) s.Send(RecordsFrame(s.fb, 99, 1, false));
  std::vector<uint8_t> filler(2048, 'f');
  for (int i = 0; i < 40; ++i)
    s.Send(s.fb.Error(uint64_t{1} << 62, proto::ErrorCode::Unsupported,
                      {reinterpret_cast<const char*>(filler.data()), filler.size()}));
  s.Close();
  Error e = c.wait_all(2000);
  CHECK(e.code == ErrorCode::kDaemonGone);
  REQUIRE(results.size() == 3);
  CHECK(results[0].value() == 10);
  CHECK(results[1].value() == 11);  // its ack was read before the close: it counts
  CHECK(results[2].error().code == ErrorCode::kOutcomeUnknown);
}

TEST_CASE("a HelloAck with a frame limit past the protocol's is a protocol error, not a wrapped limit") {
  FakeServer s;
  uint8_t id[16] = {1};
  s.Send(s.fb.HelloAck(id, 0, 0xffffffffu, 4096, 10, "test"));
  auto c = Client::adopt_fd(s.client_fd, {"unit", 2000});
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code == ErrorCode::kProtocol);
}

// An event loop has waited for the socket already: poll(0) reads at once,
// with no poll(2) of its own per event (one syscall per record at W2).
TEST_CASE("poll(0) reads waiting acks without a poll syscall") {
  FakeServer s;
  std::vector<Result<Seq>> got;
  Client c = Connected(s);
  QueueN(c, 3, &got);
  REQUIRE(c.flush().ok());
  s.Acks({{1, 101}, {2, 102}, {3, 103}});
  std::optional<Error> e = PollZeroWithoutPollSyscall(c);
  if (!e) {
    WARN_MESSAGE(false, "skipped: no seccomp filter here");
    return;
  }
  CHECK(e->ok());
  REQUIRE(got.size() == 3);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].value() == 101 + i);
}

TEST_CASE("poll(0) finds a daemon that closed, without a poll syscall") {
  FakeServer s;
  Client c = Connected(s);
  s.Close();
  std::optional<Error> e = PollZeroWithoutPollSyscall(c);
  if (!e) {
    WARN_MESSAGE(false, "skipped: no seccomp filter here");
    return;
  }
  CHECK(e->code == ErrorCode::kDaemonGone);
  CHECK(e->message.find("closed") != std::string::npos);
  CHECK_FALSE(c.connected());
}
