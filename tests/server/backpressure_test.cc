// backpressure.h: when the loop stops reading. Pure policy.
#include "server/backpressure.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>

using wald::server::BackpressureLimits;
using wald::server::ConnectionLoad;
using wald::server::ConnectionMayRead;
using wald::server::GlobalPause;
using wald::server::StagingLoad;

namespace {

constexpr BackpressureLimits kLimits{/*max_unsynced_bytes=*/1000, /*max_inflight=*/4, /*max_connection_bytes=*/100};

bool Pause(bool now, uint64_t staged, bool no_chunk = false, bool stalled = false) {
  return GlobalPause(now, StagingLoad{staged, no_chunk, stalled}, kLimits);
}

bool MayRead(uint64_t acks, uint64_t pending_bytes, uint64_t unsent) {
  return ConnectionMayRead(ConnectionLoad{acks, pending_bytes, unsent}, kLimits);
}

}  // namespace

TEST_CASE("backpressure: reading stops everywhere above max_unsynced_bytes") {
  CHECK(!Pause(false, 1000));
  CHECK(Pause(false, 1001));
}

TEST_CASE("backpressure: a pause lasts until staged bytes fall to half the cap") {
  CHECK(Pause(true, 501));
  CHECK(!Pause(true, 500));
}

TEST_CASE("backpressure: a pause lasts while no chunk is free, however little is staged") {
  CHECK(Pause(true, 0, /*no_chunk=*/true));
}

TEST_CASE("backpressure: a connection waiting for a chunk pauses every socket") {
  CHECK(Pause(false, 0, false, /*stalled=*/true));
}

TEST_CASE("backpressure: a pause lasts while a connection waits for a chunk") {
  CHECK(Pause(true, 0, false, /*stalled=*/true));
}

// Hysteresis without flapping: whatever starts a pause also keeps it, so
// that lifting a pause can never be undone by the same load at once.
TEST_CASE("backpressure: every load that starts a pause keeps one") {
  for (uint64_t staged : {0ull, 499ull, 500ull, 501ull, 1000ull, 1001ull}) {
    for (bool no_chunk : {false, true}) {
      for (bool stalled : {false, true}) {
        CAPTURE(staged);
        CAPTURE(no_chunk);
        CAPTURE(stalled);
        if (Pause(false, staged, no_chunk, stalled)) CHECK(Pause(true, staged, no_chunk, stalled));
      }
    }
  }
}

TEST_CASE("backpressure: a connection at max_inflight unacked appends is not read") {
  CHECK(MayRead(3, 0, 0));
  CHECK(!MayRead(4, 0, 0));
}

TEST_CASE("backpressure: unacked payload and unsent output share max_connection_bytes") {
  CHECK(MayRead(1, 60, 40));
  CHECK(!MayRead(1, 60, 41));
}
