#include "stats_command.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "server/openmetrics.h"
#include "wald/client.h"

namespace wald {

int RunStatsCommand(const std::string& socket_path, const std::string& format) {
  auto c = wald::connect(socket_path, {"wald stats"});
  if (!c.ok()) {
    std::fprintf(stderr, "wald stats: %s\n", c.error().message.c_str());
    return 1;
  }
  auto r = c->stats();
  if (!r.ok()) {
    std::fprintf(stderr, "wald stats: %s\n", r.error().message.c_str());
    return 1;
  }
  ServerStats& s = r.value();
  if (format == "openmetrics") {
    std::fputs(FormatOpenMetrics(s, 1).c_str(), stdout);
    return 0;
  }
  if (s.connections > 0) --s.connections;  // this command's own
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  if (format == "json") {
    const nlohmann::ordered_json j = {
        {"uptime_us", s.uptime_us},
        {"connections", s.connections},
        {"records", s.records},
        {"bytes", s.bytes},
        {"syncs", s.syncs},
        {"durable_seq", s.durable_seq},
        {"next_seq", s.next_seq},
        {"records_per_sync", s.records_per_sync.mean()},
        {"records_per_sync_p50", s.records_per_sync.percentile(0.5)},
        {"sync_latency_p50_us", s.sync_latency_us.percentile(0.5)},
        {"sync_latency_p99_us", s.sync_latency_us.percentile(0.99)},
        {"ack_latency_p50_us", s.ack_latency_us.percentile(0.5)},
        {"ack_latency_p99_us", s.ack_latency_us.percentile(0.99)},
        {"rejected_frames", s.rejected_frames},
        {"backpressure_events", s.backpressure_events},
        {"first_seq", s.first_seq},
        {"holds", s.holds.size()},
        {"holds_invalidated", s.holds_invalidated},
        {"disk_budget_refusals", s.disk_budget_refusals},
        {"producers", s.producers},
        {"producer_duplicates", s.producer_duplicates},
    };
    std::puts(j.dump().c_str());
    return 0;
  }
  std::printf("uptime            %.1f s\n", static_cast<double>(s.uptime_us) / 1e6);
  std::printf("connections       %llu (besides this one)\n", u(s.connections));
  std::printf("records           %llu (%llu payload bytes)\n", u(s.records), u(s.bytes));
  std::printf("durable seq       %llu (next %llu)\n", u(s.durable_seq), u(s.next_seq));
  std::printf("fdatasyncs        %llu, %.2f records each (p50 %llu)\n", u(s.syncs), s.records_per_sync.mean(),
              u(s.records_per_sync.percentile(0.5)));
  std::printf("sync latency      p50 %llu us, p99 %llu us\n", u(s.sync_latency_us.percentile(0.5)),
              u(s.sync_latency_us.percentile(0.99)));
  std::printf("ack latency       p50 %llu us, p99 %llu us\n", u(s.ack_latency_us.percentile(0.5)),
              u(s.ack_latency_us.percentile(0.99)));
  std::printf("rejected frames   %llu\n", u(s.rejected_frames));
  std::printf("backpressure      %llu pauses\n", u(s.backpressure_events));
  std::printf("first seq held    %llu; %zu holds, %llu invalidated\n", u(s.first_seq), s.holds.size(),
              u(s.holds_invalidated));
  std::printf("disk budget       %llu appends refused\n", u(s.disk_budget_refusals));
  std::printf("producers         %llu remembered, %llu duplicate appends answered\n", u(s.producers),
              u(s.producer_duplicates));
  return 0;
}

}  // namespace wald
