// The client library against a fake server on a socketpair: framing,
// pipelining, a server that closes or talks garbage.
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

#include "frame_source.h"
#include "framing.h"

using namespace wald;

namespace {

// The server end of a socketpair, driven by the test.
class FakeServer {
 public:
  FakeServer() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) throw std::runtime_error("socketpair");
    fd_ = sv[0];
    frames_.emplace(fd_);
    client_fd = sv[1];
  }
  ~FakeServer() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Send(std::span<const uint8_t> b) { REQUIRE(::write(fd_, b.data(), b.size()) == static_cast<ssize_t>(b.size())); }
  // max_batch 0: a daemon that takes no AppendBatch (as before it existed).
  void HelloAck(uint64_t durable = 41, uint32_t max_inflight = 1000, uint32_t max_batch = 0) {
    uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    Send(fb.HelloAck(id, durable, 4096 + 128, 4096, max_inflight, "test", max_batch));
  }
  void Acks(std::vector<proto::AckEntry> acks) { Send(fb.Acks(acks)); }
  // The next frame the client sent (waits up to 5 s).
  const proto::Message* Next() { return frames_->Next(); }

  int client_fd = -1;
  proto::FrameBuilder fb;

 private:
  int fd_ = -1;
  std::optional<test::FrameSource> frames_;  // on fd_
};

Client Connected(FakeServer& s, uint32_t max_inflight = 1000, uint32_t max_batch = 0, bool batch = true) {
  s.HelloAck(41, max_inflight, max_batch);  // waits in the socket buffer for the handshake
  ClientOptions options{"unit", 2000};
  options.batch_appends = batch;
  auto c = Client::adopt_fd(s.client_fd, options);
  REQUIRE(c.ok());
  const proto::Message* hello = s.Next();
  REQUIRE(hello != nullptr);
  REQUIRE(hello->body_type() == proto::Body::Hello);
  CHECK(hello->body_as_Hello()->protocol_version() == proto::kProtocolVersion);
  CHECK(hello->body_as_Hello()->client_name()->str() == "unit");
  return std::move(c.value());
}

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

// ---- AppendBatch (a daemon whose HelloAck offers it) ----

namespace {

// Queues n appends of `size` bytes whose results land in *got.
void QueueN(Client& c, int n, std::vector<Result<Seq>>* got, size_t size = 10) {
  for (int i = 0; i < n; ++i) {
    REQUIRE(c.append_async(std::string(size, static_cast<char>('a' + i)), [got](Result<Seq> r) {
               got->push_back(std::move(r));
             }).ok());
  }
}

}  // namespace

TEST_CASE("appends queued between two writes go out as one AppendBatch, and one batch ack completes each") {
  FakeServer s;
  std::vector<Result<Seq>> got;  // outlives c: its destructor fails what is in flight
  Client c = Connected(s, 1000, 1000);
  QueueN(c, 5, &got);
  CHECK(c.wants_write());
  REQUIRE(c.flush().ok());
  const proto::Message* m = s.Next();
  REQUIRE(m != nullptr);
  REQUIRE(m->body_type() == proto::Body::AppendBatch);
  const proto::AppendBatch* b = m->body_as_AppendBatch();
  CHECK(b->request_id() == 1);
  REQUIRE(b->sizes()->size() == 5);
  CHECK(std::string(reinterpret_cast<const char*>(b->data()->data()), b->data()->size()) ==
        "aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeee");
  const proto::BatchAckEntry batch(1, 100, 5);
  s.Send(s.fb.Acks({}, std::span(&batch, 1)));
  REQUIRE(c.wait_all(2000).ok());
  REQUIRE(got.size() == 5);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].value() == 100 + i);
  CHECK(c.durable_seq() == 104);
}

TEST_CASE("an error for a batch reaches every append in it, and a lone append is still an Append") {
  FakeServer s;
  std::vector<Result<Seq>> got;
  Client c = Connected(s, 1000, 1000);
  QueueN(c, 3, &got);
  REQUIRE(c.flush().ok());
  QueueN(c, 1, &got);
  REQUIRE(c.flush().ok());
  REQUIRE(s.Next()->body_type() == proto::Body::AppendBatch);
  const proto::Message* lone = s.Next();
  REQUIRE(lone->body_type() == proto::Body::Append);
  CHECK(lone->body_as_Append()->request_id() == 4);
  s.Send(s.fb.Error(1, proto::ErrorCode::DiskBudget, "full"));
  s.Acks({{4, 9}});
  REQUIRE(c.wait_all(2000).ok());
  REQUIRE(got.size() == 4);
  for (int i = 0; i < 3; ++i) CHECK(got[i].error().code == ErrorCode::kDiskBudget);
  CHECK(got[3].value() == 9);
}

TEST_CASE("a batch stays within the daemon's frame and batch limits") {
  FakeServer s;
  std::vector<Result<Seq>> got;
  Client c = Connected(s, 1000, 3);  // frames of 4096 + 128 bytes, 3 records a batch
  QueueN(c, 7, &got, 100);           // 3 + 3 + 1 by count
  REQUIRE(c.flush().ok());
  QueueN(c, 3, &got, 2000);  // 2 + 1 by bytes
  REQUIRE(c.flush().ok());
  std::vector<size_t> records;
  for (int i = 0; i < 5; ++i) {
    const proto::Message* m = s.Next();
    REQUIRE(m != nullptr);
    records.push_back(m->body_type() == proto::Body::AppendBatch ? m->body_as_AppendBatch()->sizes()->size() : 1);
  }
  CHECK(records == std::vector<size_t>{3, 3, 1, 2, 1});
}

TEST_CASE("a batch ack that does not match what was sent is a protocol error") {
  FakeServer s;
  std::vector<Result<Seq>> got;
  Client c = Connected(s, 1000, 1000);
  QueueN(c, 3, &got);
  REQUIRE(c.flush().ok());
  REQUIRE(s.Next() != nullptr);
  const proto::BatchAckEntry wrong(1, 100, 2);  // the batch had 3
  s.Send(s.fb.Acks({}, std::span(&wrong, 1)));
  Error e = c.wait_all(2000);
  CHECK(e.code == ErrorCode::kProtocol);
  REQUIRE(got.size() == 3);
  for (const auto& r : got) CHECK(r.error().code == ErrorCode::kOutcomeUnknown);
}

TEST_CASE("with batch_appends off every append is its own Append frame") {
  FakeServer s;
  std::vector<Result<Seq>> got;
  Client c = Connected(s, 1000, 1000, /*batch=*/false);
  QueueN(c, 3, &got);
  REQUIRE(c.flush().ok());
  for (int i = 0; i < 3; ++i) REQUIRE(s.Next()->body_type() == proto::Body::Append);
}

// Review: closing the open batch reused the builder that held the Read,
// Stats or Trim frame just built, which then went out as garbage.
TEST_CASE("a Read queued behind an open batch goes out intact, after the batch") {
  FakeServer s;
  std::vector<Result<Seq>> got;
  Client c = Connected(s, 1000, 1000);
  QueueN(c, 2, &got, 10);
  REQUIRE(c.subscribe_async(
               7, [](const RecordInfo&) { return true; }, [](Error) {})
              .ok());
  REQUIRE(c.flush().ok());
  const proto::Message* batch = s.Next();
  REQUIRE(batch != nullptr);
  CHECK(batch->body_type() == proto::Body::AppendBatch);
  const proto::Message* read = s.Next();
  REQUIRE(read != nullptr);
  REQUIRE(read->body_type() == proto::Body::Read);
  CHECK(read->body_as_Read()->from_seq() == 7);
  CHECK(read->body_as_Read()->follow());
}

// Review: acks were taken before batches, so a single append acked in the
// same frame as an earlier batch completed first.
TEST_CASE("callbacks run in request order when one Acks frame holds a batch and a single ack") {
  FakeServer s;
  std::vector<Result<Seq>> got;
  Client c = Connected(s, 1000, 1000);
  QueueN(c, 3, &got);
  REQUIRE(c.flush().ok());
  QueueN(c, 1, &got);
  REQUIRE(c.flush().ok());
  const proto::AckEntry single(4, 104);
  const proto::BatchAckEntry batch(1, 101, 3);
  s.Send(s.fb.Acks(std::span(&single, 1), std::span(&batch, 1)));
  REQUIRE(c.wait_all(2000).ok());
  REQUIRE(got.size() == 4);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].value() == 101 + i);
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
