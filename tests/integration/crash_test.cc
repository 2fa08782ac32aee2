// The contract under crashes and faults, against the real binary:
// - crash loop: 16 clients append, wald is SIGKILLed at a random moment (or
//   loses power: a test-build option drops every byte not covered by a
//   completed fdatasync, and files whose directory was not synced, then
//   exits), restarted, and every acked record must be there, identical, with
//   dense seqs and no payload that no client sent. WALD_CRASH_ITERATIONS sets
//   the count (CI: 20; scripts/crash-loop runs 2,000: 1,000 of each).
// - I/O faults: ENOSPC/EIO on write, ENOSPC while preallocating: fail-stop,
//   errors to clients, nothing acked that is not durable, clean recovery.
#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "wald/client.h"

using namespace wald;
using namespace wald::test;

namespace {

struct Acked {
  Seq seq;
  std::string payload;
};

// Appends with append_many, 16 records at a time (AppendBatch frames),
// until the connection breaks; records every ack.
void AppendManyUntilGone(Client& c, uint64_t conn, std::vector<Acked>* acked, uint64_t* errors) {
  for (uint64_t i = 0;; i += 16) {
    std::vector<std::string> ps;
    for (uint64_t k = i; k < i + 16; ++k) ps.push_back(TestPayload(conn, k, 40 + (k * 7919 + conn) % 200));
    std::vector<std::span<const std::byte>> spans;
    for (const std::string& p : ps) spans.push_back(std::as_bytes(std::span(p)));
    auto r = c.append_many(spans);
    if (!r.ok()) {
      // As AppendUntilGone counts them: an error from the daemon (a
      // fail-stop reaches each pending append as outcome unknown, "server
      // failed"), not a broken connection.
      const Error& e = r.error();
      if ((e.code != ErrorCode::kOutcomeUnknown && e.code != ErrorCode::kDaemonGone) ||
          e.message.find("server failed") != std::string::npos) {
        ++*errors;
      }
      return;
    }
    for (size_t k = 0; k < ps.size(); ++k) acked->push_back({r.value()[k], ps[k]});
  }
}

// Appends until the connection breaks; records every ack. Odd clients send
// batches with append_many, even ones single appends with append_async (the
// client coalesces what is queued between writes).
void AppendUntilGone(const std::string& socket, uint64_t conn, std::vector<Acked>* acked, uint64_t* errors) {
  auto c = wald::connect(socket, {"crash-loop", 5000});
  if (!c.ok()) return;
  if (conn % 2 == 1) return AppendManyUntilGone(*c, conn, acked, errors);
  for (uint64_t i = 0;; ++i) {
    std::string p = TestPayload(conn, i, 40 + (i * 7919 + conn) % 200);
    Error e = c->append_async(p, [acked, errors, p](Result<Seq> r) {
      if (r.ok()) {
        acked->push_back({r.value(), p});
      } else if (r.error().code != ErrorCode::kOutcomeUnknown ||
                 r.error().message.find("server failed") != std::string::npos) {
        // Anything but a broken connection: an error from the daemon (a
        // fail-stop reaches each pending append as outcome unknown).
        ++*errors;
      }
    });
    if (!e.ok()) return;
    // At most 8 in flight per client: a realistic window, and a log that
    // stays small enough to check after every crash.
    while (c->inflight() >= 8) {
      if (!c->poll(100).ok()) return;
    }
  }
}

// Checks the log against what was acked: every acked seq holds its payload,
// and every record is something a client sent (its payload regenerates from
// its own prefix "c<conn>-i<index>-"). Each client sent its records in
// order on one connection, so the log holds a prefix of them, in order: a
// batch cut by a crash leaves a prefix of itself, never a hole.
void CheckLog(const std::string& dir, const std::vector<std::vector<Acked>>& acked) {
  auto log = ReadLog(dir);  // also checks that seqs are dense from 1
  for (const auto& per_conn : acked) {
    for (const Acked& a : per_conn) {
      REQUIRE(a.seq <= log.size());
      REQUIRE(log[a.seq - 1] == a.payload);
    }
  }
  std::map<unsigned long long, unsigned long long> next_index;  // per client
  for (const std::string& p : log) {
    unsigned long long conn = 0, idx = 0;
    REQUIRE(std::sscanf(p.c_str(), "c%llu-i%llu-", &conn, &idx) == 2);
    REQUIRE(p == TestPayload(conn, idx, p.size()));
    REQUIRE_MESSAGE(idx == next_index[conn],
                    "client " << conn << ": record " << idx << " where " << next_index[conn] << " was next (a hole)");
    ++next_index[conn];
  }
}

}  // namespace

TEST_CASE("crash loop: SIGKILL and power cuts under 16-client load lose no acked record") {
  const char* env = std::getenv("WALD_CRASH_ITERATIONS");
  const int iterations = env ? std::atoi(env) : 20;
  TempDir tmp;
  std::mt19937_64 rng(std::random_device{}());
  std::vector<std::vector<Acked>> all_acked;
  uint64_t kills = 0, cuts = 0, total_acked = 0;
  // One log lives through a window of iterations (every crash must keep all
  // the acks of the earlier ones), then a fresh one starts: checking the whole
  // log after each crash made a long run quadratic.
  constexpr int kWindow = 20;
  for (int it = 0; it < iterations; ++it) {
    if (it > 0 && it % kWindow == 0) {
      std::filesystem::remove_all(tmp.path() + "/data");
      all_acked.clear();
      if (iterations > kWindow * 5) {
        std::fprintf(stderr, "crash loop: %d/%d iterations, %llu acked records, all present\n", it, iterations,
                     static_cast<unsigned long long>(total_acked));
      }
    }
    const bool power = it % 2 == 1;
    std::vector<std::string> args = {"--segment-size", "1MiB", "--max-record", "4KiB"};
    if (power) {
      args.push_back("--fault-power-cut-after");
      args.push_back(std::to_string(std::uniform_int_distribution<int>(20, 400)(rng)));
    }
    Daemon d(tmp.path(), args);
    std::vector<std::vector<Acked>> acked(16);
    std::vector<uint64_t> errors(16, 0);
    std::vector<std::thread> ts;
    for (size_t c = 0; c < 16; ++c) {
      ts.emplace_back([&, c] { AppendUntilGone(d.socket(), it * 100 + c, &acked[c], &errors[c]); });
    }
    if (power) {
      const int code = d.Wait(60000);  // it cuts its own power
      CHECK(code == 137);
      ++cuts;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 300)(rng)));
      d.Signal(SIGKILL);
      CHECK(d.Wait() == 128 + SIGKILL);
      ++kills;
    }
    for (auto& t : ts) t.join();
    for (size_t c = 0; c < 16; ++c) {
      CHECK(errors[c] == 0);
      total_acked += acked[c].size();
      all_acked.push_back(std::move(acked[c]));
    }
    CheckLog(tmp.path() + "/data", all_acked);  // recovery has not run yet: the reader copes
    d.Restart({});                              // recovery
    d.Signal(SIGTERM);
    REQUIRE(d.Wait() == 0);
    // A real torn tail is never mistaken for damage (FORMAT.md's rule).
    const std::string log = d.Log();
    REQUIRE_MESSAGE(log.find("damage") == std::string::npos, log);
    REQUIRE_MESSAGE(log.find("critical") == std::string::npos, log);
    CheckLog(tmp.path() + "/data", all_acked);
  }
  MESSAGE(iterations << " iterations: " << kills << " SIGKILLs, " << cuts << " power cuts, " << total_acked
                     << " acked records, all present; the last log holds " << ReadLog(tmp.path() + "/data").size());
}

TEST_CASE("I/O faults fail-stop: errors to clients, nothing acked that is not durable, clean recovery") {
  struct Case {
    const char* name;
    std::vector<std::string> args;
  };
  for (const Case& fc : {Case{"ENOSPC on a write (short write)", {"--fault-write-error-after", "30"}},
                         Case{"EIO on a write", {"--fault-write-error-after", "30", "--fault-write-errno", "5"}},
                         Case{"ENOSPC preallocating a segment", {"--fault-alloc-enospc"}},
                         Case{"EIO on fdatasync", {"--fault-sync-eio-after", "30"}}}) {
    CAPTURE(fc.name);
    TempDir tmp;
    std::vector<std::string> args = {"--segment-size", "256KiB", "--max-record", "4KiB"};
    args.insert(args.end(), fc.args.begin(), fc.args.end());
    // ENOSPC while preallocating hits the first segment: wald refuses to start.
    if (fc.args[0] == "--fault-alloc-enospc") {
      std::string out;
      std::vector<std::string> a = {"--dir", tmp.path() + "/data", "--socket", tmp.path() + "/s"};
      a.insert(a.end(), args.begin(), args.end());
      CHECK(RunWald(a, &out) == 1);
      CHECK(out.find("No space left on device") != std::string::npos);
      continue;
    }
    Daemon d(tmp.path(), args);
    std::vector<std::vector<Acked>> acked(4);
    std::vector<uint64_t> errors(4, 0);
    std::vector<std::thread> ts;
    for (size_t c = 0; c < 4; ++c) ts.emplace_back([&, c] { AppendUntilGone(d.socket(), c, &acked[c], &errors[c]); });
    const int code = d.Wait(60000);
    for (auto& t : ts) t.join();
    CHECK(code == 1);
    uint64_t failed = 0;
    for (uint64_t e : errors) failed += e;
    CHECK(failed > 0);  // ServerFailed to pending appends
    CHECK(d.Log().find("the log writer failed") != std::string::npos);
    d.Restart({"--segment-size", "256KiB", "--max-record", "4KiB"});
    d.Signal(SIGTERM);
    REQUIRE(d.Wait() == 0);
    CheckLog(d.data_dir(), acked);
  }
}
