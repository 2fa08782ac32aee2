// StagingPool: seqs, records encoded into chunks, the hand-off to the
// writer (a FakeWriter), and the chunks coming back.
#include "server/staging.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "fake_writer.h"
#include "storage/format.h"

using namespace wald;
using wald::test::FakeWriter;

namespace {

constexpr size_t kChunk = 4096;

class StagingTest {
 public:
  StagingTest() : pool(kChunk, 3, 10, &writer) {}

  uint64_t Stage(size_t size = 100) {
    const std::string payload(size, 'x');
    return pool.Stage(storage::RecordMeta{}, std::as_bytes(std::span(payload)));
  }
  // Stages records until a chunk goes to the writer.
  void FillOneChunk() {
    const size_t before = writer.held().size();
    while (writer.held().size() == before) REQUIRE(Stage(1000) != 0);
  }
  // The record at `offset` of a held chunk, salted with the chunk's salt.
  storage::RecordView RecordAt(size_t chunk, size_t offset = 0) {
    storage::RecordView v;
    const server::Chunk* c = writer.held()[chunk];
    REQUIRE(storage::DecodeRecord({c->data.get() + offset, c->used - offset}, &v, c->salt) ==
            storage::DecodeStatus::kOk);
    return v;
  }

  FakeWriter writer{/*durable=*/9};
  server::StagingPool pool;
};

}  // namespace

TEST_CASE_FIXTURE(StagingTest, "staging: seqs are dense from the log's next seq") {
  CHECK(Stage() == 10);
  CHECK(Stage() == 11);
  CHECK(pool.next_seq() == 12);
}

TEST_CASE_FIXTURE(StagingTest, "staging: nothing reaches the writer before the hand-off") {
  Stage();
  CHECK(writer.held().empty());
  CHECK(pool.HandOff() == 1);
  CHECK(writer.held().size() == 1);
  CHECK(writer.wakes == 1);
}

TEST_CASE_FIXTURE(StagingTest, "staging: a hand-off with nothing staged hands nothing over") {
  CHECK(pool.HandOff() == 0);
  CHECK(writer.held().empty());
}

TEST_CASE_FIXTURE(StagingTest, "staging: a writer with nothing unsynced gets records at once") {
  Stage();
  Stage();
  CHECK(pool.HandOffIfWriterIdle() == 2);
  CHECK(writer.held().size() == 1);
  CHECK(writer.wakes == 1);
}

TEST_CASE_FIXTURE(StagingTest, "staging: a writer still syncing gets records at the hand-off, not at once") {
  Stage();
  pool.HandOff();
  Stage();
  CHECK(pool.HandOffIfWriterIdle() == 0);
  CHECK(writer.held().size() == 1);
  writer.Sync();  // the first record is durable: the writer is idle
  CHECK(pool.HandOffIfWriterIdle() == 1);
  CHECK(writer.held().size() == 1);
  CHECK(writer.held_records() == 1);
}

TEST_CASE_FIXTURE(StagingTest, "staging: a record that does not fit sends the full chunk to the writer") {
  FillOneChunk();
  CHECK(writer.held().size() == 1);
  CHECK(writer.held_records() == 4);  // 4 x ~1 KiB in 4 KiB
}

TEST_CASE_FIXTURE(StagingTest, "staging: the first record of a chunk carries the writer's durable seq") {
  Stage();
  Stage();
  pool.HandOff();
  CHECK((RecordAt(0).meta.flags & storage::kFlagDurable) != 0);
  CHECK(RecordAt(0).meta.durable_seq == 9);
  CHECK((RecordAt(0, RecordAt(0).encoded_size).meta.flags & storage::kFlagDurable) == 0);
}

TEST_CASE_FIXTURE(StagingTest, "staging: with every chunk at the writer, Stage waits and assigns no seq") {
  FillOneChunk();
  FillOneChunk();  // the writer holds two chunks; the third is current
  while (Stage(1000) != 0) {
  }
  const uint64_t next = pool.next_seq();
  CHECK(Stage() == 0);
  CHECK(pool.next_seq() == next);
  CHECK(pool.exhausted());
}

TEST_CASE_FIXTURE(StagingTest, "staging: synced chunks come back, and their bytes leave the count") {
  FillOneChunk();
  CHECK(pool.staged_bytes() > 4000);
  writer.Sync();
  pool.Recycle();
  CHECK(pool.staged_bytes() < 1100);  // only the current chunk's record
  CHECK(pool.writer_idle());
}

// Review finding: Fits counted every staged record with the 8-byte durable
// stamp that only a chunk's first record carries, so the loop's count ran
// ahead of the writer's and a budget shrank by 8 bytes a record for good.
TEST_CASE_FIXTURE(StagingTest, "staging: Fits counts what the records take, the stamp only on a chunk's first") {
  const storage::RecordMeta none{};
  const uint64_t first = storage::EncodedSize(100, storage::MetaSize(storage::kFlagDurable));  // 128
  const uint64_t rest = storage::EncodedSize(100);                                             // 120
  for (int i = 0; i < 10; ++i) REQUIRE(Stage() != 0);  // one chunk: 4 KiB holds them all
  REQUIRE(writer.held().empty());
  const uint64_t staged = first + 9 * rest;
  // The next record is counted at its most (with a stamp).
  CHECK(pool.Fits(none, 100, staged + first));
  CHECK(!pool.Fits(none, 100, staged + first - 1));
}

// A batch gets consecutive seqs: RoomFor says whether all of it fits now.
TEST_CASE_FIXTURE(StagingTest, "staging: a batch that fits the current chunk and the free ones has room now") {
  Stage(1000);                                        // the current chunk: 3 KiB left
  const uint32_t sizes[] = {1000, 1000, 1000, 1000};  // 3 here, 1 in a fresh chunk
  CHECK(pool.RoomFor(storage::RecordMeta{}, sizes) == server::StagingPool::Room::kNow);
}

TEST_CASE_FIXTURE(StagingTest, "staging: a batch that needs more chunks than are free waits, and nothing is staged") {
  FillOneChunk();
  FillOneChunk();  // two of three chunks with the writer, the third current
  const uint64_t next = pool.next_seq();
  const uint32_t sizes[] = {1000, 1000, 1000, 1000, 1000, 1000, 1000};  // needs a fresh chunk or two
  CHECK(pool.RoomFor(storage::RecordMeta{}, sizes) == server::StagingPool::Room::kWait);
  CHECK(pool.next_seq() == next);
  writer.Sync();  // the writer hands its two chunks back
  CHECK(pool.RoomFor(storage::RecordMeta{}, sizes) == server::StagingPool::Room::kNow);
}

TEST_CASE_FIXTURE(StagingTest, "staging: a batch larger than the whole pool never has room") {
  const std::vector<uint32_t> sizes(20, 1000);  // 20 KiB: 3 chunks of 4 KiB hold 12
  CHECK(pool.RoomFor(storage::RecordMeta{}, sizes) == server::StagingPool::Room::kNever);
}

TEST_CASE_FIXTURE(StagingTest, "staging: a chunk's records carry the salt of the segment being written when it began") {
  writer.salt = 0x1234;
  Stage();
  writer.salt = 0x5678;  // a roll: the chunk keeps the salt it began with
  Stage();
  REQUIRE(pool.HandOff() == 2);
  const server::Chunk* c = writer.held()[0];
  CHECK(c->salt == 0x1234);
  const storage::RecordView first = RecordAt(0);
  const storage::RecordView second = RecordAt(0, first.encoded_size);
  CHECK(second.seq == first.seq + 1);
  storage::RecordView v;
  CHECK(storage::DecodeRecord({c->data.get(), c->used}, &v) == storage::DecodeStatus::kBadChecksum);
  // The next chunk begins with the new salt.
  Stage();
  REQUIRE(pool.HandOff() == 1);
  CHECK(writer.held()[1]->salt == 0x5678);
  CHECK(RecordAt(1).seq == second.seq + 1);
}
