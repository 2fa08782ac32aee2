#include "loop_fixture.h"

#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <thread>

namespace wald::test {

size_t FakeOwner::OnData(server::Connection* c, std::span<const uint8_t> d) {
  const size_t n = std::min(take, d.size());
  data.append(reinterpret_cast<const char*>(d.data()), n);
  ++deliveries;
  if (on_data) on_data(c);
  return n;
}

void FakeOwner::OnDrained(server::Connection* c) {
  ++drained;
  if (on_drained) on_drained(c);
}

void FakeOwner::OnClosing(server::Connection* c) {
  if (on_closing) on_closing(c);
  ++closing;
  open.erase(c);
}

LoopFixture::LoopFixture() {
  ::signal(SIGPIPE, SIG_IGN);  // as wald's main() does: a reset peer is an error code, not a signal
  REQUIRE(uv_loop_init(&loop_) == 0);
}

LoopFixture::~LoopFixture() {
  Finish();
  CHECK(uv_loop_close(&loop_) == 0);
}

void LoopFixture::Finish() {
  for (server::Connection* c : std::set<server::Connection*>(owner.open)) c->Close();
  uv_run(&loop_, UV_RUN_DEFAULT);
}

server::Connection* LoopFixture::Serve(Peer& p) {
  auto* c = new server::Connection(&loop_, &owner, read_buf_, next_id_++);
  REQUIRE(c->Open(p.TakeServerEnd()) == 0);
  owner.open.insert(c);
  c->SetReading(true);
  return c;
}

void LoopFixture::Step(int n) {
  for (int i = 0; i < n; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
}

bool LoopFixture::StepUntil(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    Step(1);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return done();
}

}  // namespace wald::test
