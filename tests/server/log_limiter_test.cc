// LogLimiter: a burst of lines per period, the rest counted.
#include "server/log_limiter.h"

#include <doctest/doctest.h>

using wald::server::LogLimiter;

namespace {
constexpr uint64_t kSecond = 1'000'000'000;
}  // namespace

TEST_CASE("log limiter: a burst passes, the next line in the period does not") {
  LogLimiter l(2, kSecond);
  uint64_t dropped = 0;
  CHECK(l.Allow(kSecond, &dropped));
  CHECK(l.Allow(kSecond + 1, &dropped));
  CHECK(!l.Allow(kSecond + 2, &dropped));
}

TEST_CASE("log limiter: the first line of the next period says how many were dropped") {
  LogLimiter l(1, kSecond);
  uint64_t dropped = 0;
  CHECK(l.Allow(kSecond, &dropped));
  CHECK(!l.Allow(kSecond + 1, &dropped));
  CHECK(!l.Allow(kSecond + 2, &dropped));
  CHECK(l.Allow(2 * kSecond + 1, &dropped));
  CHECK(dropped == 2);
}
