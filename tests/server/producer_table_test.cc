// ProducerTable: de-duplication, gaps, regressions, expiry, eviction, and
// the rebuild from a log.
#include "server/producer_table.h"

#include <doctest/doctest.h>

#include <span>
#include <string>
#include <vector>

#include "../unit/log_fixture.h"
#include "storage/log_writer.h"

using namespace wald;
using server::ProducerTable;
using Verdict = ProducerTable::Verdict;

namespace {

constexpr uint64_t kP = 0xabcdef;
constexpr uint64_t kQ = 0x123456;

ProducerTable::Limits Limits(uint64_t window = 1000, uint32_t depth = 16, size_t max_producers = 100) {
  return {window, depth, max_producers};
}

}  // namespace

TEST_CASE("producers: an unknown producer may start at any producer seq") {
  ProducerTable t(Limits());
  CHECK(t.Classify(kP, 1, 1, 1).verdict == Verdict::kNew);
  CHECK(t.Classify(kP, 77, 1, 1).verdict == Verdict::kNew);
  CHECK(t.Last(kP, 1) == 0);
}

TEST_CASE("producers: the next producer seq is new, a resent one is answered with its first seq") {
  ProducerTable t(Limits());
  t.Note(kP, 1, 10, 1);
  t.Note(kQ, 1, 11, 1);
  t.Note(kP, 2, 12, 1);
  CHECK(t.Last(kP, 13) == 2);
  CHECK(t.Classify(kP, 3, 1, 13).verdict == Verdict::kNew);
  const auto dup = t.Classify(kP, 1, 1, 13);
  CHECK(dup.verdict == Verdict::kDuplicate);
  CHECK(dup.seq == 10);
  CHECK(t.Classify(kP, 2, 1, 13).seq == 12);
  CHECK(t.Classify(kQ, 1, 1, 13).seq == 11);
}

TEST_CASE("producers: a producer seq past the next one is a gap") {
  ProducerTable t(Limits());
  t.Note(kP, 1, 1, 1);
  const auto c = t.Classify(kP, 3, 1, 2);
  CHECK(c.verdict == Verdict::kGap);
  CHECK(c.last == 1);
}

TEST_CASE("producers: a resent append older than the depth is stale") {
  ProducerTable t(Limits(1000, 16));
  for (uint64_t i = 1; i <= 40; ++i) t.Note(kP, i, i, 1);
  CHECK(t.Classify(kP, 40 - 15, 1, 41).verdict == Verdict::kDuplicate);
  CHECK(t.Classify(kP, 40 - 15, 1, 41).seq == 25);
  CHECK(t.Classify(kP, 40 - 16 - 1, 1, 41).verdict == Verdict::kStale);
  CHECK(t.Classify(kP, 1, 1, 41).verdict == Verdict::kStale);
}

TEST_CASE("producers: a batch is a duplicate only whole and dense") {
  ProducerTable t(Limits());
  t.Note(kP, 1, 100, 4);  // producer seqs 1-4 at 100-103
  t.Note(kQ, 1, 104, 1);
  t.Note(kP, 5, 105, 1);
  const auto whole = t.Classify(kP, 1, 4, 106);
  CHECK(whole.verdict == Verdict::kDuplicate);
  CHECK(whole.seq == 100);
  CHECK(t.Classify(kP, 2, 2, 106).seq == 101);
  CHECK(t.Classify(kP, 4, 2, 106).verdict == Verdict::kStale);  // 103, 105: not one range
  CHECK(t.Classify(kP, 5, 2, 106).verdict == Verdict::kStale);  // 6 is not in the log
}

TEST_CASE("producers: a producer idle past the window is forgotten, and so is an old record") {
  ProducerTable t(Limits(100));
  t.Note(kP, 1, 1, 1);
  t.Note(kP, 2, 50, 1);
  CHECK(t.Last(kP, 150) == 2);
  CHECK(t.Classify(kP, 1, 1, 150).verdict == Verdict::kStale);  // seq 1 is out of the window
  CHECK(t.Classify(kP, 2, 1, 150).verdict == Verdict::kDuplicate);
  CHECK(t.Last(kP, 151) == 0);
  CHECK(t.Classify(kP, 9, 1, 151).verdict == Verdict::kNew);
  t.Note(kQ, 1, 400, 1);  // sweeps kP
  CHECK(t.size() == 1);
}

TEST_CASE("producers: beyond max_producers the one idle longest is forgotten") {
  ProducerTable t(Limits(1000, 16, 2));
  t.Note(kP, 1, 1, 1);
  t.Note(kQ, 1, 2, 1);
  t.Note(kP, 2, 3, 1);
  t.Note(7, 1, 4, 1);
  CHECK(t.size() == 2);
  CHECK(t.evicted() == 1);
  CHECK(t.Last(kQ, 5) == 0);
  CHECK(t.Last(kP, 5) == 2);
}

TEST_CASE("producers: a producer that starts afresh, far past its last, drops what was known") {
  ProducerTable t(Limits(1000, 16));
  t.Note(kP, 1, 1, 3);
  t.Note(kP, 100, 4, 1);  // more than the depth past it: a new run of numbers
  CHECK(t.Last(kP, 5) == 100);
  CHECK(t.Classify(kP, 2, 1, 5).verdict == Verdict::kStale);
  CHECK(t.Classify(kP, 100, 1, 5).seq == 4);
}

TEST_CASE("producers: memory follows the window, not the history") {
  // A ring grows to the depth and shrinks back when the window drops what
  // it held: answers stay right across both.
  ProducerTable t(Limits(64, 1024));
  uint64_t seq = 1;
  for (uint64_t i = 1; i <= 3000; ++i) {
    t.Note(kP, i, seq, 1);
    seq += (i % 7 == 0) ? 5 : 1;  // other producers' records in between
  }
  const uint64_t next = seq;
  const auto last = t.Classify(kP, 3000, 1, next);
  REQUIRE(last.verdict == Verdict::kDuplicate);
  CHECK(last.seq == next - 1);
  CHECK(t.Classify(kP, 2999, 1, next).seq == next - 2);
  CHECK(t.Classify(kP, 2000, 1, next).verdict == Verdict::kStale);  // long out of the window
}

TEST_CASE("producers: the table rebuilt from a log answers as the one that wrote it") {
  test::TempDir tmp;
  const std::string dir = tmp.path() + "/log";
  uint64_t next = 0;
  {
    auto w = storage::LogWriter::Open(storage::Env::Posix(), dir, {});
    REQUIRE(w.ok());
    auto append = [&](uint64_t id, uint64_t pseq) {
      storage::RecordMeta m;
      if (id != 0) {
        m.flags = storage::kFlagProducerSeq;
        m.producer_id = id;
        m.producer_seq = pseq;
      }
      const auto payload = std::as_bytes(std::span(std::string_view("x")));
      std::vector<std::byte> buf(storage::EncodedSize(payload.size(), storage::MetaSize(m.flags)));
      const uint64_t seq = (*w)->next_seq();
      storage::EncodeRecord(seq, m, payload, buf.data());
      const storage::EncodedChunk chunk{buf, seq, seq};
      REQUIRE((*w)->Append({&chunk, 1}).ok());
    };
    append(kP, 1);  // seq 1
    append(0, 0);   // 2: a plain record
    append(kQ, 5);  // 3
    append(kP, 2);  // 4
    append(kQ, 6);  // 5
    REQUIRE((*w)->Sync().ok());
    next = (*w)->next_seq();
  }
  REQUIRE(next == 6);
  ProducerTable t(Limits(4));  // the window reaches back to seq 2
  auto n = server::RebuildProducers(storage::Env::Posix(), dir, next, &t);
  REQUIRE(n.ok());
  CHECK(*n == 4);
  CHECK(t.Last(kP, next) == 2);
  CHECK(t.Last(kQ, next) == 6);
  CHECK(t.Classify(kP, 2, 1, next).seq == 4);
  CHECK(t.Classify(kP, 1, 1, next).verdict == Verdict::kStale);  // seq 1 is before the window
  CHECK(t.Classify(kQ, 5, 1, next).seq == 3);
  CHECK(t.Classify(kQ, 7, 1, next).verdict == Verdict::kNew);
}

TEST_CASE("producers: a refused number is used: the next is new, a repeat of it is stale") {
  ProducerTable t(Limits());
  t.Note(kP, 1, 10, 1);
  t.Refuse(kP, 2, 2, 11);  // producer seqs 2 and 3: nothing appended
  CHECK(t.Last(kP, 11) == 3);
  CHECK(t.Classify(kP, 4, 1, 11).verdict == Verdict::kNew);
  CHECK(t.Classify(kP, 3, 1, 11).verdict == Verdict::kStale);
  CHECK(t.Classify(kP, 1, 1, 11).seq == 10);
  t.Note(kP, 4, 11, 1);
  CHECK(t.Classify(kP, 4, 1, 12).seq == 11);
  t.Refuse(kQ, 1, 1, 12);  // unknown: stays unknown
  CHECK(t.Last(kQ, 12) == 0);
}

TEST_CASE("producers: a number the log skips (a refusal, at the rebuild) keeps what came before it") {
  ProducerTable t(Limits());
  t.Note(kP, 1, 10, 1);
  t.Note(kP, 2, 11, 1);
  t.Note(kP, 4, 12, 1);  // 3 was refused: no record
  CHECK(t.Last(kP, 13) == 4);
  CHECK(t.Classify(kP, 1, 1, 13).seq == 10);
  CHECK(t.Classify(kP, 2, 1, 13).seq == 11);
  CHECK(t.Classify(kP, 3, 1, 13).verdict == Verdict::kStale);
  CHECK(t.Classify(kP, 4, 1, 13).seq == 12);
}
