// Test helper: a log whose first segments are already released, for reads
// and tools that must say "trimmed".
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "daemon_harness.h"
#include "wald/client.h"

namespace wald::test {

// Daemon options that make 1,000-byte records fill 64 KiB segments quickly.
inline const std::vector<std::string> kTrimmableLog{"--segment-size", "64KiB", "--max-record", "4KiB"};

// Appends `records` payloads of 1,000 bytes (TestPayload(0, i, 1000)), trims
// up to `up_to` and returns the seq up to which records are gone (> 0).
inline uint64_t AppendThenTrim(const std::string& socket, int records, uint64_t up_to) {
  auto c = wald::connect(socket);
  REQUIRE(c.ok());
  for (int i = 1; i <= records; ++i) REQUIRE(c->append(TestPayload(0, i, 1000)).ok());
  auto released = c->trim(up_to);
  REQUIRE(released.ok());
  REQUIRE(released.value() > 0);
  return released.value();
}

}  // namespace wald::test
