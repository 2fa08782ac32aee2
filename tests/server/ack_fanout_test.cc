// AckFanout: durable seq to Acks and TrimAcks, on Connections over
// socketpairs whose owner forgets them on close, as the Server does.
#include "server/ack_fanout.h"

#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "loop_fixture.h"

using namespace wald;
using wald::test::LoopFixture;
using wald::test::Peer;

namespace {

class AckFanoutTest : public LoopFixture {
 public:
  AckFanoutTest() {
    owner.on_closing = [this](server::Connection* c) { fanout.Forget(c); };
  }
  ~AckFanoutTest() { Finish(); }  // while fanout lives

  // A served peer; the connection is peer i's.
  server::Connection* Add() {
    peers.push_back(std::make_unique<Peer>());
    return Serve(*peers.back());
  }
  // The writer's holds, as AnswerTrims asks for them.
  std::function<std::vector<server::HoldState>()> Holds() {
    return [this] { return holds; };
  }
  std::vector<server::HoldState> holds;

  // An Append with seq `seq` waits on c.
  void Pending(server::Connection* c, uint64_t seq) {
    c->pending.push({/*request_id=*/seq * 10, seq, 0, 1, /*batch=*/0});
    ++c->pending_records;
    c->pending_bytes += 1;
    fanout.Track(c);
  }
  // An AppendBatch of seqs first..last waits on c.
  void PendingBatch(server::Connection* c, uint64_t first, uint64_t last) {
    const auto n = static_cast<uint32_t>(last - first + 1);
    c->pending.push({/*request_id=*/first * 10, last, 0, n, n});
    c->pending_records += n;
    c->pending_bytes += n;
    fanout.Track(c);
  }
  // The seqs peer i was acked, after letting the bytes arrive.
  std::vector<uint64_t> Acked(size_t i) {
    Step();
    peers[i]->Poll();
    std::vector<uint64_t> seqs;
    for (auto [id, seq] : peers[i]->Acks()) seqs.push_back(seq);
    return seqs;
  }

  std::vector<server::Connection*> after;  // after_acks calls
  server::AckFanout fanout{[this](server::Connection* c) { after.push_back(c); }};
  std::vector<std::unique_ptr<Peer>> peers;
};

}  // namespace

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: acks up to the durable seq, not beyond") {
  server::Connection* a = Add();
  Pending(a, 1);
  Pending(a, 2);
  fanout.Publish(1, 0);
  CHECK(Acked(0) == std::vector<uint64_t>{1});
  CHECK(a->pending.size() == 1);
  CHECK(fanout.tracked() == 1);
}

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: a connection with nothing left pending is no longer tracked") {
  server::Connection* a = Add();
  Pending(a, 1);
  fanout.Publish(5, 0);
  CHECK(fanout.tracked() == 0);
  CHECK(!a->in_ack_list);
  CHECK(a->pending_bytes == 0);
}

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: the ack echoes the request id") {
  Pending(Add(), 3);
  fanout.Publish(3, 0);
  Acked(0);
  REQUIRE(peers[0]->Acks().size() == 1);
  CHECK(peers[0]->Acks()[0].first == 30);
}

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: a batch is acked as one range once its last seq is durable") {
  server::Connection* a = Add();
  Pending(a, 1);
  PendingBatch(a, 2, 6);
  Pending(a, 7);
  fanout.Publish(5, 0);  // the batch's last record is not durable yet
  CHECK(Acked(0) == std::vector<uint64_t>{1});
  CHECK(peers[0]->BatchAcks().empty());
  CHECK(a->pending_records == 6);
  fanout.Publish(7, 0);
  CHECK(Acked(0) == std::vector<uint64_t>{1, 7});
  REQUIRE(peers[0]->BatchAcks().size() == 1);
  CHECK(peers[0]->BatchAcks()[0] == test::BatchAck{20, 2, 5});
  CHECK(a->pending_records == 0);
  CHECK(fanout.latency_us().count() == 7);  // one sample per record
}

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: many acks go out in frames of at most kMaxAcksPerFrame") {
  server::Connection* a = Add();
  for (uint64_t s = 1; s <= server::AckFanout::kMaxAcksPerFrame + 1; ++s) Pending(a, s);
  fanout.Publish(server::AckFanout::kMaxAcksPerFrame + 1, 0);
  CHECK(Acked(0).size() == server::AckFanout::kMaxAcksPerFrame + 1);
  CHECK(peers[0]->Count(proto::Body::Acks) == 2);
}

// Issue #14, bug 1: the walk used to edit the list it walked when an ack
// write closed its connection, and the next connection lost its acks.
TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: a peer that reset mid-walk does not cost the next one its acks") {
  server::Connection* gone = Add();
  server::Connection* b = Add();
  server::Connection* c = Add();
  Pending(gone, 1);
  Pending(b, 2);
  Pending(c, 3);
  Pending(b, 4);
  Pending(c, 5);
  peers[0]->Reset();
  fanout.Publish(3, 0);
  CHECK(gone->closing());
  CHECK(Acked(1) == std::vector<uint64_t>{2});
  CHECK(Acked(2) == std::vector<uint64_t>{3});
  fanout.Publish(5, 0);  // b and c are still tracked
  CHECK(Acked(1) == std::vector<uint64_t>{2, 4});
  CHECK(Acked(2) == std::vector<uint64_t>{3, 5});
}

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: a connection closed by its own ack write is dropped, not kept") {
  server::Connection* gone = Add();
  Pending(gone, 1);
  Pending(gone, 2);
  peers[0]->Reset();
  fanout.Publish(1, 0);
  CHECK(fanout.tracked() == 0);
  CHECK(after.empty());  // no backpressure update for a closed connection
}

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: a connection closed before the walk is never touched") {
  server::Connection* a = Add();
  server::Connection* b = Add();
  Pending(a, 1);
  Pending(b, 2);
  a->Close();
  fanout.Publish(2, 0);
  CHECK(Acked(1) == std::vector<uint64_t>{2});
  CHECK(after == std::vector<server::Connection*>{b});
}

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: a trim is answered once the writer has done it") {
  server::Connection* a = Add();
  fanout.AwaitTrim(a, 7, /*number=*/2, /*up_to=*/100);
  fanout.AnswerTrims(1, 100, Holds());
  Acked(0);
  CHECK(peers[0]->Count(proto::Body::TrimAck) == 0);
  fanout.AnswerTrims(2, 100, Holds());
  Acked(0);
  REQUIRE(peers[0]->Count(proto::Body::TrimAck) == 1);
  CHECK(peers[0]->Last(proto::Body::TrimAck)->value == 100);
}

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: a closed connection's trim is dropped, the others' answered") {
  server::Connection* gone = Add();
  server::Connection* b = Add();
  fanout.AwaitTrim(gone, 1, 1, 9);
  fanout.AwaitTrim(b, 2, 1, 9);
  peers[0]->Reset();
  fanout.AnswerTrims(1, 9, Holds());
  CHECK(gone->closing());  // (freed at the next loop step)
  Acked(1);
  CHECK(peers[1]->Count(proto::Body::TrimAck) == 1);
}

TEST_CASE_FIXTURE(AckFanoutTest,
                  "ack fan-out: a trim that a hold kept back names the hold, one that none did names none") {
  server::Connection* a = Add();
  holds = {{"backup", 400, 0}, {"follower", 100, 0}};
  fanout.AwaitTrim(a, 1, 1, /*up_to=*/500);
  fanout.AwaitTrim(a, 2, 1, /*up_to=*/50);
  fanout.AnswerTrims(1, 60, Holds());
  Acked(0);
  REQUIRE(peers[0]->Count(proto::Body::TrimAck) == 2);
  CHECK(peers[0]->got[0].text == "follower");
  CHECK(peers[0]->got[1].text == "");
}

TEST_CASE_FIXTURE(AckFanoutTest, "ack fan-out: hold changes are answered by number, a closed connection's dropped") {
  server::Connection* gone = Add();
  server::Connection* b = Add();
  fanout.AwaitHold(gone, 1, 1, "x");
  fanout.AwaitHold(b, 5, 2, "follower");
  fanout.AwaitHold(b, 6, 3, "nobody");
  peers[0]->Reset();
  server::HoldResult done;
  done.number = 2;
  done.seq = 42;
  server::HoldResult none;
  none.number = 3;
  none.outcome = server::HoldResult::Outcome::kNoSuchHold;
  server::HoldResult first;
  first.number = 1;
  fanout.AnswerHolds({first, done, none});
  CHECK(gone->closing());
  Acked(1);
  REQUIRE(peers[1]->Count(proto::Body::HoldAck) == 1);
  CHECK(peers[1]->Last(proto::Body::HoldAck)->value == 42);
  CHECK(peers[1]->Last(proto::Body::HoldAck)->text == "follower");
  REQUIRE(peers[1]->Count(proto::Body::Error) == 1);
  CHECK(peers[1]->Last(proto::Body::Error)->code == proto::ErrorCode::NoSuchHold);
}
