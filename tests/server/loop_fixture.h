// LoopFixture: a libuv loop in the test's thread, Connections on socketpairs
// served by a FakeOwner, and the verbs the part tests share. Step() runs
// the loop without blocking; Settle() steps until nothing more happens.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "peer.h"
#include "server/connection.h"

namespace wald::test {

// Records what a Connection tells its owner; takes at most `take` bytes of
// each delivery (SIZE_MAX: all).
class FakeOwner final : public server::ConnectionOwner {
 public:
  size_t OnData(server::Connection* c, std::span<const uint8_t> data) override;
  void OnDrained(server::Connection* c) override;
  void OnClosing(server::Connection* c) override;
  void OnClosed(server::Connection*) override { ++closed; }

  size_t take = SIZE_MAX;
  std::string data;  // every byte taken, in order
  int deliveries = 0;
  int drained = 0;
  int closing = 0;
  int closed = 0;
  std::set<server::Connection*> open;                   // not yet told OnClosing
  std::function<void(server::Connection*)> on_data;     // runs after taking
  std::function<void(server::Connection*)> on_closing;  // runs first in OnClosing
  std::function<void(server::Connection*)> on_drained;
};

class LoopFixture {
 public:
  LoopFixture();
  ~LoopFixture();  // Finish(), then closes the loop

  // Closes the connections still open and runs the loop until every close
  // and every pool job is done. A derived fixture whose members the owner's
  // hooks use calls it first in its own destructor.
  void Finish();

  // A Connection serving p's other end, reading.
  server::Connection* Serve(Peer& p);
  // A few loop iterations, without blocking.
  void Step(int n = 4);
  // Steps, with a short sleep in between (thread-pool work, the kernel),
  // until `done` holds or 5 s passed; returns `done()`.
  bool StepUntil(const std::function<bool()>& done);

  uv_loop_t* loop() { return &loop_; }
  FakeOwner owner;

 private:
  uv_loop_t loop_{};
  std::vector<uint8_t> read_buf_ = std::vector<uint8_t>(256 << 10);
  uint64_t next_id_ = 1;
};

}  // namespace wald::test
