// ReadService: Read cursors over a log the test wrote, on Connections over
// socketpairs, with a FakeWriter saying what is durable.
#include "server/read_service.h"

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <memory>

#include "../unit/log_fixture.h"
#include "fake_writer.h"
#include "loop_fixture.h"

using namespace wald;
using wald::test::FakeWriter;
using wald::test::LogFixture;
using wald::test::LoopFixture;
using wald::test::Peer;

namespace {

// An Env whose Open fails with EIO: the reads must see it.
class NoOpenEnv : public storage::Env {
 public:
  storage::Result<std::unique_ptr<storage::File>> Open(const std::string& path, storage::OpenMode) override {
    return storage::Status::IoError("open " + path, EIO);
  }
  storage::Status Rename(const std::string& f, const std::string& t) override { return posix()->Rename(f, t); }
  storage::Status Remove(const std::string& p) override { return posix()->Remove(p); }
  storage::Status SyncDir(const std::string& d) override { return posix()->SyncDir(d); }
  storage::Result<std::vector<std::string>> ListDir(const std::string& d) override { return posix()->ListDir(d); }
  storage::Status CreateDir(const std::string& d) override { return posix()->CreateDir(d); }
  storage::Status CheckPrivateDir(const std::string& d) override { return posix()->CheckPrivateDir(d); }
  storage::FileKind Kind(const std::string& p) override { return posix()->Kind(p); }
  uint64_t DiskUsage(const std::string& p) override { return posix()->DiskUsage(p); }
  uint64_t ModifiedTimeNs(const std::string& p) override { return posix()->ModifiedTimeNs(p); }
  storage::Result<std::unique_ptr<storage::DirLock>> Lock(const std::string& p) override { return posix()->Lock(p); }

 private:
  static storage::Env* posix() { return storage::Env::Posix(); }
};

class ReadServiceTest : public LoopFixture {
 public:
  ReadServiceTest() {
    REQUIRE(log.Open().ok());
    REQUIRE(log.WriteN(20, 100).ok());
    owner.on_closing = [this](server::Connection* c) { reads->EndAll(c); };
    owner.on_drained = [this](server::Connection* c) { reads->OnDrained(c); };
    Start(storage::Env::Posix());
  }
  ~ReadServiceTest() { Finish(); }  // while reads lives
  void Start(storage::Env* env, uint32_t max_reads = 2, uint64_t max_connection_bytes = 1 << 20,
             uint64_t max_read_frame = proto::kRecordsChunk) {
    max_read_frame_ = max_read_frame;
    reads = std::make_unique<server::ReadService>(loop(), log.dir, env, &writer,
                                                  server::ReadLimits{max_reads, max_connection_bytes, max_read_frame});
  }
  // Sends nothing over the wire: hands the service a Read as dispatch would.
  bool Read(server::Connection* c, uint64_t id, uint64_t from, uint64_t max = 0, bool follow = false) {
    std::vector<uint8_t> scratch;
    auto frame = fb.Read(id, from, max, follow);
    proto::ParsedFrame f = proto::ParseFrame(frame, 1 << 20, &scratch);
    REQUIRE(f.kind == proto::ParsedFrame::kFrame);
    return reads->Open(c, f.msg->body_as_Read());
  }
  // Steps until p holds a frame that ends Read `id` (done, or an Error).
  bool Finished(Peer& p, uint64_t id) {
    return StepUntil([&] {
      p.Poll();
      for (const test::Got& g : p.got) {
        if (g.request_id == id && (g.done || g.type == proto::Body::Error)) return true;
      }
      return false;
    });
  }
  std::vector<uint64_t> Seqs(const Peer& p) {
    std::vector<uint64_t> all;
    for (const test::Got& g : p.got) all.insert(all.end(), g.seqs.begin(), g.seqs.end());
    return all;
  }
  static std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
    std::vector<uint64_t> v;
    for (uint64_t s = from; s <= to; ++s) v.push_back(s);
    return v;
  }

  // `n` more records of 1000 bytes, all durable, and a connection from big_peer to
  // a service with these limits.
  server::Connection* BigLog(uint64_t n, uint32_t max_reads, uint64_t budget, size_t record = 1000) {
    if (record > (16 << 10)) {  // the fixture's 64 KiB segments cannot hold it
      log.Close();
      log.opts.segment_size = 8 << 20;
      REQUIRE(log.Open().ok());
    }
    REQUIRE(log.WriteN(n, record, 2).ok());
    writer.Publish(20 + n);
    // As the server sets it: a chunk, or less plus one whole record.
    Start(storage::Env::Posix(), max_reads, budget, proto::kRecordsChunk + record);
    return Serve(big_peer);
  }
  // Steps for a second while big_peer does not read, checking that c's output plus
  // the chunks its cursors have on the pool never pass `budget` by more than
  // one chunk; returns the most output c held.
  size_t MostUnsent(server::Connection* c, uint64_t budget) {
    size_t most = 0;
    uint64_t most_held = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < until) {
      Step(1);
      most = std::max<size_t>(most, c->unsent());
      most_held = std::max<uint64_t>(most_held, c->unsent() + c->read_reserved);
    }
    CHECK(most_held <= budget + max_read_frame_);
    return most;
  }

  LogFixture log;
  FakeWriter writer{/*durable=*/20};
  Peer big_peer;  // BigLog's
  uint64_t max_read_frame_ = proto::kRecordsChunk;
  std::unique_ptr<server::ReadService> reads;
  proto::FrameBuilder fb;
};

}  // namespace

TEST_CASE_FIXTURE(ReadServiceTest, "read service: a Read streams the durable records, then says done") {
  Peer p;
  REQUIRE(Read(Serve(p), 1, 5));
  REQUIRE(Finished(p, 1));
  CHECK(Seqs(p) == Range(5, 20));
}

TEST_CASE_FIXTURE(ReadServiceTest, "read service: a Read never passes the durable seq") {
  writer.Publish(12);
  Peer p;
  REQUIRE(Read(Serve(p), 1, 1));
  REQUIRE(Finished(p, 1));
  CHECK(Seqs(p) == Range(1, 12));
}

TEST_CASE_FIXTURE(ReadServiceTest, "read service: a follower parks at the durable end and goes on when it moves") {
  writer.Publish(15);
  Peer p;
  REQUIRE(Read(Serve(p), 1, 14, 0, /*follow=*/true));
  CHECK(StepUntil([&] { return reads->parked() == 1; }));
  writer.Publish(20);
  reads->OnDurable(20);
  CHECK(StepUntil([&] {
    p.Poll();
    return Seqs(p).size() == 7;
  }));
  CHECK(Seqs(p) == Range(14, 20));
}

TEST_CASE_FIXTURE(ReadServiceTest, "read service: one Read over the cap gets TooManyReads, the connection stays") {
  Peer p;
  server::Connection* c = Serve(p);
  REQUIRE(Read(c, 1, 21, 0, true));
  REQUIRE(Read(c, 2, 21, 0, true));
  CHECK(!Read(c, 3, 21, 0, true));
  REQUIRE(Finished(p, 3));
  CHECK(p.Last(proto::Body::Error)->code == proto::ErrorCode::TooManyReads);
  CHECK(!c->closing());
}

TEST_CASE_FIXTURE(ReadServiceTest, "read service: a cancelled Read gives its place back") {
  Peer p;
  server::Connection* c = Serve(p);
  REQUIRE(Read(c, 1, 21, 0, true));
  REQUIRE(Read(c, 2, 21, 0, true));
  reads->Cancel(c, 1);
  CHECK(c->cursors.size() == 1);
  CHECK(reads->parked() == 1);
  CHECK(Read(c, 3, 21, 0, true));
}

TEST_CASE_FIXTURE(ReadServiceTest, "read service: reads go through the injected Env") {
  NoOpenEnv env;
  Start(&env);
  Peer p;
  REQUIRE(Read(Serve(p), 1, 1));
  REQUIRE(Finished(p, 1));
  CHECK(p.Last(proto::Body::Error)->code == proto::ErrorCode::ReadFailed);
  CHECK(Seqs(p).empty());
}

TEST_CASE_FIXTURE(ReadServiceTest, "read service: a connection that closes while its read is on the pool") {
  Peer p;
  server::Connection* c = Serve(p);
  REQUIRE(Read(c, 1, 1));
  c->Close();  // the cursor is in flight: detached now, freed when it returns
  CHECK(c->cursors.empty());
  CHECK(StepUntil([&] { return owner.closed == 1; }));
  Step(20);  // the pool's work returns; ASan would see a leak or a use after free
}

TEST_CASE_FIXTURE(ReadServiceTest, "read service: a peer that does not read holds at most one chunk past the cap") {
  server::Connection* c = BigLog(1000, 2, 64 << 10);  // seqs 21..1020: about four chunks
  REQUIRE(Read(c, 1, 1));
  CHECK(MostUnsent(c, 64 << 10) > 0);
  REQUIRE(Finished(big_peer, 1));  // reading, the peer gets everything
  CHECK(Seqs(big_peer) == Range(1, 1020));
}

TEST_CASE_FIXTURE(ReadServiceTest, "read service: many Reads from a peer that does not read share its one budget") {
  server::Connection* c = BigLog(4000, 16, 1 << 20);  // seqs 21..4020: about sixteen chunks
  for (uint64_t id = 1; id <= 16; ++id) REQUIRE(Read(c, id, 1));
  CHECK(MostUnsent(c, 1 << 20) > 0);  // the peer's socket filled: the budget was what held
  for (uint64_t id = 1; id <= 16; ++id) REQUIRE(Finished(big_peer, id));  // reading, the peer gets everything
  CHECK(Seqs(big_peer).size() == 16 * 4020);
}

TEST_CASE_FIXTURE(ReadServiceTest, "read service: records larger than a chunk are reserved at their size") {
  server::Connection* c = BigLog(20, 4, 1 << 20, 600 << 10);  // seqs 21..40: one record a frame
  for (uint64_t id = 1; id <= 4; ++id) REQUIRE(Read(c, id, 21));
  CHECK(MostUnsent(c, 1 << 20) > 0);
  for (uint64_t id = 1; id <= 4; ++id) REQUIRE(Finished(big_peer, id));
  CHECK(Seqs(big_peer).size() == 4 * 20);
}
