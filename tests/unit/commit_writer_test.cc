// The writer thread in process, on a real log: group commit is capped, so a
// burst of staged chunks is made durable (and published) in several batches,
// not one that a lone small append would wait behind.
#include "server/commit_writer.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "log_fixture.h"

using namespace wald;
using namespace wald::server;

namespace {

// Fills `c` with records of `size` bytes from `seq` on until it holds about
// `bytes`; returns the next seq.
uint64_t FillChunk(Chunk* c, uint64_t seq, size_t bytes, size_t size) {
  const std::string payload(size, 'p');
  storage::RecordMeta meta;
  while (c->used + storage::EncodedSize(size, storage::kMaxMetaSize) <= bytes) {
    meta.flags = c->empty() ? storage::kFlagDurable : 0;
    c->Add(seq++, meta, std::as_bytes(std::span(payload)));
  }
  return seq;
}

}  // namespace

TEST_CASE_FIXTURE(test::LogFixture, "a burst of staged chunks is committed in capped batches, each published") {
  opts.segment_size = 64 << 20;
  REQUIRE(Open().ok());
  std::vector<std::unique_ptr<Chunk>> chunks;
  std::vector<uint64_t> published;  // durable seqs the writer notified, in order
  std::atomic<uint64_t> notified{0};
  CommitWriter* writer = nullptr;
  auto cw = std::make_unique<CommitWriter>(std::move(w), 16, SpinOptions{}, [&] {
    published.push_back(writer->durable_seq());  // the writer thread's own notification
    notified.fetch_add(1);
  });
  writer = cw.get();
  uint64_t seq = 1;
  for (int i = 0; i < 8; ++i) {  // 8 MiB staged before the writer looks
    chunks.push_back(std::make_unique<Chunk>(1 << 20));
    seq = FillChunk(chunks.back().get(), seq, 1 << 20, 1000);
    cw->Submit(chunks.back().get());
  }
  cw->Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (cw->durable_seq() < seq - 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  cw->Stop();
  REQUIRE(cw->durable_seq() == seq - 1);
  // A batch stops taking chunks once it holds kMaxBatchBytes: here two
  // chunks of just under 1 MiB each, so at least 4 fdatasyncs (1 uncapped).
  CHECK(cw->stats().syncs.load() >= 4);
  REQUIRE(published.size() >= 4);
  for (size_t i = 1; i < published.size(); ++i) CHECK(published[i] >= published[i - 1]);
  CHECK(published.front() < seq - 1);  // the first records were acked before the last were written
}
