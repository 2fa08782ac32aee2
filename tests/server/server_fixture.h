// ServerTest: the Server wired to a FakeWriter (Server::StartWith), peers
// on socketpairs (Server::Adopt), and the loop stepped by the test.
#pragma once

#include <doctest/doctest.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../unit/log_fixture.h"
#include "fake_writer.h"
#include "peer.h"
#include "server/server.h"

namespace wald::test {

class ServerTest {
 public:
  ServerTest() {
    spdlog::set_level(spdlog::level::warn);
    ::signal(SIGPIPE, SIG_IGN);  // as wald's main() does
    o.dir = tmp.path() + "/data";
    o.socket = tmp.path() + "/wald.sock";
    o.stats_interval_s = 0;
    o.ack_spin_us = 0;              // no waiting inside a step
    o.handle_stop_signals = false;  // the test runner's signals stay its own
  }
  ~ServerTest() { spdlog::set_level(spdlog::level::info); }

  void Start() {
    server = std::make_unique<server::Server>(o);
    auto make = [this](size_t, std::function<void()> notify) {
      auto w = std::make_unique<FakeWriter>(0, std::move(notify));
      writer = w.get();
      return w;
    };
    REQUIRE(server->StartWith(make, 1, storage::LogId{}).ok());
  }
  // A peer the server serves, past its handshake.
  // producer_id != 0: as that idempotent producer.
  Peer& Connect(uint64_t producer_id = 0) {
    peers.push_back(std::make_unique<Peer>());
    Peer& p = *peers.back();
    p.on_blocked = [this] { Step(1); };
    server->Adopt(p.TakeServerEnd());
    p.Hello(producer_id);
    REQUIRE(StepUntil([&] {
      p.Poll();
      return p.Count(proto::Body::HelloAck) == 1;
    }));
    return p;
  }
  void Append(Peer& p, uint64_t first_id, int n, size_t size = 100) {
    for (int i = 0; i < n; ++i) p.Append(first_id + static_cast<uint64_t>(i), std::string(size, 'a'));
  }
  // Appends n records and steps until the writer holds them all.
  void AppendHanded(Peer& p, int n) {
    const uint64_t before = writer->held_records();
    Append(p, 1, n);
    REQUIRE(StepUntil([&] { return writer->held_records() == before + static_cast<uint64_t>(n); }));
  }
  void Step(int n = 4) {
    for (int i = 0; i < n && running; ++i) running = server->RunOnce();
  }
  bool StepUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && running && std::chrono::steady_clock::now() < deadline) {
      Step(1);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return done();
  }
  bool AckedCount(Peer& p, size_t n) {
    return StepUntil([&] {
      p.Poll();
      return p.Acks().size() >= n;
    });
  }
  // Steps until p has got n Error frames.
  bool ErrorCount(Peer& p, size_t n) {
    return StepUntil([&] {
      p.Poll();
      return p.Count(proto::Body::Error) >= n;
    });
  }
  bool Stopped() {
    return StepUntil([&] { return !running; });
  }

  test::TempDir tmp;
  server::ServerOptions o;
  std::unique_ptr<server::Server> server;
  FakeWriter* writer = nullptr;  // the server's
  std::vector<std::unique_ptr<Peer>> peers;
  bool running = true;
};

}  // namespace wald::test
