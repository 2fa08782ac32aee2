// Idempotent producers in the Server (FakeWriter, socketpair peers): a
// resent append is acked with its first seq and not written again; gaps,
// stale seqs and fenced connections get their own errors, the connection
// stays.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "server_fixture.h"

using namespace wald;
using wald::test::BatchAck;
using wald::test::Peer;
using wald::test::ServerTest;

namespace {
constexpr uint64_t kId = 0x5eed;
}  // namespace

TEST_CASE_FIXTURE(ServerTest, "producers: HelloAck says the producer's last producer seq") {
  Start();
  Peer& first = Connect(kId);
  CHECK(first.Last(proto::Body::HelloAck)->producer_seq == 0);
  first.Append(1, "a", 1);
  first.Append(2, "b", 2);
  REQUIRE(StepUntil([&] { return writer->held_records() == 2; }));
  Peer& again = Connect(kId);
  CHECK(again.Last(proto::Body::HelloAck)->producer_seq == 2);
  Peer& other = Connect(kId + 1);
  CHECK(other.Last(proto::Body::HelloAck)->producer_seq == 0);
}

TEST_CASE_FIXTURE(ServerTest,
                  "producers: a resent append is acked with its first seq once durable, not written again") {
  Start();
  Peer& first = Connect(kId);
  first.Append(1, "a", 1);
  first.Append(2, "b", 2);
  REQUIRE(StepUntil([&] { return writer->held_records() == 2; }));
  first.Reset();  // the client lost the connection before the acks
  Peer& again = Connect(kId);
  again.Append(7, "a", 1);
  again.Append(8, "b", 2);
  again.Append(9, "c", 3);
  REQUIRE(StepUntil([&] { return writer->held_records() == 3; }));
  Step();
  again.Poll();
  CHECK(again.Acks().empty());  // not before the first copies are durable
  writer->Sync();
  REQUIRE(AckedCount(again, 3));
  CHECK(again.Acks()[0] == std::pair<uint64_t, uint64_t>{7, 1});
  CHECK(again.Acks()[1] == std::pair<uint64_t, uint64_t>{8, 2});
  CHECK(again.Acks()[2] == std::pair<uint64_t, uint64_t>{9, 3});
  CHECK(writer->durable_seq() == 3);
  CHECK(writer->held_records() == 0);
}

TEST_CASE_FIXTURE(ServerTest, "producers: a duplicate of a durable record is acked without another sync") {
  Start();
  Peer& first = Connect(kId);
  first.Append(1, "a", 1);
  REQUIRE(StepUntil([&] { return writer->held_records() == 1; }));
  writer->Sync();
  REQUIRE(AckedCount(first, 1));
  Peer& again = Connect(kId);
  again.Append(5, "a", 1);
  REQUIRE(AckedCount(again, 1));
  CHECK(again.Acks()[0] == std::pair<uint64_t, uint64_t>{5, 1});
}

TEST_CASE_FIXTURE(ServerTest, "producers: a resent batch is acked with its first range") {
  Start();
  Peer& first = Connect(kId);
  first.AppendBatch(1, {"a", "b", "c"}, 1);
  REQUIRE(StepUntil([&] { return writer->held_records() == 3; }));
  writer->Sync();
  Peer& again = Connect(kId);
  again.AppendBatch(4, {"a", "b", "c"}, 1);
  again.AppendBatch(5, {"d", "e"}, 4);
  REQUIRE(StepUntil([&] { return writer->held_records() == 2; }));  // only the new batch
  writer->Sync();
  REQUIRE(StepUntil([&] {
    again.Poll();
    return again.BatchAcks().size() == 2;
  }));
  CHECK(again.BatchAcks()[0] == BatchAck{4, 1, 3});
  CHECK(again.BatchAcks()[1] == BatchAck{5, 4, 2});
}

TEST_CASE_FIXTURE(ServerTest, "producers: a producer seq past the next one is ProducerSeqGap, the connection stays") {
  Start();
  Peer& p = Connect(kId);
  p.Append(1, "a", 1);
  p.Append(2, "c", 3);
  REQUIRE(ErrorCount(p, 1));
  CHECK(p.Last(proto::Body::Error)->request_id == 2);
  CHECK(p.Last(proto::Body::Error)->code == proto::ErrorCode::ProducerSeqGap);
  CHECK(p.Last(proto::Body::Error)->value == 2);  // the next one expected
  p.Append(3, "b", 2);
  REQUIRE(StepUntil([&] { return writer->held_records() == 2; }));
  writer->Sync();
  REQUIRE(AckedCount(p, 2));
  CHECK(!p.eof);
}

TEST_CASE_FIXTURE(ServerTest, "producers: a resent append older than max_inflight is ProducerSeqStale") {
  o.max_inflight = 4;
  Start();
  Peer& p = Connect(kId);
  for (uint64_t i = 1; i <= 8; ++i) p.Append(i, "x", i);
  REQUIRE(StepUntil([&] { return writer->held_records() == 8; }));
  writer->Sync();
  REQUIRE(AckedCount(p, 8));
  p.Append(20, "x", 2);
  p.AppendBatch(21, {"x", "x"}, 8);  // 8 is known, 9 is not: not a duplicate whole
  REQUIRE(ErrorCount(p, 2));
  for (const auto& g : p.got) {
    if (g.type == proto::Body::Error) CHECK(g.code == proto::ErrorCode::ProducerSeqStale);
  }
  Step();
  CHECK(writer->held_records() == 0);
  CHECK(writer->durable_seq() == 8);
}

TEST_CASE_FIXTURE(ServerTest, "producers: a newer connection with the same id fences the older one") {
  Start();
  Peer& old_conn = Connect(kId);
  old_conn.Append(1, "a", 1);
  REQUIRE(StepUntil([&] { return writer->held_records() == 1; }));
  Peer& new_conn = Connect(kId);
  old_conn.Append(2, "b", 2);
  REQUIRE(ErrorCount(old_conn, 1));
  CHECK(old_conn.Last(proto::Body::Error)->code == proto::ErrorCode::ProducerFenced);
  new_conn.Append(1, "b", 2);
  REQUIRE(StepUntil([&] { return writer->held_records() == 2; }));
  writer->Sync();
  REQUIRE(AckedCount(new_conn, 1));
  REQUIRE(AckedCount(old_conn, 1));  // its earlier append is still acked
  CHECK(new_conn.Acks()[0] == std::pair<uint64_t, uint64_t>{1, 2});
}

TEST_CASE_FIXTURE(ServerTest,
                  "producers: numbering on a plain connection, or none on a producer's, is InvalidRequest") {
  Start();
  Peer& plain = Connect();
  plain.Append(1, "a", 1);
  Peer& producer = Connect(kId);
  producer.Append(1, "a");
  REQUIRE(ErrorCount(plain, 1));
  REQUIRE(ErrorCount(producer, 1));
  CHECK(plain.Last(proto::Body::Error)->code == proto::ErrorCode::InvalidRequest);
  CHECK(producer.Last(proto::Body::Error)->code == proto::ErrorCode::InvalidRequest);
  CHECK(writer->held_records() == 0);
}

TEST_CASE_FIXTURE(ServerTest, "producers: an append refused for the disk budget uses its number, the next goes on") {
  Start();
  const uint64_t rec = storage::EncodedSize(100, storage::kMaxMetaSize);
  writer->SetAppendLimit(2 * rec);
  Peer& p = Connect(kId);
  for (uint64_t i = 1; i <= 3; ++i) p.Append(i, std::string(100, 'a'), i);
  REQUIRE(ErrorCount(p, 1));
  CHECK(p.Last(proto::Body::Error)->request_id == 3);
  CHECK(p.Last(proto::Body::Error)->code == proto::ErrorCode::DiskBudget);
  writer->Sync();
  REQUIRE(AckedCount(p, 2));
  writer->SetAppendLimit(10 * rec);
  p.Append(4, std::string(100, 'b'), 4);  // 3 was refused: 4 is next, not a gap
  p.Append(5, std::string(100, 'a'), 3);  // a repeat of the refused one: nothing to answer it with
  REQUIRE(ErrorCount(p, 2));
  CHECK(p.Last(proto::Body::Error)->request_id == 5);
  CHECK(p.Last(proto::Body::Error)->code == proto::ErrorCode::ProducerSeqStale);
  REQUIRE(StepUntil([&] { return writer->held_records() == 1; }));
  writer->Sync();
  REQUIRE(AckedCount(p, 3));
  CHECK(p.Acks()[2] == std::pair<uint64_t, uint64_t>{4, 3});
}

TEST_CASE_FIXTURE(ServerTest, "producers: a producer seq near 2^64 is InvalidRequest, not a wrapped range") {
  Start();
  Peer& p = Connect(kId);
  p.AppendBatch(1, {"a", "b", "c", "d"}, UINT64_MAX - 1);
  p.Append(2, "x", uint64_t{1} << 63);
  REQUIRE(ErrorCount(p, 2));
  for (const auto& g : p.got) {
    if (g.type == proto::Body::Error) CHECK(g.code == proto::ErrorCode::InvalidRequest);
  }
  p.Append(3, "y", 1);  // the producer is still new
  REQUIRE(StepUntil([&] { return writer->held_records() == 1; }));
}
