// The client's AppendBatch (a daemon whose HelloAck offers it), against a
// fake server on a socketpair: what goes in one batch, how a batch's ack or
// error completes each append in it, and the frames queued behind a batch.
#include <doctest/doctest.h>

#include <span>
#include <string>
#include <vector>

#include "client_fixture.h"
#include "framing.h"
#include "wald/client.h"

using namespace wald;
using wald::test::Connected;
using wald::test::FakeServer;
using wald::test::QueueN;

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
