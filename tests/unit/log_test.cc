// The segment log: round trips, recovery from every shape of damage, power
// loss at every step, I/O faults, locking, concurrent reading, trim. Logs
// from before format version 5: version_test.cc.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "log_fixture.h"
#include "storage/format.h"

using namespace wald::storage;
using wald::test::CountOps;
using wald::test::LogFixture;
using wald::test::PayloadFor;
using wald::test::Populate;
using Kind = Reporter::Kind;

namespace {

uint64_t EnvCount(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : dflt;
}

}  // namespace

TEST_CASE_FIXTURE(LogFixture, "100k records of random sizes round-trip across segment rolls") {
  const uint64_t n = EnvCount("WALD_TEST_ROUNDTRIP_RECORDS", 100000);
  opts.segment_size = 8 << 20;
  opts.prepare_in_background = true;
  REQUIRE(Open().ok());
  std::mt19937_64 rng(7);
  std::vector<size_t> sizes(n);
  for (auto& s : sizes) s = static_cast<size_t>(std::exp2(std::uniform_real_distribution<double>(0, 16)(rng))) - 1;
  std::vector<std::string> batch;
  for (uint64_t seq = 1; seq <= n;) {
    batch.clear();
    for (int j = 0; j < 64 && seq <= n; ++j, ++seq) batch.push_back(PayloadFor(seq, sizes[seq - 1]));
    REQUIRE(Write(batch).ok());
  }
  CHECK(w->durable_seq() == n);
  CHECK(w->segment_count() > 3);
  Close();
  REQUIRE(Open().ok());  // recovery keeps everything
  CHECK(w->next_seq() == n + 1);
  auto recs = ReadAll();
  REQUIRE(recs.size() == n);
  for (uint64_t i = 0; i < n; ++i) {
    REQUIRE(recs[i].seq == i + 1);
    REQUIRE(recs[i].payload == PayloadFor(i + 1, sizes[i]));
  }
  CHECK(reporter.entries.empty());
}

TEST_CASE_FIXTURE(LogFixture, "a new log gets a random id that survives reopening") {
  REQUIRE(Open().ok());
  LogId id = w->log_id();
  CHECK(id != LogId{});
  CHECK(w->next_seq() == 1);
  CHECK(w->durable_seq() == 0);
  Close();
  REQUIRE(Open().ok());
  CHECK(w->log_id() == id);
  LogFixture other;
  REQUIRE(other.Open().ok());
  CHECK(other.w->log_id() != id);
}

TEST_CASE_FIXTURE(LogFixture, "tail damage of every shape recovers to the last whole record") {
  Populate(*this, 100, 100);
  const auto last = ReadAll().back();
  REQUIRE(last.seq == 100);
  SUBCASE("truncated record") { ZeroBytes(last.segment, last.offset + 40, 80); }
  SUBCASE("bad checksum in the last record") { FlipByte(last.segment, last.offset + 50); }
  SUBCASE("half-written header") { ZeroBytes(last.segment, last.offset + 4, 12); }
  SUBCASE("only the length word written") { ZeroBytes(last.segment, last.offset + 4, 120); }
  REQUIRE(Open().ok());
  CHECK(w->next_seq() == 100);
  CHECK(reporter.Count(Kind::kTornTail) == 1);
  CHECK(reporter.Count(Kind::kDamage) == 0);
  // The torn bytes were zeroed: a new record 100 replaces the torn one.
  REQUIRE(Write({"new"}).ok());
  Close();
  auto recs = ReadAll();
  REQUIRE(recs.size() == 100);
  CHECK(recs.back().payload == "new");
}

TEST_CASE_FIXTURE(LogFixture, "a zero-filled preallocated tail is the normal end") {
  Populate(*this, 10, 1000);
  REQUIRE(Open().ok());
  CHECK(w->next_seq() == 11);
  CHECK(reporter.entries.empty());
}

TEST_CASE_FIXTURE(LogFixture, "a roll whose new header never became durable is undone") {
  Populate(*this, 200, 1000);  // several 64 KiB segments
  auto segs = Segments();
  REQUIRE(segs.size() > 2);
  auto recs = ReadAll();
  uint64_t first_of_last = 0;
  for (auto& r : recs) {
    if (r.segment == segs.back() && first_of_last == 0) first_of_last = r.seq;
  }
  ZeroBytes(segs.back(), 0, 64 << 10);  // nothing of the newest segment survived
  REQUIRE(Open().ok());
  CHECK(w->next_seq() == first_of_last);
  CHECK(Segments().size() == segs.size() - 1);
  CHECK(reporter.Count(Kind::kTornTail) == 1);
}

TEST_CASE_FIXTURE(LogFixture, "damage before the tail refuses to open and names file and offset") {
  opts.segment_size = 16 << 20;
  Populate(*this, 1500, 4000);  // about 6 MiB: more than one unsynced write
  const auto victim = ReadAll()[9];
  FlipByte(victim.segment, victim.offset + 30);
  Status st = Open();
  REQUIRE(st.code() == Code::kCorruption);
  CHECK(st.message().find(victim.segment + " offset " + std::to_string(victim.offset)) != std::string::npos);
  SUBCASE("salvage cuts the log at the damage, keeps the bytes and never reuses a seq") {
    opts.recovery.salvage = true;
    REQUIRE(Open().ok());
    CHECK(w->next_seq() == 1501);
    CHECK(reporter.Count(Kind::kDamage) == 1);
    CHECK(reporter.Count(Kind::kGap) == 1);
    CHECK(SideFiles().size() == 1);
    REQUIRE(Write({"after"}).ok());
    Close();
    auto recs = ReadAll();
    REQUIRE(recs.size() == victim.seq);
    CHECK(recs.back().seq == 1501);
    REQUIRE(gaps.size() == 1);
    CHECK(gaps[0] == std::pair<uint64_t, uint64_t>{victim.seq, 1500});
  }
}

TEST_CASE_FIXTURE(LogFixture, "damage inside the last unsynced-write window counts as a torn write") {
  Populate(*this, 20, 100);  // batches of 16: the last write held seqs 17..20
  const auto victim = ReadAll()[17];
  ZeroBytes(victim.segment, victim.offset, 16);  // a page that did not make it
  REQUIRE(Open().ok());
  CHECK(w->next_seq() == victim.seq);
  CHECK(reporter.Count(Kind::kTornTail) == 1);
  CHECK(ReadAll().size() == victim.seq - 1);  // the later records were zeroed too
}

TEST_CASE_FIXTURE(LogFixture, "damage in a sealed segment is found by a full verify and by readers") {
  Populate(*this, 300, 1000);
  auto segs = Segments();
  REQUIRE(segs.size() > 3);
  FlipByte(segs[1], kSegmentHeaderSize + 100);
  opts.recovery.verify = VerifyMode::kAll;
  Status st = Open();
  REQUIRE(st.code() == Code::kCorruption);
  CHECK(st.message().find(segs[1] + " offset " + std::to_string(kSegmentHeaderSize)) != std::string::npos);
  const std::string where = segs[1] + " offset";
  CHECK_THROWS_WITH_AS(ReadAll(), doctest::Contains(where.c_str()), std::runtime_error);
  CHECK(reporter.Count(Kind::kDamage) == 1);
}

TEST_CASE_FIXTURE(LogFixture, "a damaged segment header refuses to open") {
  Populate(*this, 300, 1000);
  auto segs = Segments();
  FlipByte(segs[0], 20);
  Status st = Open();
  CHECK(st.code() == Code::kCorruption);
  CHECK(st.message().find(segs[0] + " offset 0: bad segment header") != std::string::npos);
}

TEST_CASE("power loss at every step keeps every durable record and nothing after a gap") {
  // Count the mutating operations of the whole scenario once, then crash
  // after each of them in turn.
  auto scenario = [](LogFixture& f) {
    f.opts.segment_size = 4096;
    Status st = f.Open();
    for (uint64_t i = 0; st.ok() && i < 12; ++i) {
      std::vector<std::string> batch;
      for (uint64_t j = 0; j < 1 + i % 4; ++j) batch.push_back(PayloadFor(f.w->next_seq() + j, 300));
      st = f.Write(batch, i % 3 != 2);  // some batches stay unsynced
    }
    return st;
  };
  int64_t total = 0;
  {
    LogFixture f;
    REQUIRE(scenario(f).ok());
    total = f.fault.ops();
  }
  REQUIRE(total > 30);
  for (int64_t k = 0; k <= total; ++k) {
    CAPTURE(k);
    LogFixture f;
    f.fault.CrashAfterOps(k);
    Status st = scenario(f);
    const uint64_t durable = f.w ? f.w->durable_seq() : 0;
    f.Close();
    REQUIRE(f.fault.DropUnsyncedData().ok());
    if (k == 0 && !std::filesystem::exists(f.dir)) continue;
    REQUIRE(f.Open().ok());
    auto recs = f.ReadAll();
    REQUIRE(recs.size() >= durable);
    for (size_t i = 0; i < recs.size(); ++i) {
      REQUIRE(recs[i].seq == i + 1);
      REQUIRE(recs[i].payload == PayloadFor(i + 1, 300));
    }
    CHECK(f.w->next_seq() == recs.size() + 1);
    // Appending after recovery continues right behind the survivors.
    REQUIRE(f.Write({"after"}).ok());
    f.Close();
    REQUIRE(f.ReadAll().size() == recs.size() + 1);
  }
}

TEST_CASE_FIXTURE(LogFixture, "fdatasync EIO stops the writer for good") {
  REQUIRE(Open().ok());
  REQUIRE(Write({"a", "b"}).ok());
  fault.FailSyncAfter(0, EIO);
  Status st = Write({"c"});
  CHECK(st.code() == Code::kIoError);
  CHECK(st.err() == EIO);
  CHECK(w->durable_seq() == 2);
  fault.FailSyncAfter(-1);  // the disk "recovers": the writer must not
  CHECK(Write({"d"}).code() == Code::kFailed);
  CHECK(w->Sync().code() == Code::kFailed);
  CHECK(w->durable_seq() == 2);
  CHECK(w->failure().message().find("fdatasync") != std::string::npos);
}

TEST_CASE_FIXTURE(LogFixture, "write errors, short writes and ENOSPC while preallocating stop the writer") {
  REQUIRE(Open().ok());
  REQUIRE(Write({"a"}).ok());
  SUBCASE("short write then ENOSPC") {
    fault.FailWriteAfter(0, ENOSPC);
    Status st = Write({std::string(1000, 'x')});
    CHECK(st.err() == ENOSPC);
  }
  SUBCASE("EIO on write") {
    fault.FailWriteAfter(0, EIO);
    CHECK(Write({"b"}).err() == EIO);
  }
  SUBCASE("ENOSPC preparing the next segment") {
    fault.FailAllocate(ENOSPC);
    Status st = WriteN(200, 1000);
    CHECK(st.err() == ENOSPC);
  }
  const uint64_t durable = w->durable_seq();
  CHECK(Write({"more"}).code() == Code::kFailed);
  CHECK(w->durable_seq() == durable);
  Close();
  fault.FailAllocate(0);
  fault.FailWriteAfter(-1);
  REQUIRE(Open().ok());  // a restart recovers cleanly
  CHECK(w->next_seq() >= durable + 1);
  CHECK(ReadAll().size() == w->next_seq() - 1);
}

TEST_CASE_FIXTURE(LogFixture, "a second writer on the same directory is refused, naming the holder") {
  REQUIRE(Open().ok());
  auto second = LogWriter::Open(Env::Posix(), dir, opts);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Code::kBusy);
  CHECK(second.status().message().find("pid " + std::to_string(::getpid())) != std::string::npos);
  Close();
  CHECK(LogWriter::Open(Env::Posix(), dir, opts).ok());  // released on close
}

TEST_CASE_FIXTURE(LogFixture, "directories that are not a log are refused") {
  namespace fs = std::filesystem;
  SUBCASE("a symlink") {
    fs::create_directory(tmp.path() + "/real");
    fs::create_directory_symlink(tmp.path() + "/real", dir);
    CHECK(Open().code() == Code::kNotALog);
  }
  SUBCASE("a directory with other files") {
    fs::create_directory(dir);
    { std::ofstream(dir + "/notes.txt") << "x"; }
    Status st = Open();
    CHECK(st.code() == Code::kNotALog);
    CHECK(st.message().find("notes.txt") != std::string::npos);
  }
  SUBCASE("a file") {
    { std::ofstream(dir) << "x"; }
    CHECK(Open().code() == Code::kNotALog);
  }
  SUBCASE("missing, without create") {
    opts.create_if_missing = false;
    CHECK(Open().code() == Code::kNotFound);
  }
}

TEST_CASE_FIXTURE(LogFixture, "a reader concurrent with a writer sees a prefix that only grows") {
  opts.prepare_in_background = true;
  env = Env::Posix();
  REQUIRE(Open().ok());
  const uint64_t n = 20000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    Status st = WriteN(n, 50, 7);  // about 20 segment rolls
    done = true;
    REQUIRE(st.ok());
  });
  auto r = LogReader::Open(Env::Posix(), dir, 1);
  REQUIRE(r.ok());
  uint64_t expect = 1;
  RecordView rec;
  while (expect <= n) {
    auto step = (*r)->Next(&rec);
    REQUIRE(step != LogReader::Step::kError);
    if (step == LogReader::Step::kEnd) {
      std::this_thread::yield();
      continue;
    }
    REQUIRE(rec.seq == expect);
    REQUIRE(std::string(reinterpret_cast<const char*>(rec.payload.data()), rec.payload.size()) ==
            PayloadFor(expect, 50));
    ++expect;
  }
  writer.join();
  CHECK(done);
  CHECK((*r)->Next(&rec) == LogReader::Step::kEnd);
}

TEST_CASE_FIXTURE(LogFixture, "trim releases only whole segments at or below the seq") {
  REQUIRE(Open().ok());
  REQUIRE(WriteN(600, 1000).ok());
  auto before = Segments();
  REQUIRE(before.size() > 5);
  auto recs = ReadAll();
  // A seq in the middle of the fourth segment: three segments go.
  uint64_t mid = 0, fourth_first = 0;
  for (auto& r : recs) {
    if (r.segment == before[3] && fourth_first == 0) fourth_first = r.seq;
    if (r.segment == before[3]) mid = r.seq - 2;
  }
  REQUIRE(w->Trim(mid).ok());
  CHECK(Segments() == std::vector<std::string>(before.begin() + 3, before.end()));
  CHECK(w->first_seq() == fourth_first);
  CHECK_THROWS_WITH_AS(ReadAll(1), doctest::Contains("trimmed"), std::runtime_error);
  CHECK(ReadAll(fourth_first).size() == 600 - fourth_first + 1);
  REQUIRE(w->Trim(1000000).ok());  // never the segment being written
  CHECK(Segments().size() == 1);
  Close();
  REQUIRE(Open().ok());
  CHECK(w->first_seq() == ReadAll(w->first_seq()).front().seq);
  CHECK(w->next_seq() == 601);
}

// Issue #20: up_to + 1 wrapped to 0, so Trim(2^64-1) released nothing.
TEST_CASE_FIXTURE(LogFixture, "trim at the largest seq releases every sealed segment, no wrap") {
  REQUIRE(Open().ok());
  REQUIRE(WriteN(600, 1000).ok());
  REQUIRE(Segments().size() > 5);
  REQUIRE(w->Trim(UINT64_MAX).ok());
  CHECK(Segments().size() == 1);
  CHECK(ReadAll(w->first_seq()).back().seq == 600);
}

TEST_CASE("a crash at any step of a trim leaves a consistent log") {
  auto setup = [](LogFixture& f) {
    REQUIRE(f.Open().ok());
    REQUIRE(f.WriteN(400, 1000).ok());
  };
  const int64_t trim_ops = CountOps(setup, [](LogFixture& f) { return f.w->Trim(300); });
  REQUIRE(trim_ops >= 4);
  for (int64_t k = 0; k <= trim_ops; ++k) {
    CAPTURE(k);
    LogFixture f;
    setup(f);
    const size_t segs_before = f.Segments().size();
    f.fault.CrashAfterOps(k);
    (void)f.w->Trim(300);
    f.Close();
    REQUIRE(f.fault.DropUnsyncedData().ok());
    REQUIRE(f.Open().ok());
    const uint64_t first = f.w->first_seq();
    auto recs = f.ReadAll(first);
    REQUIRE(!recs.empty());
    CHECK(recs.front().seq == first);
    CHECK(recs.back().seq == 400);
    CHECK(f.Segments().size() <= segs_before);
  }
}

TEST_CASE_FIXTURE(LogFixture, "a fault that drops unsynced data at once keeps exactly what fdatasync covered") {
  fault.DropUnsyncedAtFault();
  REQUIRE(Open().ok());
  REQUIRE(Write({"a", "b"}).ok());
  REQUIRE(Write({"c"}, /*sync=*/false).ok());  // written, in the page cache, never synced
  fault.FailSyncAfter(0, EIO);
  CHECK(w->Sync().err() == EIO);
  Close();
  fault.FailSyncAfter(-1);
  auto recs = ReadAll();
  REQUIRE(recs.size() == 2);  // "c" went with the fault, as it would with the machine
  CHECK(recs.back().payload == "b");
}

TEST_CASE_FIXTURE(LogFixture, "records salted for one segment and written across a roll are re-salted for the next") {
  opts.segment_size = 8 << 10;
  encode_salted = true;  // as the loop encodes them: for the segment being written then
  REQUIRE(Open().ok());
  // Batches of 16 records of 300 bytes (about 5.5 KiB): most cross a roll.
  for (int i = 0; i < 10; ++i) {
    std::vector<std::string> ps;
    for (int j = 0; j < 16; ++j) ps.push_back(PayloadFor(w->next_seq() + j, 300));
    REQUIRE(Write(ps).ok());
  }
  CHECK(Segments().size() >= 5);
  Close();
  const auto recs = ReadAll();
  REQUIRE(recs.size() == 160);
  for (const auto& r : recs) REQUIRE(r.payload == PayloadFor(r.seq, 300));
  CHECK(VerifyLog(Env::Posix(), dir).ok());
}

TEST_CASE_FIXTURE(LogFixture, "records on disk carry their segment's salt, and each segment has its own") {
  opts.segment_size = 8 << 10;
  Populate(*this, 40, 500);
  auto meta = ReadMeta(Env::Posix(), dir);
  REQUIRE(meta.ok());
  const std::vector<std::string> segs = Segments();
  REQUIRE(segs.size() >= 2);
  std::set<uint32_t> salts;
  for (const std::string& path : segs) {
    std::ifstream f(path, std::ios::binary);
    std::vector<std::byte> bytes(std::filesystem::file_size(path));
    f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    SegmentHeader h;
    REQUIRE(DecodeSegmentHeader(bytes, &h).empty());
    const uint32_t salt = SaltOf(h, meta->salt_key);
    CHECK(salt != 0);
    salts.insert(salt);
    RecordView rec;
    const auto first = std::span(bytes).subspan(kSegmentHeaderSize);
    CHECK(DecodeRecord(first, &rec) == DecodeStatus::kBadChecksum);
    REQUIRE(DecodeRecord(first, &rec, salt) == DecodeStatus::kOk);
    CHECK(rec.seq == h.first_seq);
  }
  CHECK(salts.size() == segs.size());
}
