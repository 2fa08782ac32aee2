// wal-tail's time arguments: journalctl's syntax in, RFC 3339 out.
#include "time_spec.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>

using wald::tools::FormatRfc3339;
using wald::tools::ParseTimeSpec;

namespace {
constexpr uint64_t kSec = 1000000000ull;
constexpr uint64_t kNow = 1796043600ull * kSec;  // 2026-11-30T13:00:00Z
}  // namespace

TEST_CASE("absolute times with a UTC marker") {
  CHECK(ParseTimeSpec("2026-11-30 13:00:00Z", kNow) == kNow);
  CHECK(ParseTimeSpec("2026-11-30T13:00:00 UTC", kNow) == kNow);
  CHECK(ParseTimeSpec("2026-11-30 13:00Z", kNow) == kNow);
  CHECK(ParseTimeSpec("2026-11-30 13:00:00.25Z", kNow) == kNow + kSec / 4);
  CHECK(ParseTimeSpec("2026-11-30Z", kNow) == kNow - 13 * 3600 * kSec);
}

TEST_CASE("relative times and names") {
  CHECK(ParseTimeSpec("now", kNow) == kNow);
  CHECK(ParseTimeSpec("-5min", kNow) == kNow - 300 * kSec);
  CHECK(ParseTimeSpec("+1h", kNow) == kNow + 3600 * kSec);
  CHECK(ParseTimeSpec("-1h 30min", kNow) == kNow - 5400 * kSec);
  CHECK(ParseTimeSpec("2 days ago", kNow) == kNow - 2 * 86400 * kSec);
  CHECK(ParseTimeSpec("@1796043600", kNow) == kNow);
  setenv("TZ", "UTC", 1);
  tzset();
  CHECK(ParseTimeSpec("today", kNow) == kNow - 13 * 3600 * kSec);
  CHECK(ParseTimeSpec("yesterday", kNow) == kNow - 37 * 3600 * kSec);
  CHECK(ParseTimeSpec("2026-11-30 13:00:00", kNow) == kNow);  // local time, here UTC
}

TEST_CASE("time spans alone, for durations") {
  CHECK(wald::tools::ParseTimeSpan("30d") == 30 * 86400 * kSec);
  CHECK(wald::tools::ParseTimeSpan("12h 30min") == 45000 * kSec);
  CHECK(wald::tools::ParseTimeSpan("90") == 90 * kSec);
  CHECK(wald::tools::ParseTimeSpan("2 weeks") == 14 * 86400 * kSec);
  for (const char* bad : {"", "-5min", "5 fortnights", "now", "1h ago", "31000w", "99999999999999999999s"}) {
    CHECK_MESSAGE(!wald::tools::ParseTimeSpan(bad).has_value(), bad);
  }
}

TEST_CASE("nonsense is refused") {
  for (const char* bad : {"", "last tuesday", "-5 fortnights", "2026-13-01", "2026-11-30 25:00", "5", "-"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseTimeSpec(bad, kNow).has_value());
  }
}

TEST_CASE("RFC 3339 output in UTC with microseconds") {
  CHECK(FormatRfc3339(kNow + 123456789) == "2026-11-30T13:00:00.123456Z");
  CHECK(FormatRfc3339(0) == "1970-01-01T00:00:00.000000Z");
}
