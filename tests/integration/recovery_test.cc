// Recovery integrity against the real binaries: damage to acked records
// stops wald with a clear error, wal-tail --verify agrees, --salvage keeps the
// cut bytes and never hands out an acked seq again, and readers are told about
// the gap. Also: the metadata wald stamps comes back through Read.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "storage/log_reader.h"
#include "wald/client.h"

using namespace wald;
using namespace wald::test;

namespace {

constexpr uint64_t kRecords = 5000;

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

void AppendN(const std::string& socket, uint64_t n) {
  auto c = wald::connect(socket);
  REQUIRE(c.ok());
  for (uint64_t i = 0; i < n; ++i) {
    REQUIRE(c->append_async(TestPayload(1, i), [](Result<Seq> r) { REQUIRE(r.ok()); }).ok());
  }
  REQUIRE(c->wait_all(30000).ok());
}

struct Located {
  uint64_t seq = 0;
  std::string segment;
  uint64_t offset = 0;
};

// The record that holds byte `at` of the first segment, and that segment's end.
Located RecordAt(const std::string& dir, uint64_t fraction_num, uint64_t fraction_den, uint64_t* flip_at) {
  auto r = storage::LogReader::Open(storage::Env::Posix(), dir, 1);
  REQUIRE(r.ok());
  std::vector<Located> recs;
  storage::RecordView rec;
  uint64_t end = 0;
  while ((*r)->Next(&rec) == storage::LogReader::Step::kRecord) {
    recs.push_back({rec.seq, (*r)->segment_path(), (*r)->record_offset()});
    end = (*r)->record_offset() + rec.encoded_size;
  }
  REQUIRE(recs.size() == kRecords);
  *flip_at = storage::kSegmentHeaderSize + (end - storage::kSegmentHeaderSize) * fraction_num / fraction_den;
  Located hit = recs.front();
  for (const Located& l : recs) {
    if (l.offset <= *flip_at) hit = l;
  }
  return hit;
}

void Flip8(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  char b[8];
  REQUIRE(::pread(fd, b, 8, static_cast<off_t>(offset)) == 8);
  for (char& c : b) c = static_cast<char>(~c);
  REQUIRE(::pwrite(fd, b, 8, static_cast<off_t>(offset)) == 8);
  ::close(fd);
}

std::vector<std::string> SideFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().string().ends_with(".broken")) out.push_back(e.path().string());
  }
  return out;
}

}  // namespace

TEST_CASE("damage to acked records after a clean stop: refused, verified, salvaged without reusing a seq") {
  TempDir tmp;
  Daemon d(tmp.path());
  AppendN(d.socket(), kRecords);
  d.Signal(SIGTERM);
  REQUIRE(d.Wait() == 0);

  uint64_t flip_at = 0;
  const Located victim = RecordAt(d.data_dir(), 1, 3, &flip_at);
  Flip8(victim.segment, flip_at);
  const std::string where = victim.segment + " offset " + std::to_string(victim.offset);
  const std::string seqs = "seqs " + std::to_string(victim.seq) + ".." + std::to_string(kRecords);

  std::string out;
  CHECK(RunWald({"--dir", d.data_dir(), "--socket", tmp.path() + "/other.sock"}, &out) == 1);
  CHECK(out.find("critical") != std::string::npos);
  CHECK(out.find(where) != std::string::npos);
  CHECK(out.find(seqs) != std::string::npos);
  CHECK(out.find("--salvage") != std::string::npos);
  CHECK(SideFiles(d.data_dir()).empty());  // a refusal changes nothing

  CHECK(RunProgram({WAL_TAIL_BINARY, "--verify", d.data_dir()}, &out) == 1);
  CHECK(out.find(where) != std::string::npos);
  CHECK(out.find(seqs) != std::string::npos);

  d.Restart({"--salvage"});
  CHECK(SideFiles(d.data_dir()).size() == 1);
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  auto seq = c->append("after salvage");
  REQUIRE(seq.ok());
  CHECK(*seq == kRecords + 1);  // never an acked seq again

  uint64_t read = 0;
  Error e = c->read(1, [&](Seq s, std::span<const std::byte>) {
    CHECK(s == read + 1);
    ++read;
    return true;
  });
  CHECK(read == victim.seq - 1);
  CHECK(e.code == ErrorCode::kSeqGap);
  CHECK(e.first_seq == kRecords + 1);
  std::string payload;
  CHECK(c->read(e.first_seq, [&](Seq, std::span<const std::byte> p) {
           payload.assign(reinterpret_cast<const char*>(p.data()), p.size());
           return true;
         }).ok());
  CHECK(payload == "after salvage");
  d.Signal(SIGTERM);
  REQUIRE(d.Wait() == 0);

  CHECK(RunProgram({WAL_TAIL_BINARY, "--verify", d.data_dir()}, &out) == 0);
  CHECK(out.find("seqs retired by a salvage") != std::string::npos);
  CHECK(out.find(".broken") != std::string::npos);
  CHECK(RunProgram({WAL_TAIL_BINARY, "--from", std::to_string(victim.seq - 1), d.data_dir()}, &out) == 0);
  CHECK(out.find("gap: seqs " + std::to_string(victim.seq) + ".." + std::to_string(kRecords)) != std::string::npos);
}

TEST_CASE("damage to acked records after a SIGKILL is refused too") {
  TempDir tmp;
  Daemon d(tmp.path());
  AppendN(d.socket(), kRecords - 1);
  AppendN(d.socket(), 1);  // a later batch: its durable stamp covers every earlier record
  d.Signal(SIGKILL);
  REQUIRE(d.Wait() == 128 + SIGKILL);
  uint64_t flip_at = 0;
  const Located victim = RecordAt(d.data_dir(), 1, 3, &flip_at);
  Flip8(victim.segment, flip_at);
  std::string out;
  CHECK(RunWald({"--dir", d.data_dir(), "--socket", tmp.path() + "/other.sock"}, &out) == 1);
  CHECK(out.find(victim.segment + " offset " + std::to_string(victim.offset)) != std::string::npos);
}

TEST_CASE("Read returns the time and producer wald stamped, --stamp none stores neither") {
  TempDir tmp;
  Daemon d(tmp.path());
  const uint64_t before = NowNs();
  AppendN(d.socket(), 3);
  const uint64_t after = NowNs();
  d.Signal(SIGTERM);
  REQUIRE(d.Wait() == 0);
  d.Restart({"--stamp", "none"});
  AppendN(d.socket(), 1);
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  std::vector<RecordInfo> got;
  REQUIRE(c->read(1, [&](const RecordInfo& r) {
             got.push_back(r);
             return true;
           }).ok());
  REQUIRE(got.size() == 4);
  for (int i = 0; i < 3; ++i) {
    CHECK(got[i].time_ns >= before);
    CHECK(got[i].time_ns <= after);
    CHECK(got[i].has_producer);
    CHECK(got[i].pid == static_cast<uint32_t>(::getpid()));
    CHECK(got[i].uid == ::getuid());
    CHECK(got[i].gid == ::getgid());
  }
  CHECK(got[3].time_ns == 0);
  CHECK_FALSE(got[3].has_producer);
}
