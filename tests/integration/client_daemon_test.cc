// The client library against the real daemon.
#include <doctest/doctest.h>

#include <signal.h>

#include <map>
#include <thread>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "wald/client.h"

using namespace wald::test;

TEST_CASE("blocking and async appends from several threads: seqs returned equal the log") {
  TempDir tmp;
  Daemon d(tmp.path());
  constexpr int kThreads = 6, kEach = 2000;
  std::vector<std::map<wald::Seq, std::string>> written(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto c = wald::connect(d.socket(), {"thread-" + std::to_string(t)});
      REQUIRE(c.ok());
      for (int i = 0; i < kEach; ++i) {
        std::string p = TestPayload(static_cast<uint64_t>(t), static_cast<uint64_t>(i));
        if (t % 2 == 0) {  // blocking
          auto seq = c->append(p);
          REQUIRE(seq.ok());
          written[t][seq.value()] = p;
        } else {  // pipelined
          wald::Error e = c->append_async(p, [&written, t, p](wald::Result<wald::Seq> r) {
            REQUIRE(r.ok());
            written[t][r.value()] = p;
          });
          REQUIRE(e.ok());
        }
      }
      REQUIRE(c->wait_all(20000).ok());
    });
  }
  for (auto& th : threads) th.join();
  d.Signal(SIGTERM);
  REQUIRE(d.Wait() == 0);
  auto log = ReadLog(d.data_dir());
  REQUIRE(log.size() == kThreads * kEach);
  size_t n = 0;
  for (auto& m : written) {
    for (auto& [seq, p] : m) {
      REQUIRE(log[seq - 1] == p);
      ++n;
    }
  }
  CHECK(n == log.size());
}

TEST_CASE("an append in flight when the daemon dies fails with outcome unknown") {
  TempDir tmp;
  Daemon d(tmp.path());
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  REQUIRE(c->append("first").ok());
  int unknown = 0, ok = 0;
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(c->append_async("x", [&](wald::Result<wald::Seq> r) {
      if (r.ok()) ++ok;
      else if (r.error().code == wald::ErrorCode::kOutcomeUnknown) ++unknown;
    }).ok());
  }
  d.Signal(SIGKILL);
  CHECK(d.Wait() == 128 + SIGKILL);
  wald::Error e = c->wait_all(10000);
  CHECK(e.code == wald::ErrorCode::kDaemonGone);
  CHECK(ok + unknown == 2000);
}

TEST_CASE("the C API test program, compiled as C, passes against the daemon") {
  TempDir tmp;
  Daemon d(tmp.path());
  std::string out;
  int rc = RunProgram({C_API_TEST_BINARY, d.socket()}, &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("all passed") != std::string::npos);
}
