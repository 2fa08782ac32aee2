// The durability rule (FORMAT.md): damage to a record the log proves durable
// refuses to open, whatever byte of it is hit and however the writer stopped;
// a real torn tail still recovers quietly; nothing recovery cuts is destroyed;
// a salvage never hands out a seq that may have been acked.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "log_fixture.h"
#include "storage/format.h"

using namespace wald::storage;
using wald::test::LogFixture;
using wald::test::PayloadFor;
using wald::test::ReadRecord;
using Kind = Reporter::Kind;

namespace {

constexpr uint64_t kRecords = 300;
constexpr size_t kSize = 101;  // 16 + 28 + 101 = 145: every record has padding

// Byte offsets, within a record that opens a batch (so it carries every
// metadata field), of each class of position.
struct Position {
  const char* name;
  uint64_t offset;
};
constexpr Position kPositions[] = {
    {"length word", 1}, {"crc", 5},           {"seq", 9},           {"durable stamp", 16 + 2},
    {"time", 24 + 3},   {"producer", 32 + 5}, {"payload", 44 + 50}, {"padding", 149},
};

enum class Stop { kClean, kKill };

// Writes kRecords in batches of 16 and stops the writer as asked. Returns the
// records as written.
std::vector<ReadRecord> Fill(LogFixture& f, Stop stop) {
  REQUIRE(f.Open().ok());
  REQUIRE(f.WriteN(kRecords, kSize).ok());
  if (stop == Stop::kClean) {
    REQUIRE(f.CleanClose().ok());
  } else {
    f.Close();
  }
  return f.ReadAll();
}

// A record a third of the way in that opens a batch.
ReadRecord Victim(const std::vector<ReadRecord>& recs) {
  const ReadRecord& r = recs[16 * 6];
  REQUIRE(r.meta.flags == (kFlagDurable | kFlagTime | kFlagProducer));
  return r;
}

// The first record stored in `segment`.
const ReadRecord* FirstIn(const std::vector<ReadRecord>& recs, const std::string& segment) {
  for (const auto& r : recs) {
    if (r.segment == segment) return &r;
  }
  FAIL("no record in " << segment);
  return nullptr;
}

}  // namespace

TEST_CASE("damage at every position of a durable record refuses to open, after a clean stop or a kill") {
  for (Stop stop : {Stop::kClean, Stop::kKill}) {
    for (const Position& pos : kPositions) {
      CAPTURE(pos.name);
      CAPTURE(stop == Stop::kClean ? "clean stop" : "kill");
      LogFixture f;
      f.opts.segment_size = 16 << 20;  // one segment: the newest
      const auto recs = Fill(f, stop);
      const ReadRecord v = Victim(recs);
      f.FlipByte(v.segment, v.offset + pos.offset);
      Status st = f.Open();
      REQUIRE(st.code() == Code::kCorruption);
      CHECK(st.message().find(v.segment + " offset " + std::to_string(v.offset)) != std::string::npos);
      CHECK(st.message().find("seqs " + std::to_string(v.seq) + ".." + std::to_string(kRecords)) != std::string::npos);
      CHECK(st.message().find("--salvage") != std::string::npos);
      CHECK(f.SideFiles().empty());                 // a refusal changes nothing
      CHECK(f.Open().code() == Code::kCorruption);  // and says so again
    }
  }
}

TEST_CASE_FIXTURE(LogFixture, "damage to the newest segment's header is refused when its records were durable") {
  opts.segment_size = 16 << 10;
  const auto recs = Fill(*this, Stop::kKill);
  const auto segs = Segments();
  REQUIRE(segs.size() > 2);
  FlipByte(segs.back(), 20);  // the log id
  Status st = Open();
  REQUIRE(st.code() == Code::kCorruption);
  CHECK(st.message().find(segs.back() + " offset 0: bad segment header") != std::string::npos);
  CHECK(st.message().find("the header was durable") != std::string::npos);
}

TEST_CASE_FIXTURE(LogFixture, "the clean-stop marker proves the last batch durable too") {
  opts.segment_size = 16 << 20;
  const auto recs = Fill(*this, Stop::kClean);
  const ReadRecord& last = recs.back();  // nothing was written after it
  FlipByte(last.segment, last.offset + 60);
  CHECK(Open().code() == Code::kCorruption);
}

TEST_CASE_FIXTURE(LogFixture, "without a clean stop, damage in the last batch is a torn write: cut, and kept aside") {
  opts.segment_size = 16 << 20;
  const auto recs = Fill(*this, Stop::kKill);
  const ReadRecord& v = recs[kRecords - 3];  // in the last batch: nothing proves it durable
  FlipByte(v.segment, v.offset + 60);
  REQUIRE(Open().ok());
  CHECK(w->next_seq() == v.seq);
  CHECK(reporter.Count(Kind::kTornTail) == 1);
  CHECK(reporter.Count(Kind::kDamage) == 0);
  const auto side = SideFiles();
  REQUIRE(side.size() == 1);
  CHECK(side[0] == v.segment + "." + std::to_string(v.offset) + ".broken");
  CHECK(std::filesystem::file_size(side[0]) == 3 * EncodedSize(kSize, MetaSize(kFlagTime | kFlagProducer)));
}

TEST_CASE_FIXTURE(LogFixture, "a record lost entirely below the durable floor is damage") {
  opts.segment_size = 16 << 20;
  const auto recs = Fill(*this, Stop::kClean);
  const ReadRecord& last = recs.back();
  ZeroBytes(last.segment, last.offset, 200);  // as if truncated away
  Status st = Open();
  REQUIRE(st.code() == Code::kCorruption);
  CHECK(st.message().find("wald.meta records every seq up to " + std::to_string(kRecords)) != std::string::npos);
}

TEST_CASE("a power cut (unsynced data dropped) still recovers quietly to the last sync") {
  LogFixture f;
  f.opts.segment_size = 16 << 20;
  REQUIRE(f.Open().ok());
  REQUIRE(f.WriteN(100, kSize).ok());
  REQUIRE(f.Write({PayloadFor(101, kSize), PayloadFor(102, kSize)}, /*sync=*/false).ok());
  f.Close();
  REQUIRE(f.fault.DropUnsyncedData().ok());
  REQUIRE(f.Open().ok());
  CHECK(f.w->next_seq() == 101);
  CHECK(f.reporter.Count(Kind::kDamage) == 0);
}

TEST_CASE_FIXTURE(LogFixture, "damage in a sealed segment: refused by a full verify, never cut by a fast open") {
  opts.segment_size = 16 << 10;
  const auto recs = Fill(*this, Stop::kKill);
  const auto segs = Segments();
  REQUIRE(segs.size() > 2);
  const ReadRecord* v = FirstIn(recs, segs[1]);
  FlipByte(v->segment, v->offset + 30);
  opts.recovery.verify = VerifyMode::kAll;
  Status st = Open();
  REQUIRE(st.code() == Code::kCorruption);
  CHECK(st.message().find(segs[1] + " offset " + std::to_string(v->offset)) != std::string::npos);
  opts.recovery.verify = VerifyMode::kLastSegment;
  REQUIRE(Open().ok());
  CHECK(w->next_seq() == kRecords + 1);  // started with every record, none cut
}

TEST_CASE_FIXTURE(LogFixture, "salvage in a sealed segment sets later segments aside and continues above them") {
  opts.segment_size = 16 << 10;
  const auto recs = Fill(*this, Stop::kKill);
  const auto segs = Segments();
  const ReadRecord* v = FirstIn(recs, segs[1]);
  FlipByte(v->segment, v->offset + 30);
  opts.recovery.verify = VerifyMode::kAll;
  opts.recovery.salvage = true;
  REQUIRE(Open().ok());
  CHECK(w->next_seq() == kRecords + 1);
  REQUIRE(Write({"after"}).ok());
  Close();
  opts.recovery.salvage = false;
  REQUIRE(Open().ok());  // the salvaged log opens as it is, with its gap
  const auto after = ReadAll();
  CHECK(after.size() == v->seq);  // seqs 1..v-1 and the new one
  CHECK(after.back().seq == kRecords + 1);
  REQUIRE(gaps.size() == 1);
  CHECK(gaps[0].first == v->seq);
  CHECK(gaps[0].second == kRecords);
  CHECK(SideFiles().size() == segs.size() - 1);  // the later segments whole, and the cut bytes
}

TEST_CASE_FIXTURE(LogFixture, "a crash right after a salvage still never reuses a retired seq") {
  opts.segment_size = 16 << 20;
  const auto recs = Fill(*this, Stop::kClean);
  const ReadRecord v = Victim(recs);
  FlipByte(v.segment, v.offset + 9);
  opts.recovery.salvage = true;
  REQUIRE(Open().ok());
  Close();  // before anything is written above the gap
  opts.recovery.salvage = false;
  REQUIRE(Open().ok());
  CHECK(w->next_seq() == kRecords + 1);
}

TEST_CASE_FIXTURE(LogFixture, "VerifyLog applies the same rule and lists the side files") {
  opts.segment_size = 16 << 20;
  const auto recs = Fill(*this, Stop::kClean);
  auto ok = VerifyLog(env, dir);
  REQUIRE(ok.ok());
  CHECK(ok->proven_durable == kRecords);
  const ReadRecord v = Victim(recs);
  FlipByte(v.segment, v.offset + 9);
  auto bad = VerifyLog(env, dir);
  REQUIRE(bad.status().code() == Code::kCorruption);
  CHECK(bad.status().message().find(v.segment + " offset " + std::to_string(v.offset)) != std::string::npos);
}

TEST_CASE_FIXTURE(LogFixture, "a newer segment whose roll did not complete proves the previous one synced in full") {
  opts.segment_size = 16 << 10;
  const auto recs = Fill(*this, Stop::kKill);
  const auto segs = Segments();
  REQUIRE(segs.size() > 2);
  ZeroBytes(segs.back(), 0, 16 << 10);  // the newest roll never became durable
  const ReadRecord* last_of_prev = nullptr;
  for (const auto& r : recs) {
    if (r.segment == segs[segs.size() - 2]) last_of_prev = &r;
  }
  REQUIRE(last_of_prev != nullptr);
  FlipByte(last_of_prev->segment, last_of_prev->offset + 60);  // nothing later in its segment stamps it
  Status st = Open();
  REQUIRE(st.code() == Code::kCorruption);
  CHECK(st.message().find("its roll did not complete") != std::string::npos);
  CHECK(st.message().find(last_of_prev->segment + " offset " + std::to_string(last_of_prev->offset)) !=
        std::string::npos);
}

TEST_CASE_FIXTURE(LogFixture, "a salvage that sets aside the only segment leaves a log that opens again") {
  const auto recs = Fill(*this, Stop::kClean);  // one segment
  REQUIRE(Segments().size() == 1);
  FlipByte(Segments()[0], 20);  // its header
  REQUIRE(Open().code() == Code::kCorruption);
  opts.recovery.salvage = true;
  Status st = Open();
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  const uint64_t next = w->next_seq();
  CHECK(next > kRecords);
  REQUIRE(Write({"after"}).ok());
  Close();
  opts.recovery.salvage = false;
  st = Open();
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(w->next_seq() == next + 1);
  CHECK(ReadAll(next).size() == 1);
}
