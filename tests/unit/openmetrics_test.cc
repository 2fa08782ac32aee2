// The Prometheus text of wald's counters, from a made-up snapshot.
#include "server/openmetrics.h"

#include <doctest/doctest.h>

using namespace wald;

namespace {

std::string Line(const std::string& text, const std::string& prefix) {
  const size_t at = text.find("\n" + prefix);
  if (at == std::string::npos) return "";
  return text.substr(at + 1, text.find('\n', at + 1) - at - 1);
}

}  // namespace

TEST_CASE("a histogram snapshot whose count lags its buckets never shows +Inf below a bucket") {
  ServerStats s;
  s.sync_latency_us.bounds = {71, 1000};
  s.sync_latency_us.counts = {5, 2};
  s.sync_latency_us.count = 6;  // taken between a bucket's increment and the count's
  s.sync_latency_us.sum = 2400;
  const std::string text = FormatOpenMetrics(s, 0);
  CHECK(Line(text, "wald_sync_latency_seconds_bucket{le=\"0.001023\"}") ==
        "wald_sync_latency_seconds_bucket{le=\"0.001023\"} 7");
  CHECK(Line(text, "wald_sync_latency_seconds_bucket{le=\"+Inf\"}") ==
        "wald_sync_latency_seconds_bucket{le=\"+Inf\"} 7");
  CHECK(Line(text, "wald_sync_latency_seconds_count") == "wald_sync_latency_seconds_count 7");
  CHECK(Line(text, "wald_sync_latency_seconds_sum") == "wald_sync_latency_seconds_sum 0.002400");
}

TEST_CASE("the asker's own connection is left out of wald_connections") {
  ServerStats s;
  s.connections = 3;
  CHECK(Line(FormatOpenMetrics(s, 1), "wald_connections ") == "wald_connections 2");
}
