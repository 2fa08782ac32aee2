// Idempotent producers against the real binary (issue #19): a producer
// keeps 64 appends in flight while wald is SIGKILLed, loses power (the
// fault build drops every byte no fdatasync covered), or is SIGTERMed and
// restarted behind a socket that systemd-socket-activate keeps open. At the
// end every append the producer submitted is in the log exactly once, every
// seq it was given names the record it sent, and it saw no error.
// WALD_PRODUCER_RESTARTS sets the restarts per case (default 100; 30 under
// the sanitizers).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "spawn.h"
#include "wald/client.h"

using namespace wald;
using namespace wald::test;

namespace {

constexpr uint64_t kConn = 7;
constexpr size_t kInFlight = 64;

// 100 by default; 30 under the sanitizers, whose daemons start slowly.
int Restarts() {
  const char* env = std::getenv("WALD_PRODUCER_RESTARTS");
  return env != nullptr ? std::atoi(env) : kSanitized ? 30 : 100;
}

size_t SizeOf(uint64_t i) { return 40 + (i * 7919) % 300; }

// A producer appending TestPayload(kConn, i) for i = 0, 1, 2... with
// kInFlight in flight, on its own thread, until Stop(); then it waits for
// every one to be answered.
class Producer {
 public:
  explicit Producer(const std::string& socket) : socket_(socket) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Producer() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Waits until `n` more appends have been acked (false after 60 s).
  bool Progress(uint64_t n) {
    const uint64_t target = acked_.load() + n;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (acked_.load() < target) {
      if (std::chrono::steady_clock::now() > deadline || finished_) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  // After Stop: what the producer saw.
  uint64_t submitted = 0;
  std::map<uint64_t, Seq> seqs;  // index -> seq it was given
  std::vector<std::string> errors;
  uint64_t reconnects = 0;

 private:
  void Run() {
    ClientOptions o;
    o.client_name = "producer-restart-test";
    o.producer = true;
    o.reconnect_timeout_ms = 60000;
    // A socket-activated wald's socket may refuse for a moment after its
    // file appears (bound, not yet listening).
    auto c = wald::connect(socket_, o);
    for (int i = 0; i < 1000 && !c.ok() && c.error().code == ErrorCode::kDaemonGone; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      c = wald::connect(socket_, o);
    }
    if (!c.ok()) {
      errors.push_back("connect: " + c.error().message);
      finished_ = true;
      return;
    }
    std::mutex mu;  // the callbacks run on this thread; the lock only orders with the checks after join
    for (uint64_t i = 0; !stop_; ++i) {
      const std::string p = TestPayload(kConn, i, SizeOf(i));
      Error e = c->append_async(p, [this, i, &mu](Result<Seq> r) {
        std::lock_guard<std::mutex> l(mu);
        if (r.ok()) {
          seqs[i] = r.value();
          ++acked_;
        } else {
          errors.push_back("append " + std::to_string(i) + ": " + r.error().message);
        }
      });
      if (!e.ok()) {
        errors.push_back("append_async: " + e.message);
        break;
      }
      submitted = i + 1;
      while (c->inflight() >= kInFlight && !stop_) {
        if (Error pe = c->poll(100); !pe.ok()) {
          errors.push_back("poll: " + pe.message);
          stop_ = true;
        }
      }
    }
    if (Error e = c->wait_all(120000); !e.ok()) errors.push_back("wait_all: " + e.message);
    reconnects = c->reconnects();
    finished_ = true;
  }

  const std::string socket_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::atomic<uint64_t> acked_{0};
};

// Every submitted append is in the log exactly once, and every seq given
// names its record.
void CheckExactlyOnce(const std::string& dir, const Producer& p) {
  REQUIRE_MESSAGE(p.errors.empty(), p.errors.front());
  REQUIRE(p.seqs.size() == p.submitted);
  const auto log = ReadLog(dir);  // also checks that seqs are dense from 1
  std::vector<Seq> where(p.submitted, 0);
  for (size_t k = 0; k < log.size(); ++k) {
    unsigned long long conn = 0, idx = 0;
    REQUIRE(std::sscanf(log[k].c_str(), "c%llu-i%llu-", &conn, &idx) == 2);
    REQUIRE(conn == kConn);
    REQUIRE(idx < p.submitted);
    REQUIRE(log[k] == TestPayload(kConn, idx, SizeOf(idx)));
    REQUIRE_MESSAGE(where[idx] == 0,
                    "append " << idx << " is in the log twice: seqs " << where[idx] << " and " << k + 1);
    where[idx] = k + 1;
  }
  for (const auto& [idx, seq] : p.seqs) {
    REQUIRE_MESSAGE(where[idx] != 0, "append " << idx << " (acked with seq " << seq << ") is not in the log");
    REQUIRE_MESSAGE(where[idx] == seq,
                    "append " << idx << " was acked with seq " << seq << " but is at " << where[idx]);
  }
}

}  // namespace

TEST_CASE("producer: SIGKILLs and power cuts with 64 appends in flight: every append once, at the seq acked") {
  const int restarts = Restarts();
  TempDir tmp;
  std::mt19937_64 rng(std::random_device{}());
  const std::vector<std::string> base = {"--segment-size",    "1MiB",  "--max-record", "4KiB",
                                         "--producer-window", "200000"};
  Daemon d(tmp.path(), base);
  Producer p(d.socket());
  int kills = 0, cuts = 0;
  for (int it = 0; it < restarts; ++it) {
    REQUIRE(p.Progress(std::uniform_int_distribution<uint64_t>(1, 400)(rng)));
    d.Signal(SIGKILL);
    REQUIRE(d.Wait() == 128 + SIGKILL);
    ++kills;
    if (it % 2 == 0) {
      d.Restart(base);
    } else {
      // The next run loses power after a few hundred file operations of
      // its own: whatever it acked must survive that.
      std::vector<std::string> args = base;
      args.insert(args.end(),
                  {"--fault-power-cut-after", std::to_string(std::uniform_int_distribution<int>(100, 1000)(rng))});
      d.Restart(args);
      REQUIRE(d.Wait(60000) == 137);  // it cut its own power
      ++cuts;
      d.Restart(base);
    }
  }
  REQUIRE(p.Progress(100));
  p.Stop();
  d.Signal(SIGTERM);
  REQUIRE(d.Wait() == 0);
  CheckExactlyOnce(d.data_dir(), p);
  CHECK(p.reconnects >= static_cast<uint64_t>(restarts + cuts));
  MESSAGE(kills << " SIGKILLs, " << cuts << " of them followed by a run that cut its own power: " << p.submitted
                << " appends, each in the log once, " << p.reconnects << " reconnects");
}

TEST_CASE("producer: SIGTERM restarts behind systemd-socket-activate's socket: every append once, no error") {
  const int restarts = Restarts();
  TempDir tmp;
  const std::string sock = tmp.path() + "/activated.sock";
  const std::string data = tmp.path() + "/data";
  const std::string pidfile = tmp.path() + "/wald.pid";
  const std::string stop = tmp.path() + "/stop";
  // systemd-socket-activate binds and holds the socket, as systemd does for
  // wald.socket; the shell under it restarts wald whenever it exits, each
  // wald taking the socket (LISTEN_PID is its pid: the inner shell execs it).
  const std::string inner = "echo $$ > " + pidfile + "; LISTEN_PID=$$ exec " + std::string(WALD_BINARY) + " --dir " +
                            data + " --stats-interval 0 --producer-window 200000";
  const std::string loop = "while [ ! -e " + stop + " ]; do sh -c '" + inner + "'; done";
  const pid_t supervisor =
      Spawn({"systemd-socket-activate", "-l", sock, "/bin/sh", "-c", loop}, "", tmp.path() + "/wald.log");
  auto read_pid = [&] {
    std::ifstream f(pidfile);
    pid_t pid = 0;
    f >> pid;
    return pid;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!std::filesystem::exists(sock) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(std::filesystem::exists(sock));
  // systemd-socket-activate starts the command once a client connects: the
  // producer's connect is that client.
  Producer p(sock);
  std::mt19937_64 rng(std::random_device{}());
  for (int it = 0; it < restarts; ++it) {
    REQUIRE(p.Progress(std::uniform_int_distribution<uint64_t>(1, 400)(rng)));
    // Progress means a wald serves, and it wrote its pid before it started.
    const pid_t wald = read_pid();
    REQUIRE(wald > 0);
    REQUIRE(::kill(wald, SIGTERM) == 0);
    // The next wald writes its pid before it serves anyone.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((read_pid() == wald || read_pid() <= 0) && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(read_pid() != wald);
  }
  REQUIRE(p.Progress(100));
  p.Stop();
  std::ofstream(stop).put('\n');
  const pid_t last = read_pid();
  REQUIRE(last > 0);
  ::kill(last, SIGTERM);
  int status = 0;
  REQUIRE(::waitpid(supervisor, &status, 0) == supervisor);
  CheckExactlyOnce(data, p);
  CHECK(p.reconnects >= static_cast<uint64_t>(restarts));
  MESSAGE(restarts << " SIGTERM restarts behind one socket: " << p.submitted << " appends, each in the log once, "
                   << p.reconnects << " reconnects");
}
