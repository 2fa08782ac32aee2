// Retention on the real daemon (#15): named holds that trims respect, held
// across restarts, and the `wald trim|hold|release|holds` commands.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "wald/client.h"

using namespace wald::test;

namespace {

// 1,200 records of 1000 bytes in 64 KiB segments: about twenty segments.
struct RetentionFixture {
  RetentionFixture() {
    auto c = wald::connect(d.socket());
    REQUIRE(c.ok());
    for (int i = 1; i <= 1200; ++i) {
      REQUIRE(c->append_async(TestPayload(0, i, 1000), [](wald::Result<wald::Seq> r) { REQUIRE(r.ok()); }).ok());
    }
    REQUIRE(c->wait_all(30000).ok());
  }
  wald::Client Connect() {
    auto c = wald::connect(d.socket());
    REQUIRE(c.ok());
    return std::move(c.value());
  }
  // Runs `wald ARGS --socket S`; returns its exit code, output in *out.
  int Wald(std::vector<std::string> args, std::string* out) {
    args.push_back("--socket");
    args.push_back(d.socket());
    return RunWald(args, out);
  }
  TempDir tmp;
  Daemon d{tmp.path(), {"--segment-size", "64KiB", "--max-record", "4KiB"}};
};

}  // namespace

TEST_CASE_FIXTURE(RetentionFixture, "a hold at 100: a trim to 10,000 releases nothing above it, and names it") {
  wald::Client c = Connect();
  REQUIRE(c.hold("follower", 100).value() == 100);
  std::string held_by;
  auto r = c.trim(10'000, &held_by);
  REQUIRE(r.ok());
  CHECK(r.value() <= 100);
  CHECK(held_by == "follower");
  auto from = c.read(
      101, [](wald::Seq, std::span<const std::byte>) { return false; }, 1);
  CHECK(from.ok());  // seq 101 is still there
}

TEST_CASE_FIXTURE(RetentionFixture,
                  "when the hold advances, the next trim releases up to it, released, up to the trim") {
  wald::Client c = Connect();
  REQUIRE(c.hold("follower", 100).ok());
  REQUIRE(c.trim(10'000).ok());
  REQUIRE(c.hold("follower", 700).value() == 700);
  auto r = c.trim(10'000);
  REQUIRE(r.ok());
  CHECK(r.value() > 100);
  CHECK(r.value() <= 700);
  REQUIRE(!c.release_hold("follower"));
  std::string held_by = "?";
  r = c.trim(10'000, &held_by);
  REQUIRE(r.ok());
  CHECK(r.value() > 700);
  CHECK(held_by == "");
}

TEST_CASE_FIXTURE(RetentionFixture, "holds survive a restart and still bound trims") {
  REQUIRE(Connect().hold("backup", 250).ok());
  d.Signal(SIGTERM);
  REQUIRE(d.Wait() == 0);
  d.Restart();
  wald::Client c = Connect();
  auto s = c.stats();
  REQUIRE(s.ok());
  REQUIRE(s.value().holds.size() == 1);
  CHECK(s.value().holds[0].name == "backup");
  CHECK(s.value().holds[0].seq == 250);
  auto r = c.trim(10'000);
  REQUIRE(r.ok());
  CHECK(r.value() <= 250);
}

TEST_CASE_FIXTURE(RetentionFixture, "bad holds are refused and the connection stays") {
  wald::Client c = Connect();
  CHECK(c.hold("no spaces", 1).error().code == wald::ErrorCode::kInvalidArgument);
  CHECK(c.hold(std::string(65, 'a'), 1).error().code == wald::ErrorCode::kInvalidArgument);
  CHECK(c.release_hold("nobody").code == wald::ErrorCode::kNoSuchHold);
  REQUIRE(c.trim(10'000).ok());
  auto late = c.hold("late", 1);
  CHECK(late.error().code == wald::ErrorCode::kTrimmed);
  CHECK(late.error().first_seq > 1);
  CHECK(c.append("still served").ok());
}

TEST_CASE_FIXTURE(RetentionFixture, "wald hold, holds, trim and release against the running daemon") {
  std::string out;
  REQUIRE(Wald({"hold", "follower", "100"}, &out) == 0);
  CHECK(out.find("hold follower at seq 100") != std::string::npos);
  REQUIRE(Wald({"holds", "--json"}, &out) == 0);
  CHECK(out.find(R"({"name":"follower","seq":100,"lag_records":1100,"lag_bytes":)") != std::string::npos);
  // The segments from the one holding seq 101 to the end: ~60 records a
  // segment, 1,200 records.
  const uint64_t lag_bytes = std::stoull(out.substr(out.find("\"lag_bytes\":") + 12));
  CHECK(lag_bytes % (64 << 10) == 0);
  CHECK(lag_bytes >= 16 * (64 << 10));
  CHECK(lag_bytes <= 20 * (64 << 10));
  REQUIRE(Wald({"trim", "10000", "--json"}, &out) == 0);
  CHECK(out.find(R"("held_by":"follower")") != std::string::npos);
  REQUIRE(Wald({"release", "follower"}, &out) == 0);
  REQUIRE(Wald({"trim", "10000"}, &out) == 0);
  CHECK(out.find("released up to seq") != std::string::npos);
  CHECK(out.find("hold") == std::string::npos);
  CHECK(Wald({"release", "follower"}, &out) == 1);
  CHECK(out.find("no hold named follower") != std::string::npos);
  CHECK(Wald({"hold", "a b", "1"}, &out) == 1);
  CHECK(Wald({"trim"}, &out) == 2);  // SEQ is required
}

TEST_CASE("a hold at 100 against a trim to 10,000 and a policy that wants everything, then --max-hold-lag") {
  TempDir tmp;
  // The policy keeps one sealed segment; a hold more than 16 segments behind
  // the end is invalidated.
  Daemon d(tmp.path(),
           {"--segment-size", "64KiB", "--max-record", "4KiB", "--retain-bytes", "64KiB", "--max-hold-lag", "1MiB"});
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  auto fill = [&](int from, int n) {
    for (int i = from; i < from + n; ++i) {
      REQUIRE(c->append_async(TestPayload(0, i, 1000), [](wald::Result<wald::Seq> r) { REQUIRE(r.ok()); }).ok());
    }
    REQUIRE(c->wait_all(30000).ok());
  };
  fill(1, 100);
  REQUIRE(c->hold("follower", 100).value() == 100);
  fill(101, 500);  // about ten segments: the policy has run at every roll
  REQUIRE(c->trim(10'000).ok());
  auto s = c->stats();
  REQUIRE(s.ok());
  CHECK(s.value().first_seq <= 101);  // nothing above the hold was released
  CHECK(c->read(
             101, [](wald::Seq, std::span<const std::byte>) { return false; }, 1)
            .ok());

  // The policy runs on the writer after a roll's acks are out: wait for it.
  auto stats_when = [&](auto pred) {
    for (int i = 0; i < 500; ++i) {
      s = c->stats();
      REQUIRE(s.ok());
      if (pred(s.value())) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return s.value();
  };
  REQUIRE(c->hold("follower", 500).value() == 500);  // the follower moves on
  fill(601, 100);                                    // a roll runs the policy again
  CHECK(stats_when([](const wald::ServerStats& v) { return v.first_seq > 101; }).first_seq <= 501);
  CHECK(s.value().first_seq > 101);

  fill(701, 1200);  // the follower stops; 20 more segments pass it
  stats_when([](const wald::ServerStats& v) { return v.holds.empty(); });
  CHECK(s.value().holds.empty());
  CHECK(s.value().holds_invalidated == 1);
  CHECK(s.value().first_seq > 501);  // and the policy released what it held
  CHECK(d.Log().find("hold follower at seq 500 invalidated") != std::string::npos);
}

// Review finding: the writer kept the highest trim target ever asked for, so
// once a hold moved, a later small Trim released up to the old large one.
TEST_CASE_FIXTURE(RetentionFixture, "a trim held back by a hold is not applied later by a smaller trim") {
  wald::Client c = Connect();
  REQUIRE(c.hold("backup", 500).ok());
  auto r = c.trim(100'000);
  REQUIRE(r.ok());
  const uint64_t first = r.value();
  CHECK(first <= 500);
  REQUIRE(c.hold("backup", 1100).ok());
  r = c.trim(10);
  REQUIRE(r.ok());
  CHECK(r.value() == first);  // trim(10) releases nothing new
  CHECK(c.read(
             first + 1, [](wald::Seq, std::span<const std::byte>) { return false; }, 1)
            .ok());
}

TEST_CASE("retention options below what whole segments can measure exit 2") {
  TempDir tmp;
  std::string out;
  CHECK(RunWald({"--dir", tmp.path() + "/d", "--socket", tmp.path() + "/s", "--segment-size", "1MiB", "--retain-bytes",
                 "512KiB"},
                &out) == 2);
  CHECK(out.find("--retain-bytes") != std::string::npos);
  CHECK(RunWald({"--dir", tmp.path() + "/d", "--socket", tmp.path() + "/s", "--segment-size", "1MiB", "--max-hold-lag",
                 "1MiB"},
                &out) == 2);
  CHECK(out.find("below two segments") != std::string::npos);
  CHECK(RunWald(
            {"--dir", tmp.path() + "/d", "--socket", tmp.path() + "/s", "--segment-size", "1MiB", "--max-disk", "2MiB"},
            &out) == 2);
  CHECK(out.find("below three segments") != std::string::npos);
  CHECK(RunWald({"--dir", tmp.path() + "/d", "--socket", tmp.path() + "/s", "--segment-size", "1MiB", "--max-disk",
                 "4MiB", "--retain-bytes", "2MiB"},
                &out) == 2);
  CHECK(out.find("no room to roll") != std::string::npos);
  CHECK(RunWald({"--dir", tmp.path() + "/d", "--socket", tmp.path() + "/s", "--retain-age", "5 fortnights"}, &out) ==
        2);
  CHECK(out.find("--retain-age") != std::string::npos);
}

TEST_CASE("with --max-disk small and a hold pinned, appends get DiskBudget, after wald release they go on") {
  TempDir tmp;
  // Five segments of budget; the policy keeps one sealed segment, so
  // releasing the hold frees all but that one at once.
  Daemon d(tmp.path(),
           {"--segment-size", "64KiB", "--max-record", "4KiB", "--retain-bytes", "64KiB", "--max-disk", "320KiB"});
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  REQUIRE(c->append(TestPayload(0, 1, 1000)).ok());
  REQUIRE(c->hold("follower", 1).ok());
  int taken = 1;
  wald::Result<wald::Seq> r = wald::Seq{1};
  while (taken < 1000) {
    r = c->append(TestPayload(0, taken + 1, 1000));
    if (!r.ok()) break;
    CHECK(r.value() == static_cast<uint64_t>(taken + 1));
    ++taken;
  }
  REQUIRE(!r.ok());
  CHECK(r.error().code == wald::ErrorCode::kDiskBudget);
  // Four segments of 64 KiB (the fifth is the spare) at 1,048 bytes a
  // record (62 a segment), less up to 4 KiB a roll may waste.
  CHECK(taken >= 230);
  CHECK(taken <= 4 * 62);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(d.data_dir())) {
    const std::string name = e.path().filename();
    if (name.ends_with(".wal") || name.ends_with(".tmp")) ++files;
  }
  CHECK(files <= 5);
  // The connection stays, and so does the daemon: no fail-stop.
  auto s = c->stats();
  REQUIRE(s.ok());
  CHECK(s.value().disk_budget_refusals == 1);  // this one
  CHECK(s.value().durable_seq == static_cast<uint64_t>(taken));
  CHECK(c->append(TestPayload(0, taken + 1, 1000)).error().code == wald::ErrorCode::kDiskBudget);

  std::string out;
  REQUIRE(RunWald({"stats", "--json", "--socket", d.socket()}, &out) == 0);
  CHECK(out.find(R"("disk_budget_refusals":2)") != std::string::npos);
  REQUIRE(RunWald({"release", "follower", "--socket", d.socket()}, &out) == 0);
  auto seq = c->append(TestPayload(0, taken + 1, 1000));
  REQUIRE_MESSAGE(seq.ok(), seq.error().message);
  CHECK(seq.value() == static_cast<uint64_t>(taken + 1));  // no seq was used by a refusal
  CHECK(d.Log().find("append refused: the log is at its disk budget") != std::string::npos);
  CHECK(d.Log().find("Fail") == std::string::npos);
}

TEST_CASE("--retain-age releases old segments on an idle daemon, down to the one being written") {
  TempDir tmp;
  Daemon d(tmp.path(), {"--segment-size", "64KiB", "--max-record", "4KiB", "--retain-age", "1s"});
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  const auto start = std::chrono::steady_clock::now();
  for (int i = 1; i <= 300; ++i) {
    REQUIRE(c->append_async(TestPayload(0, i, 1000), [](wald::Result<wald::Seq> r) { REQUIRE(r.ok()); }).ok());
  }
  REQUIRE(c->wait_all(30000).ok());
  auto s = c->stats();
  REQUIRE(s.ok());
  // Younger than a second (on a machine fast enough to tell).
  if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(500)) CHECK(s.value().first_seq == 1);
  // No more appends, no roll: the daemon's timer applies the age.
  for (int i = 0; i < 100 && s.value().first_seq == 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s = c->stats();
    REQUIRE(s.ok());
  }
  CHECK(s.value().first_seq > 240);  // only the segment being written is left
  CHECK(c->read(
             300, [](wald::Seq, std::span<const std::byte>) { return false; }, 1)
            .ok());
}
