// Logs from before format version 5 (3 and 4): they open, and are upgraded
// to version 5 (a salt key in wald.meta, new records in a salted segment),
// and a crash during an upgrading salvage leaves no version-5 meta without a
// salt key.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "log_fixture.h"
#include "storage/crc32c.h"
#include "storage/format.h"

using namespace wald::storage;
using wald::test::CountOps;
using wald::test::LogFixture;
using wald::test::PayloadFor;
using wald::test::Populate;

namespace {

// Makes the log in `f.dir` (closed) the one a daemon of format `version`
// (3 or 4) would have left: records without a salt, and the meta and the
// segment headers saying `version` (checksums recomputed).
void MakeLegacy(LogFixture& f, uint32_t version) {
  auto meta = ReadMeta(Env::Posix(), f.dir);
  REQUIRE(meta.ok());
  auto rewrite = [&](const std::string& path) {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    std::vector<std::byte> bytes(std::filesystem::file_size(path));
    file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (path.ends_with(kSegmentSuffix)) {
      SegmentHeader h;
      REQUIRE(DecodeSegmentHeader(bytes, &h).empty());
      const uint32_t salt = SaltOf(h, meta->salt_key);
      size_t off = kSegmentHeaderSize;
      RecordView rec;
      while (DecodeRecord(std::span(bytes).subspan(off), &rec, salt) == DecodeStatus::kOk) {
        SaltRecords(std::span(bytes).subspan(off, rec.encoded_size), salt);
        off += rec.encoded_size;
      }
    } else {
      std::memset(bytes.data() + 56, 0, 4);  // no salt key
    }
    std::memcpy(bytes.data() + 8, &version, 4);
    const uint32_t crc = crc32c::Mask(crc32c::Value(bytes.data(), 60));
    std::memcpy(bytes.data() + 60, &crc, 4);
    file.seekp(0);
    file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  };
  rewrite(f.dir + "/" + std::string(kMetaFileName));
  for (const std::string& s : f.Segments()) rewrite(s);
}

uint32_t VersionOf(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char head[12];
  f.read(head, sizeof head);
  uint32_t v;
  std::memcpy(&v, head + 8, 4);
  return v;
}

}  // namespace

TEST_CASE_FIXTURE(LogFixture,
                  "a version-3 log opens: wald.meta becomes version 5, new records go to a salted segment") {
  Populate(*this, 20, 100);
  const std::vector<std::string> old_segments = Segments();
  MakeLegacy(*this, 3);
  REQUIRE(Open().ok());
  const std::string meta = dir + "/" + std::string(kMetaFileName);
  CHECK(VersionOf(meta) == 5);
  CHECK(w->next_seq() == 21);
  // The old records stay as they are; the next ones go to a new segment.
  REQUIRE(Segments().size() == old_segments.size() + 1);
  CHECK(VersionOf(Segments().back()) == 5);
  REQUIRE(Write({PayloadFor(21, 100)}).ok());
  Close();
  auto recs = ReadAll();
  REQUIRE(recs.size() == 21);
  CHECK(recs[19].payload == PayloadFor(20, 100));
  CHECK(recs[20].payload == PayloadFor(21, 100));
  CHECK(recs[20].segment == Segments().back());
  CHECK(VerifyLog(Env::Posix(), dir).ok());
}

TEST_CASE("a crash while a salvage upgrades a version-4 log never leaves a version-5 meta without a salt key") {
  // A damaged version-4 log, opened with --salvage by this version: the
  // salvage rewrites wald.meta (as version 5) before the writer would.
  auto setup = [](LogFixture& f) {
    f.opts.segment_size = 16 << 20;  // one segment: the newest is the one verified
    Populate(f, 300, 1000);
    const auto victim = f.ReadAll()[9];
    MakeLegacy(f, 4);
    f.FlipByte(victim.segment, victim.offset + 30);
    f.opts.recovery.salvage = true;
  };
  const int64_t open_ops = CountOps(setup, [](LogFixture& f) { return f.Open(); });
  REQUIRE(open_ops >= 4);
  for (int64_t k = 0; k <= open_ops; ++k) {
    CAPTURE(k);
    LogFixture f;
    setup(f);
    f.fault.CrashAfterOps(k);
    (void)f.Open();
    f.Close();
    REQUIRE(f.fault.DropUnsyncedData().ok());
    auto meta = ReadMeta(Env::Posix(), f.dir);
    REQUIRE(meta.ok());
    if (meta->version >= kFirstSaltedVersion) CHECK(meta->salt_key != 0);
    REQUIRE(f.Open().ok());
  }
}
