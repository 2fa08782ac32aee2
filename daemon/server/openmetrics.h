// wald's counters in the Prometheus text exposition format (0.0.4, which
// Prometheus scrapes and `promtool check metrics` checks): every counter,
// gauge and histogram of StatsReply, histograms with all their buckets.
//
// Names: wald_<what>[_unit][_total]; latencies in seconds. A histogram lists
// every bucket of the protocol's log-linear layout (histogram_buckets.h,
// 304 of them), empty ones too, so that the series stay the same between
// scrapes. The integers recorded in bucket i are Lower(i) <= v < Lower(i+1):
// its `le` is Lower(i+1) - 1, exact (in seconds for microseconds).
#pragma once

#include <string>

#include "wald/client.h"

namespace wald {

// `own_connections`: connections of the asker to leave out of the count
// (1 for `wald stats`, whose own connection is one of them).
std::string FormatOpenMetrics(const ServerStats& stats, uint64_t own_connections);

}  // namespace wald
