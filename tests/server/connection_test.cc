// Connection: one socket's reads, sends and its one close, on a socketpair
// in this thread's loop.
#include "server/connection.h"

#include <doctest/doctest.h>

#include <string>

#include "loop_fixture.h"

using namespace wald;
using wald::test::LoopFixture;
using wald::test::Peer;

namespace {

std::span<const uint8_t> Bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// Raw bytes through the peer, and what the peer received, as text.
void SendText(Peer& p, const std::string& s) { p.Send(Bytes(s)); }

}  // namespace

TEST_CASE_FIXTURE(LoopFixture, "connection: bytes from the peer reach the owner") {
  Peer p;
  Serve(p);
  SendText(p, "hello");
  CHECK(StepUntil([&] { return owner.data == "hello"; }));
}

TEST_CASE_FIXTURE(LoopFixture, "connection: bytes the owner leaves are delivered again, ahead of new ones") {
  Peer p;
  Serve(p);
  owner.take = 2;
  SendText(p, "abcd");
  CHECK(StepUntil([&] { return owner.data == "ab"; }));
  owner.take = SIZE_MAX;
  SendText(p, "ef");
  CHECK(StepUntil([&] { return owner.data == "abcdef"; }));
}

TEST_CASE_FIXTURE(LoopFixture, "connection: Replay delivers the held bytes without a read") {
  Peer p;
  server::Connection* c = Serve(p);
  owner.take = 1;
  SendText(p, "xyz");
  CHECK(StepUntil([&] { return c->held() == 2; }));
  owner.take = SIZE_MAX;
  c->Replay();
  CHECK(owner.data == "xyz");
  CHECK(c->held() == 0);
}

TEST_CASE_FIXTURE(LoopFixture, "connection: a Send reaches the peer") {
  Peer p;
  server::Connection* c = Serve(p);
  proto::FrameBuilder fb;
  c->Send(fb.TrimAck(7, 42));
  CHECK(StepUntil([&] {
    p.Poll();
    return p.Count(proto::Body::TrimAck) == 1;
  }));
  CHECK(p.got[0].request_id == 7);
}

TEST_CASE_FIXTURE(LoopFixture, "connection: a Send to a peer that is gone closes it, and the owner hears it once") {
  Peer p;
  server::Connection* c = Serve(p);
  p.Reset();
  proto::FrameBuilder fb;
  c->Send(fb.TrimAck(1, 1));
  c->Send(fb.TrimAck(2, 2));
  CHECK(c->closing());
  CHECK(owner.closing == 1);
  CHECK(StepUntil([&] { return owner.closed == 1; }));
}

TEST_CASE_FIXTURE(LoopFixture, "connection: Close is idempotent") {
  Peer p;
  server::Connection* c = Serve(p);
  c->Close();
  c->Close();
  CHECK(owner.closing == 1);
  CHECK(StepUntil([&] { return owner.closed == 1; }));
}

TEST_CASE_FIXTURE(LoopFixture, "connection: the peer's end of stream closes it") {
  Peer p;
  Serve(p);
  p.Reset();
  CHECK(StepUntil([&] { return owner.closed == 1; }));
  CHECK(owner.closing == 1);
}

TEST_CASE_FIXTURE(LoopFixture, "connection: SendAndClose delivers its frame, then the peer sees the end") {
  Peer p;
  server::Connection* c = Serve(p);
  proto::FrameBuilder fb;
  c->SendAndClose(fb.Error(0, proto::ErrorCode::ProtocolError, "bye"));
  CHECK(owner.closing == 1);  // the owner forgets it at once
  CHECK(StepUntil([&] {
    p.Poll();
    return p.eof;
  }));
  REQUIRE(p.got.size() == 1);
  CHECK(p.got[0].code == proto::ErrorCode::ProtocolError);
}

TEST_CASE_FIXTURE(LoopFixture, "connection: nothing is sent after SendAndClose") {
  Peer p;
  server::Connection* c = Serve(p);
  proto::FrameBuilder fb;
  c->SendAndClose(fb.Error(0, proto::ErrorCode::ProtocolError, "bye"));
  c->Send(fb.TrimAck(1, 1));
  CHECK(StepUntil([&] {
    p.Poll();
    return p.eof;
  }));
  CHECK(p.got.size() == 1);
}

TEST_CASE_FIXTURE(LoopFixture, "connection: output the socket cannot take waits, and its drain is reported") {
  Peer p;
  server::Connection* c = Serve(p);
  p.raw = true;
  const std::string big(4 << 20, 'b');  // more than a socketpair buffers
  c->Send(Bytes(big));
  CHECK(c->unsent() > 0);
  CHECK(StepUntil([&] {
    p.Poll();
    return p.bytes_in == big.size();
  }));
  CHECK(c->unsent() == 0);
  CHECK(owner.drained == 1);
}
