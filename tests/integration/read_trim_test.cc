// Reading the log back through the daemon: replay after a restart, a
// follower under load, trim, and a reader that stops reading.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "trimmed_log.h"
#include "wald/client.h"

using namespace wald;
using namespace wald::test;

namespace {

std::string Str(std::span<const std::byte> p) { return {reinterpret_cast<const char*>(p.data()), p.size()}; }

uint64_t DirBytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

// `conns` pipelined connections append `each` records to a log that holds
// `before`; returns, per seq, the (connection << 32 | index) that was acked
// with it.
std::vector<uint64_t> Load(const std::string& socket, int conns, uint64_t each, size_t size, uint64_t before = 0) {
  std::vector<uint64_t> who(before + conns * each + 1, 0);
  std::vector<std::thread> ts;
  std::mutex mu;
  std::string first_bad;  // guarded by mu: the first failure, to report
  auto bad = [&](const std::string& what) {
    std::lock_guard lock(mu);
    if (first_bad.empty()) first_bad = what;
  };
  for (int c = 0; c < conns; ++c) {
    ts.emplace_back([&, c] {
      auto cl = wald::connect(socket);
      if (!cl.ok()) return bad("connect: " + cl.error().message);
      for (uint64_t i = 0; i < each; ++i) {
        Error e = cl->append_async(TestPayload(c, i, size), [&who, &bad, c, i](Result<Seq> r) {
          if (!r.ok()) return bad("append " + std::to_string(i) + " failed: " + r.error().message);
          if (r.value() >= who.size())
            return bad("append " + std::to_string(i) + " got seq " + std::to_string(r.value()));
          who[r.value()] = (uint64_t(c) << 32) | i;
        });
        if (!e.ok()) bad("append_async " + std::to_string(i) + ": " + e.message);
      }
      if (Error e = cl->wait_all(60000); !e.ok()) bad("wait_all: " + e.message);
    });
  }
  for (auto& t : ts) t.join();
  INFO("the first failure: " << first_bad);
  REQUIRE(first_bad.empty());
  return who;
}

}  // namespace

TEST_CASE("replay after a restart: every record byte-identical at its seq") {
  const char* env = std::getenv("WALD_TEST_REPLAY_RECORDS");
  const uint64_t n = env ? std::strtoull(env, nullptr, 10) : (kSanitized ? 100000 : 1000000);
  TempDir tmp;
  Daemon d(tmp.path());
  const auto who = Load(d.socket(), 4, n / 4, 100);
  d.Signal(SIGTERM);
  REQUIRE(d.Wait() == 0);
  d.Restart();
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  uint64_t expect = 1, mismatches = 0;
  Error e = c->read(1, [&](Seq seq, std::span<const std::byte> p) {
    if (seq != expect || Str(p) != TestPayload(who[seq] >> 32, who[seq] & 0xffffffff, 100)) ++mismatches;
    ++expect;
    return true;
  });
  REQUIRE(e.ok());
  CHECK(mismatches == 0);
  CHECK(expect == (n / 4) * 4 + 1);
  MESSAGE("replayed " << expect - 1 << " records");
}

TEST_CASE("a follower under a 16-client load gets every record once, in order, never before it is durable") {
  TempDir tmp;
  Daemon d(tmp.path());
  const uint64_t total = 16 * 4000;
  std::vector<std::string> got;
  got.reserve(total);
  uint64_t early = 0, out_of_order = 0;
  std::atomic<bool> subscribed{false};
  std::thread follower([&] {
    auto sub = wald::connect(d.socket(), {"follower"});
    auto probe = wald::connect(d.socket(), {"probe"});
    REQUIRE(sub.ok());
    REQUIRE(probe.ok());
    subscribed = true;
    Error e = sub->subscribe(1, [&](Seq seq, std::span<const std::byte> p) {
      if (seq != got.size() + 1) ++out_of_order;
      got.push_back(Str(p));
      // Durable seqs only grow: a StatsReply read after this record arrived
      // must show a durable seq at or above it.
      if (seq % 997 == 0) {
        auto st = probe->stats();
        if (!st.ok() || st->durable_seq < seq) ++early;
      }
      return got.size() < total;
    });
    CHECK(e.ok());
  });
  while (!subscribed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto who = Load(d.socket(), 16, total / 16, 64);
  follower.join();
  REQUIRE(got.size() == total);
  CHECK(out_of_order == 0);
  CHECK(early == 0);
  uint64_t wrong = 0;
  for (uint64_t s = 1; s <= total; ++s) wrong += got[s - 1] != TestPayload(who[s] >> 32, who[s] & 0xffffffff, 64);
  CHECK(wrong == 0);
}

// subscribe_async: one thread appends on one client and follows on another,
// driving the follower with poll() between its own appends.
TEST_CASE("subscribe_async delivers each durable record from poll, and done runs once when the callback stops") {
  TempDir tmp;
  Daemon d(tmp.path());
  auto writer = wald::connect(d.socket());
  auto sub = wald::connect(d.socket());
  REQUIRE(writer.ok());
  REQUIRE(sub.ok());
  std::vector<std::string> got;
  int done_calls = 0;
  Error done_with{ErrorCode::kProtocol, "not called"};
  REQUIRE(sub->subscribe_async(
                 1,
                 [&](const RecordInfo& r) {
                   CHECK(r.seq == got.size() + 1);
                   got.push_back(Str(r.payload));
                   return got.size() < 50;
                 },
                 [&](Error e) {
                   ++done_calls;
                   done_with = e;
                 })
              .ok());
  CHECK(sub->read(1, [](Seq, std::span<const std::byte>) { return true; }).code == ErrorCode::kInvalidArgument);
  for (int i = 1; i <= 60; ++i) {
    REQUIRE(writer->append(TestPayload(0, i)).ok());
    if (i % 10 == 0) {
      for (int spin = 0; spin < 500 && got.size() < std::min<size_t>(i, 50) && done_calls == 0; ++spin) {
        REQUIRE(sub->poll(10).ok());
      }
    }
  }
  REQUIRE(got.size() == 50);
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == TestPayload(0, i + 1));
  CHECK(done_calls == 1);
  CHECK(done_with.ok());
  CHECK_FALSE(sub->connected());
  CHECK(sub->poll(0).code == ErrorCode::kDaemonGone);
  CHECK(done_calls == 1);
}

TEST_CASE("subscribe_async: a callback that closes its client mid-batch ends the subscription once") {
  TempDir tmp;
  Daemon d(tmp.path());
  auto writer = wald::connect(d.socket());
  REQUIRE(writer.ok());
  std::vector<std::string> ps(200, "x");
  std::vector<std::span<const std::byte>> spans;
  for (const auto& p : ps) spans.push_back(std::as_bytes(std::span(p)));
  REQUIRE(writer->append_many(spans).ok());
  auto sub = wald::connect(d.socket());
  REQUIRE(sub.ok());
  Client* self = &sub.value();
  int seen = 0, done_calls = 0;
  REQUIRE(sub->subscribe_async(
                 1,
                 [&](const RecordInfo&) {
                   if (++seen == 3) self->close();
                   return true;
                 },
                 [&](Error) { ++done_calls; })
              .ok());
  for (int spin = 0; spin < 200 && done_calls == 0; ++spin) sub->poll(10);
  CHECK(seen == 3);
  CHECK(done_calls == 1);
  CHECK_FALSE(sub->connected());
}

TEST_CASE("subscribe_async below the first seq held ends with kTrimmed and the first seq, through done") {
  TempDir tmp;
  Daemon d(tmp.path(), kTrimmableLog);
  const uint64_t released = AppendThenTrim(d.socket(), 300, 200);
  auto sub = wald::connect(d.socket());
  REQUIRE(sub.ok());
  std::optional<Error> done;
  REQUIRE(sub->subscribe_async(
                 1, [](const RecordInfo&) { return true; }, [&](Error e) { done = e; })
              .ok());
  for (int spin = 0; spin < 500 && !done; ++spin) REQUIRE(sub->poll(10).ok());
  REQUIRE(done.has_value());
  CHECK(done->code == ErrorCode::kTrimmed);
  CHECK(done->first_seq == released + 1);
  CHECK_FALSE(sub->connected());
}

TEST_CASE("subscribe_async ends with kDaemonGone through done when the daemon dies") {
  TempDir tmp;
  Daemon d(tmp.path());
  auto sub = wald::connect(d.socket());
  REQUIRE(sub.ok());
  std::optional<Error> done;
  REQUIRE(sub->subscribe_async(
                 1, [](const RecordInfo&) { return true; }, [&](Error e) { done = e; })
              .ok());
  REQUIRE(sub->poll(50).ok());
  CHECK_FALSE(done.has_value());
  d.Signal(SIGKILL);
  d.Wait();
  for (int spin = 0; spin < 500 && !done; ++spin) sub->poll(10);
  REQUIRE(done.has_value());
  CHECK(done->code == ErrorCode::kDaemonGone);
}

TEST_CASE("trim releases segments durably: after a restart a read below it is trimmed") {
  TempDir tmp;
  Daemon d(tmp.path(), {"--segment-size", "64KiB", "--max-record", "4KiB"});
  {
    auto c = wald::connect(d.socket());
    REQUIRE(c.ok());
    for (int i = 1; i <= 600; ++i) REQUIRE(c->append(TestPayload(0, i, 1000)).ok());
    const uint64_t before = DirBytes(d.data_dir());
    auto released = c->trim(300);
    REQUIRE(released.ok());
    CHECK(released.value() < 300);
    CHECK(released.value() > 100);
    CHECK(DirBytes(d.data_dir()) < before);
    MESSAGE("trim(300) released up to " << released.value() << "; directory " << before << " -> "
                                        << DirBytes(d.data_dir()) << " bytes");
  }
  d.Signal(SIGTERM);
  REQUIRE(d.Wait() == 0);
  d.Restart();
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  Error e = c->read(1, [](Seq, std::span<const std::byte>) { return true; });
  REQUIRE(e.code == ErrorCode::kTrimmed);
  const uint64_t first = e.first_seq;
  CHECK(first > 100);
  CHECK(e.message.find("first seq held is " + std::to_string(first)) != std::string::npos);
  uint64_t expect = first;
  e = c->read(first, [&](Seq seq, std::span<const std::byte> p) {
    CHECK(seq == expect);
    CHECK(Str(p) == TestPayload(0, seq, 1000));
    ++expect;
    return true;
  });
  INFO(e.message);
  REQUIRE(e.ok());
  CHECK(expect == 601);
}

// Issue #20: Trim{2^64-1} wrapped (up_to + 1 == 0) and, since the trim target
// only rises, disabled trimming until a restart: the disk filled.
TEST_CASE("a trim at seq 2^64-1 releases what is durable, and later trims still work") {
  TempDir tmp;
  Daemon d(tmp.path(), {"--segment-size", "64KiB", "--max-record", "4KiB"});
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  for (int i = 1; i <= 600; ++i) REQUIRE(c->append(TestPayload(0, i, 1000)).ok());
  auto all = c->trim(UINT64_MAX);
  REQUIRE(all.ok());
  CHECK(all.value() > 500);  // every sealed segment
  CHECK(all.value() < 600);  // never the one being written
  for (int i = 601; i <= 1200; ++i) REQUIRE(c->append(TestPayload(0, i, 1000)).ok());
  auto some = c->trim(900);
  REQUIRE(some.ok());
  CHECK(some.value() > 800);
  CHECK(some.value() <= 900);  // not everything: the 2^64-1 did not stick
  const uint64_t dir_bytes = DirBytes(d.data_dir());
  MESSAGE("trim(2^64-1) released up to " << all.value() << ", then trim(900) up to " << some.value() << "; "
                                         << dir_bytes << " bytes left");
}

// The follower's stream is bounded per connection: what it does not read
// waits in the log, not in the daemon. So the daemon stays within its RSS
// target (64 MiB, issue #21: the staging pool, 20 MiB at the defaults, and
// buffers) while five times that goes through the follower's stream.
TEST_CASE("a reader that stops reading does not grow daemon memory while appends go on") {
  TempDir tmp;
  Daemon d(tmp.path());
  const long base = d.RssKiB();
  RawClient stuck(d.socket());
  REQUIRE(stuck.Handshake() != nullptr);
  proto::FrameBuilder fb;
  REQUIRE(stuck.SendRaw(fb.Read(1ull << 63 | 1, 1, 0, true)));  // follow from the start, never read
  INFO("the daemon's log: " << d.Log());
  const uint64_t each = kSanitized ? 8000 : 40000;
  Load(d.socket(), 4, each, 1024);  // 160 MiB (32 MiB under sanitizers)
  const long rss = d.RssKiB();
  MESSAGE("daemon RSS " << base << " KiB idle, " << rss << " KiB after " << (4 * each) / 1024
                        << " MiB of appends with a stuck follower");
  if (!kSanitized) CHECK(rss < 64 * 1024);
  ::shutdown(stuck.fd(), SHUT_RDWR);
  d.Signal(SIGTERM);
  CHECK(d.Wait() == 0);
}

// Every open Read holds a cursor (buffers and a file descriptor): one
// connection may hold only --max-reads-per-connection of them. CancelRead
// frees one.
TEST_CASE("open Reads are capped per connection, CancelRead ends one and frees its place") {
  TempDir tmp;
  Daemon d(tmp.path(), {"--max-reads-per-connection", "4"});
  Load(d.socket(), 1, 10, 50);
  RawClient c(d.socket());
  REQUIRE(c.Handshake() != nullptr);
  proto::FrameBuilder fb(4096);
  auto send = [&](std::span<const uint8_t> f) { REQUIRE(c.SendRaw(f)); };
  // Four followers, each first sent the 10 records there are.
  for (uint64_t id = 1; id <= 4; ++id) send(fb.Read(id, 1, 0, /*follow=*/true));
  int records = 0;
  while (records < 40) {
    const proto::Message* m = c.Next(5000);
    REQUIRE(m != nullptr);
    REQUIRE(m->body_type() == proto::Body::Records);
    records += static_cast<int>(m->body_as_Records()->records()->size());
  }
  send(fb.Read(5, 1, 0, true));
  const proto::Message* m = c.Next(5000);
  REQUIRE(m != nullptr);
  REQUIRE(m->body_type() == proto::Body::Error);
  CHECK(m->body_as_Error()->request_id() == 5);
  CHECK(m->body_as_Error()->code() == proto::ErrorCode::TooManyReads);
  // The connection stays open; cancel one, and the next Read is served.
  send(fb.CancelRead(2));
  send(fb.Read(6, 10, 0, false));
  m = c.Next(5000);
  REQUIRE(m != nullptr);
  REQUIRE(m->body_type() == proto::Body::Records);
  CHECK(m->body_as_Records()->request_id() == 6);
  CHECK(m->body_as_Records()->done());
  // New records reach the three followers left, not the cancelled one.
  auto writer = wald::connect(d.socket());
  REQUIRE(writer.ok());
  REQUIRE(writer->append("one more").ok());
  std::set<uint64_t> got;
  while (got.size() < 3) {
    m = c.Next(5000);
    REQUIRE(m != nullptr);
    REQUIRE(m->body_type() == proto::Body::Records);
    got.insert(m->body_as_Records()->request_id());
  }
  CHECK(got == std::set<uint64_t>{1, 3, 4});
  CHECK(c.Next(300) == nullptr);  // nothing for 2
}
