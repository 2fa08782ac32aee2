// AppendBatch in the Server (FakeWriter, socketpair peers): dense seqs and
// one ack per batch, whole refusals that keep the connection, and a batch
// that waits whole for staging room.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "server_fixture.h"
#include "storage/format.h"

using namespace wald;
using wald::test::BatchAck;
using wald::test::Peer;
using wald::test::ServerTest;

namespace {

std::vector<std::string> Payloads(int n, size_t size = 100) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(std::string(size, static_cast<char>('a' + i % 26)));
  return v;
}

}  // namespace

TEST_CASE_FIXTURE(ServerTest, "server: HelloAck offers batches of up to --max-inflight records") {
  o.max_inflight = 300;
  Start();
  Peer& p = Connect();
  REQUIRE(p.Last(proto::Body::HelloAck) != nullptr);
  CHECK(p.Last(proto::Body::HelloAck)->request_id == 300);  // max_batch_records
}

TEST_CASE_FIXTURE(ServerTest, "server: a batch's records get consecutive seqs and one ack once the last is durable") {
  Start();
  Peer& p = Connect();
  p.Append(1, "before");
  p.AppendBatch(2, Payloads(5));
  p.Append(3, "after");
  REQUIRE(StepUntil([&] { return writer->held_records() == 7; }));
  p.Poll();
  CHECK(p.BatchAcks().empty());
  writer->Sync();
  REQUIRE(StepUntil([&] {
    p.Poll();
    return p.Acks().size() == 2 && p.BatchAcks().size() == 1;
  }));
  CHECK(p.Acks()[0] == std::pair<uint64_t, uint64_t>{1, 1});
  CHECK(p.BatchAcks()[0] == BatchAck{2, 2, 5});
  CHECK(p.Acks()[1] == std::pair<uint64_t, uint64_t>{3, 7});
}

TEST_CASE_FIXTURE(ServerTest,
                  "server: a batch with a record over --max-record is refused whole, the connection stays") {
  o.max_record = 1000;
  Start();
  Peer& p = Connect();
  p.AppendBatch(1, {"ok", std::string(1001, 'x'), "ok"});
  REQUIRE(ErrorCount(p, 1));
  CHECK(p.Last(proto::Body::Error)->request_id == 1);
  CHECK(p.Last(proto::Body::Error)->code == proto::ErrorCode::RecordTooLarge);
  CHECK(writer->held_records() == 0);
  p.Append(2, "next");  // no seq was used by the refused batch
  REQUIRE(StepUntil([&] { return writer->held_records() == 1; }));
  writer->Sync();
  REQUIRE(AckedCount(p, 1));
  CHECK(p.Acks()[0] == std::pair<uint64_t, uint64_t>{2, 1});
  CHECK(!p.eof);
}

TEST_CASE_FIXTURE(ServerTest, "server: a batch of more records than max_batch_records, or none, is InvalidRequest") {
  o.max_inflight = 4;
  Start();
  Peer& p = Connect();
  p.AppendBatch(1, Payloads(5));
  p.AppendBatch(2, {});
  REQUIRE(ErrorCount(p, 2));
  for (const auto& g : p.got) {
    if (g.type == proto::Body::Error) CHECK(g.code == proto::ErrorCode::InvalidRequest);
  }
  CHECK(writer->held_records() == 0);
  CHECK(!p.eof);
}

TEST_CASE_FIXTURE(ServerTest, "server: a batch whose sizes do not add up to its data is InvalidRequest") {
  Start();
  Peer& p = Connect();
  proto::FrameBuilder fb;
  const uint32_t sizes[] = {10, 10};
  const std::string data(25, 'd');
  p.Send(fb.AppendBatch(1, sizes, {reinterpret_cast<const uint8_t*>(data.data()), data.size()}));
  REQUIRE(ErrorCount(p, 1));
  CHECK(p.Last(proto::Body::Error)->code == proto::ErrorCode::InvalidRequest);
  CHECK(writer->held_records() == 0);
}

TEST_CASE_FIXTURE(ServerTest, "server: a batch over the frame limit is refused whole and nothing is appended") {
  o.max_record = 1000;
  Start();
  Peer& p = Connect();
  p.AppendBatch(1, Payloads(20, 100));  // 2,000 bytes of records: over max_record + 128
  REQUIRE(StepUntil([&] {
    p.Poll();
    return p.eof;
  }));
  REQUIRE(p.Last(proto::Body::Error) != nullptr);
  CHECK(p.Last(proto::Body::Error)->code == proto::ErrorCode::FrameTooLarge);
  CHECK(writer->held_records() == 0);
}

TEST_CASE_FIXTURE(ServerTest, "server: a batch past the disk budget gets DiskBudget whole") {
  Start();
  const uint64_t rec = storage::EncodedSize(100, storage::kMaxMetaSize);
  writer->SetAppendLimit(3 * rec);
  Peer& p = Connect();
  p.AppendBatch(1, Payloads(4));
  REQUIRE(ErrorCount(p, 1));
  CHECK(p.Last(proto::Body::Error)->code == proto::ErrorCode::DiskBudget);
  CHECK(writer->held_records() == 0);
  p.AppendBatch(2, Payloads(2));  // fits: taken whole
  REQUIRE(StepUntil([&] { return writer->held_records() == 2; }));
}

TEST_CASE_FIXTURE(ServerTest, "server: a batch that finds no staging room waits whole, then gets dense seqs") {
  o.max_unsynced_bytes = 1 << 20;  // 8 chunks
  Start();
  Peer& p = Connect();
  for (uint64_t i = 1; i <= 8; ++i) {  // one record per loop iteration: one chunk each
    Append(p, i, 1);
    REQUIRE(StepUntil([&] { return writer->held().size() == i; }));
  }
  Peer& q = Connect();
  p.AppendBatch(9, Payloads(3));
  Step(20);
  q.Append(1, "other");
  Step(20);
  CHECK(writer->held_records() == 8);  // neither the batch nor any part of it went in
  writer->Sync();
  REQUIRE(StepUntil([&] { return writer->held_records() == 4; }));
  writer->Sync();
  REQUIRE(StepUntil([&] {
    p.Poll();
    q.Poll();
    return p.BatchAcks().size() == 1 && q.Acks().size() == 1;
  }));
  CHECK(p.BatchAcks()[0] == BatchAck{9, 9, 3});
  CHECK(q.Acks()[0] == std::pair<uint64_t, uint64_t>{1, 12});
}

// A waiting batch holds every socket until it is staged, even once the
// staged bytes are below half the cap and a chunk is free: a pause must not
// lift on a load that would start it again. (It did: the pause flapped
// through every connection, recursing until the daemon's stack ran out,
// and the others were read past the waiting batch.)
TEST_CASE_FIXTURE(ServerTest, "server: a batch still short of chunks after a partial sync keeps every socket paused") {
  o.max_unsynced_bytes = 1 << 20;  // 8 chunks of one largest record each
  o.max_inflight = 1 << 16;        // batches of up to 65536 records
  Start();
  // A batch of small records whose encoding spans two chunks.
  const size_t chunk = std::max<size_t>(256 << 10, storage::EncodedSize(o.max_record, storage::kMaxMetaSize));
  const int n = static_cast<int>(chunk / storage::EncodedSize(8)) + 100;
  Peer& p = Connect();
  for (uint64_t i = 1; i <= 8; ++i) {  // one record per loop iteration: one chunk each
    Append(p, i, 1);
    REQUIRE(StepUntil([&] { return writer->held().size() == i; }));
  }
  std::vector<Peer*> others;
  for (int k = 0; k < 3; ++k) others.push_back(&Connect());
  p.AppendBatch(9, Payloads(n, 8));
  Step(20);
  for (Peer* q : others) q->Append(1, "other");
  Step(20);
  REQUIRE(writer->held_records() == 8);
  writer->SyncOldest(1);  // one chunk free and little staged, but the batch needs two
  Step(20);
  CHECK(writer->held_records() == 7);  // no one was read past the waiting batch
  REQUIRE(StepUntil([&] {
    writer->Sync();
    p.Poll();
    for (Peer* q : others) q->Poll();
    return p.BatchAcks().size() == 1 &&
           std::all_of(others.begin(), others.end(), [](Peer* q) { return q->Acks().size() == 1; });
  }));
  const uint64_t last = 8 + static_cast<uint64_t>(n);
  CHECK(p.BatchAcks()[0] == BatchAck{9, 9, static_cast<uint64_t>(n)});
  std::vector<uint64_t> seqs;
  for (Peer* q : others) seqs.push_back(q->Acks()[0].second);
  std::sort(seqs.begin(), seqs.end());
  CHECK(seqs == std::vector<uint64_t>{last + 1, last + 2, last + 3});  // after the batch
}
