// SharedFiles (#20): readers of one segment share its descriptor, and it
// closes with the last of them.
#include "storage/shared_files.h"

#include <doctest/doctest.h>

#include "log_fixture.h"
#include "storage/log_reader.h"

using namespace wald::storage;
using wald::test::LogFixture;

namespace {

struct SharedFixture : LogFixture {
  SharedFixture() {
    opts.segment_size = 64 << 10;  // ~60 records of 1000 bytes a segment
    REQUIRE(Open().ok());
    REQUIRE(WriteN(200, 1000).ok());
  }
  std::unique_ptr<LogReader> Reader(uint64_t from) {
    auto r = LogReader::Open(env, dir, from, nullptr, SegmentScanner::kDefaultReadSize, &files);
    REQUIRE(r.ok());
    return std::move(r.value());
  }
  static uint64_t NextSeq(LogReader* r) {
    RecordView rec;
    REQUIRE(r->Next(&rec) == LogReader::Step::kRecord);
    return rec.seq;
  }
  SharedFiles files{env};
};

}  // namespace

TEST_CASE_FIXTURE(SharedFixture, "readers of one segment share one open file") {
  auto a = Reader(1);
  auto b = Reader(5);
  auto c = Reader(10);
  CHECK(files.open() == 1);
  CHECK(NextSeq(a.get()) == 1);  // each keeps its own position
  CHECK(NextSeq(c.get()) == 10);
  CHECK(NextSeq(b.get()) == 5);
}

TEST_CASE_FIXTURE(SharedFixture, "readers of different segments hold one file each") {
  auto a = Reader(1);
  auto b = Reader(190);
  CHECK(files.open() == 2);
}

TEST_CASE_FIXTURE(SharedFixture, "the file closes when its last reader lets go") {
  auto a = Reader(1);
  auto b = Reader(2);
  a.reset();
  CHECK(files.open() == 1);
  b.reset();
  CHECK(files.open() == 0);
}

TEST_CASE_FIXTURE(SharedFixture, "a reader that moves to the next segment lets go of the last") {
  auto a = Reader(1);
  uint64_t seq = 0;
  while (a->segment_path() == Segments().front()) seq = NextSeq(a.get());
  CHECK(seq > 1);
  CHECK(files.open() == 1);
}

TEST_CASE_FIXTURE(SharedFixture, "a failed open is not remembered") {
  fault.FailOpens(1, EMFILE);
  auto f = files.Open(Segments().front());
  REQUIRE_FALSE(f.ok());
  CHECK(f.status().err() == EMFILE);
  CHECK(files.open() == 0);
  auto again = Reader(1);
  CHECK(NextSeq(again.get()) == 1);
  CHECK(files.open() == 1);
}
