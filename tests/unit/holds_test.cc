// Named holds (#15): the wald.holds format, and a LogWriter whose trims stop
// at the lowest hold; holds that survive a reopen and a crash at any step.
// The policy that releases by size and age: retention_policy_test.cc.
#include "storage/holds.h"

#include <doctest/doctest.h>

#include "log_fixture.h"
#include "storage/log_dir.h"

using namespace wald::storage;
using wald::test::LogFixture;

namespace {

struct HoldFixture : LogFixture {
  HoldFixture() {
    opts.segment_size = 64 << 10;  // ~60 records of 1000 bytes a segment
    REQUIRE(Open().ok());
    REQUIRE(WriteN(600, 1000).ok());
  }
};

// 400 records and a hold "follower" at 100; then `op`, once to count its
// mutating operations and once per k crashing after k of them; `check` sees
// the log reopened after a power cut, and whether `op` reported success.
template <typename Op, typename Check>
void CrashAtEveryStep(Op op, Check check) {
  auto setup = [](LogFixture& f) {
    f.opts.segment_size = 64 << 10;
    REQUIRE(f.Open().ok());
    REQUIRE(f.WriteN(400, 1000).ok());
    REQUIRE(f.w->SetHold("follower", 100).ok());
  };
  int64_t ops = 0;
  {
    LogFixture f;
    setup(f);
    const int64_t before = f.fault.ops();
    REQUIRE(op(f));
    ops = f.fault.ops() - before;
  }
  REQUIRE(ops >= 4);  // at least create, write, sync, rename or remove, directory sync
  for (int64_t k = 0; k <= ops; ++k) {
    CAPTURE(k);
    LogFixture f;
    setup(f);
    f.fault.CrashAfterOps(k);
    const bool acked = op(f);
    f.Close();
    REQUIRE(f.fault.DropUnsyncedData().ok());
    REQUIRE(f.Open().ok());
    check(f, acked);
  }
}

}  // namespace

TEST_CASE("holds round-trip through their encoding") {
  const std::vector<Hold> holds = {{"follower", 100}, {"backup@host:1", 0}, {std::string(64, 'x'), UINT64_MAX}};
  std::vector<Hold> back;
  CHECK(DecodeHolds(EncodeHolds(holds), &back) == "");
  CHECK(back == holds);
  CHECK(DecodeHolds(EncodeHolds({}), &back) == "");
  CHECK(back.empty());
}

TEST_CASE("a damaged or cut holds file is refused, never half read") {
  const std::vector<std::byte> good = EncodeHolds({{"a", 1}, {"b", 2}});
  std::vector<Hold> out;
  for (size_t i = 0; i < good.size(); ++i) {
    CAPTURE(i);
    std::vector<std::byte> bad = good;
    bad[i] ^= std::byte{0x20};
    CHECK(DecodeHolds(bad, &out) != "");
    CHECK(DecodeHolds(std::span(good).first(i), &out) != "");
  }
}

TEST_CASE("hold names: short, printable, no spaces or slashes") {
  CHECK(CheckHoldName("wal-ship.main") == "");
  CHECK(CheckHoldName("backup@db1:5432") == "");
  CHECK(CheckHoldName("") != "");
  CHECK(CheckHoldName(std::string(65, 'a')) != "");
  CHECK(CheckHoldName("a b") != "");
  CHECK(CheckHoldName("../x") != "");
  CHECK(CheckHoldName(std::string("a\0b", 3)) != "");
}

TEST_CASE_FIXTURE(HoldFixture, "a trim stops at the lowest hold and says which") {
  REQUIRE(w->SetHold("follower", 100).ok());
  REQUIRE(w->SetHold("backup", 400).ok());
  REQUIRE(w->Trim(550).ok());
  CHECK(w->first_seq() <= 101);
  CHECK(w->first_seq() > 1);  // the segments wholly at or below 100 went
  CHECK(w->trim_held_by() == "follower");
  CHECK(ReadAll(101).front().seq == 101);
}

TEST_CASE_FIXTURE(HoldFixture, "a trim below every hold names none") {
  REQUIRE(w->SetHold("follower", 500).ok());
  REQUIRE(w->Trim(200).ok());
  CHECK(w->trim_held_by() == "");
  CHECK(w->first_seq() <= 201);
}

TEST_CASE_FIXTURE(HoldFixture, "advancing or releasing the hold lets the next trim through") {
  REQUIRE(w->SetHold("follower", 100).ok());
  REQUIRE(w->Trim(550).ok());
  const uint64_t held = w->first_seq();
  REQUIRE(w->SetHold("follower", 300).ok());
  REQUIRE(w->Trim(550).ok());
  CHECK(w->first_seq() > held);
  CHECK(w->first_seq() <= 301);
  REQUIRE(w->ReleaseHold("follower").ok());
  REQUIRE(w->Trim(550).ok());
  CHECK(w->first_seq() > 301);
  CHECK(w->trim_held_by() == "");
}

TEST_CASE_FIXTURE(HoldFixture, "holds survive a reopen") {
  REQUIRE(w->SetHold("follower", 100).ok());
  REQUIRE(w->SetHold("backup", 250).ok());
  REQUIRE(w->ReleaseHold("backup").ok());
  Close();
  REQUIRE(Open().ok());
  CHECK(w->holds() == std::vector<Hold>{{"follower", 100}});
  REQUIRE(w->Trim(600).ok());
  CHECK(w->first_seq() <= 101);
}

TEST_CASE_FIXTURE(HoldFixture, "a hold below the trim point is refused, one past the durable seq is clamped") {
  REQUIRE(w->Trim(300).ok());
  const uint64_t first = w->first_seq();
  Status st = w->SetHold("late", first - 2);
  CHECK(st.code() == Code::kNotFound);
  CHECK(st.message().find("first seq held is " + std::to_string(first)) != std::string::npos);
  CHECK(w->SetHold("late", first - 1).ok());  // needs exactly what is left
  REQUIRE(w->SetHold("ahead", UINT64_MAX).ok());
  CHECK(w->holds().back() == Hold{"ahead", 600});
  CHECK(w->failure().ok());
}

TEST_CASE_FIXTURE(HoldFixture, "bad names and unknown holds are refused and change nothing") {
  CHECK(w->SetHold("no spaces", 1).code() == Code::kInvalidArgument);
  CHECK(w->ReleaseHold("nobody").code() == Code::kNotFound);
  CHECK(w->holds().empty());
  CHECK(w->failure().ok());
}

TEST_CASE_FIXTURE(HoldFixture, "a damaged wald.holds stops the open with its name, not a silent empty set") {
  REQUIRE(w->SetHold("follower", 100).ok());
  Close();
  FlipByte(dir + "/wald.holds", 20);
  Status st = Open();
  CHECK(st.code() == Code::kCorruption);
  CHECK(st.message().find("wald.holds") != std::string::npos);
}

TEST_CASE("a crash at any step of a hold update leaves the old hold or the new one") {
  CrashAtEveryStep([](LogFixture& f) { return f.w->SetHold("follower", 300).ok(); },
                   [](LogFixture& f, bool acked) {
                     REQUIRE(f.w->holds().size() == 1);
                     const uint64_t seq = f.w->holds().front().seq;
                     CHECK((seq == 100 || seq == 300));
                     if (acked) CHECK(seq == 300);  // what was answered is what a restart finds
                     REQUIRE(f.w->Trim(400).ok());
                     CHECK(f.w->first_seq() <= seq + 1);
                   });
}

TEST_CASE("a crash at any step of a trim under a hold never releases past the hold") {
  CrashAtEveryStep([](LogFixture& f) { return f.w->Trim(400).ok(); },
                   [](LogFixture& f, bool) {
                     CHECK(f.w->first_seq() <= 101);
                     auto recs = f.ReadAll(f.w->first_seq());
                     REQUIRE(!recs.empty());
                     CHECK(recs.back().seq == 400);
                   });
}
