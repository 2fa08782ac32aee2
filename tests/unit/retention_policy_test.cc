// The LogWriter's side of retention (#15): the policy (retain_bytes,
// retain_age_ns, max_hold_lag) and the disk budget (max_disk, AppendLimit).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <random>

#include "log_fixture.h"

using namespace wald::storage;
using wald::test::LogFixture;
using wald::test::PayloadFor;

namespace {

constexpr uint64_t kSeg = 64 << 10;  // ~60 records of 1000 bytes a segment
constexpr uint64_t kSec = 1000000000ull;

// The time LogFixture::Write stamps on record `seq`.
uint64_t TimeOf(uint64_t seq) { return 1700000000000000000ull + seq * 1000001000ull; }

struct PolicyFixture : LogFixture {
  PolicyFixture() { opts.segment_size = kSeg; }
  std::vector<Hold> dropped;
};

}  // namespace

TEST_CASE_FIXTURE(PolicyFixture, "retain_bytes releases the oldest sealed segments, never past a hold") {
  opts.retain_bytes = 3 * kSeg;  // three sealed segments
  REQUIRE(Open().ok());
  REQUIRE(WriteN(600, 1000).ok());
  REQUIRE(w->SetHold("follower", 100).ok());
  REQUIRE(w->ApplyRetention(0, &dropped).ok());
  CHECK(w->first_seq() <= 101);  // the hold wins over the policy
  CHECK(w->trim_held_by() == "follower");
  REQUIRE(w->ReleaseHold("follower").ok());
  REQUIRE(w->ApplyRetention(0, &dropped).ok());
  CHECK(w->segment_count() == 4);  // three sealed and the one being written
  CHECK(ReadAll(w->first_seq()).back().seq == 600);
  CHECK(dropped.empty());
}

TEST_CASE_FIXTURE(PolicyFixture, "max_hold_lag drops a hold that lags too far, and only that one") {
  opts.max_hold_lag = 4 * kSeg;
  REQUIRE(Open().ok());
  REQUIRE(WriteN(600, 1000).ok());  // about ten segments
  REQUIRE(w->SetHold("dead", 10).ok());
  REQUIRE(w->SetHold("live", 590).ok());
  REQUIRE(w->ApplyRetention(0, &dropped).ok());
  CHECK(dropped == std::vector<Hold>{{"dead", 10}});
  CHECK(w->holds() == std::vector<Hold>{{"live", 590}});
  Close();
  REQUIRE(Open().ok());  // durably
  CHECK(w->holds() == std::vector<Hold>{{"live", 590}});
}

TEST_CASE_FIXTURE(PolicyFixture, "a hold's lag is the whole segments from its own to the end") {
  REQUIRE(Open().ok());
  REQUIRE(WriteN(600, 1000).ok());
  CHECK(w->HoldLagBytes(600) == kSeg);  // only the segment being written
  CHECK(w->HoldLagBytes(0) == w->segment_count() * kSeg);
  CHECK(w->HoldLagBytes(UINT64_MAX) == kSeg);  // no wrap past the end
}

TEST_CASE_FIXTURE(PolicyFixture, "retain_age releases the segments whose records are all older, by record time") {
  opts.retain_age_ns = 100 * kSec;
  REQUIRE(Open().ok());
  REQUIRE(WriteN(600, 1000).ok());
  // "Now" is 100 s after seq 300 was stamped: seqs up to 300 are older.
  REQUIRE(w->ApplyRetention(TimeOf(300) + 100 * kSec, &dropped).ok());
  const uint64_t first = w->first_seq();
  CHECK(first <= 301);      // nothing younger went
  CHECK(first > 300 - 70);  // every segment wholly older did (a segment is ~60 records)
  const auto after = ReadAll(first);
  CHECK(after.front().seq == first);
  CHECK(after.back().seq == 600);
}

TEST_CASE_FIXTURE(PolicyFixture, "retain_age never releases past a hold, nor the segment being written") {
  opts.retain_age_ns = 1 * kSec;
  REQUIRE(Open().ok());
  REQUIRE(WriteN(600, 1000).ok());
  REQUIRE(w->SetHold("backup", 250).ok());
  REQUIRE(w->ApplyRetention(TimeOf(100000), &dropped).ok());
  CHECK(w->first_seq() <= 251);
  CHECK(w->trim_held_by() == "backup");
  REQUIRE(w->ReleaseHold("backup").ok());
  REQUIRE(w->ApplyRetention(TimeOf(100000), &dropped).ok());
  CHECK(w->segment_count() == 1);
  CHECK(ReadAll(w->first_seq()).back().seq == 600);
}

TEST_CASE_FIXTURE(PolicyFixture, "without record times, retain_age goes by the segment file's mtime") {
  opts.retain_age_ns = 3600 * kSec;
  record_flags = kFlagProducer;  // --stamp none: no time in the records
  REQUIRE(Open().ok());
  REQUIRE(WriteN(600, 1000).ok());
  const std::vector<std::string> segs = Segments();
  REQUIRE(segs.size() > 4);
  // The two oldest were last written two hours ago.
  const uint64_t now = TimeOf(0) + 86400 * kSec;
  for (int i = 0; i < 2; ++i) {
    timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>((now - 7200 * kSec) / kSec);
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    REQUIRE(::utimensat(AT_FDCWD, segs[i].c_str(), ts, 0) == 0);
  }
  for (size_t i = 2; i < segs.size(); ++i) {
    timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>((now - 60 * kSec) / kSec);
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    REQUIRE(::utimensat(AT_FDCWD, segs[i].c_str(), ts, 0) == 0);
  }
  REQUIRE(w->ApplyRetention(now, &dropped).ok());
  CHECK(Segments() == std::vector<std::string>(segs.begin() + 2, segs.end()));
}

TEST_CASE_FIXTURE(PolicyFixture, "without a disk budget appends have no limit") {
  REQUIRE(Open().ok());
  CHECK(w->AppendLimit() == UINT64_MAX);
}

TEST_CASE_FIXTURE(PolicyFixture, "appends up to the limit never need a segment past the budget, and use it") {
  opts.max_disk = 5 * kSeg;  // four segments and the spare
  opts.max_record_bytes = EncodedSize(4096, kMaxMetaSize);
  REQUIRE(Open().ok());
  std::mt19937 rng(7);
  uint64_t limit = w->AppendLimit();
  uint64_t seq = 1;
  for (;;) {
    const size_t size = std::uniform_int_distribution<size_t>(0, 4096)(rng);
    if (w->appended_bytes() + EncodedSize(size, kMaxMetaSize) > w->AppendLimit()) break;
    REQUIRE(Write({PayloadFor(seq++, size)}).ok());
    CHECK(w->AppendLimit() >= limit);  // it only grows
    limit = w->AppendLimit();
  }
  CHECK(w->segment_count() == 4);  // the budget less the spare, all of it in use
  // A release gives the room back.
  REQUIRE(w->Trim(seq / 2).ok());
  CHECK(w->segment_count() < 4);
  CHECK(w->AppendLimit() >= limit + kSeg / 2);
}
