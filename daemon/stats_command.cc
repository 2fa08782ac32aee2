#include "stats_command.h"

#include <cstdio>

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
    std::printf(
        "{\"uptime_us\":%llu,\"connections\":%llu,\"records\":%llu,\"bytes\":%llu,\"syncs\":%llu,"
        "\"durable_seq\":%llu,\"next_seq\":%llu,\"records_per_sync\":%.3f,\"records_per_sync_p50\":%llu,"
        "\"sync_latency_p50_us\":%llu,\"sync_latency_p99_us\":%llu,\"ack_latency_p50_us\":%llu,"
        "\"ack_latency_p99_us\":%llu,\"rejected_frames\":%llu,\"backpressure_events\":%llu,\"first_seq\":%llu,"
        "\"holds\":%zu,\"holds_invalidated\":%llu,\"disk_budget_refusals\":%llu}\n",
        u(s.uptime_us), u(s.connections), u(s.records), u(s.bytes), u(s.syncs), u(s.durable_seq), u(s.next_seq),
        s.records_per_sync.mean(), u(s.records_per_sync.percentile(0.5)), u(s.sync_latency_us.percentile(0.5)),
        u(s.sync_latency_us.percentile(0.99)), u(s.ack_latency_us.percentile(0.5)),
        u(s.ack_latency_us.percentile(0.99)), u(s.rejected_frames), u(s.backpressure_events), u(s.first_seq),
        s.holds.size(), u(s.holds_invalidated), u(s.disk_budget_refusals));
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
  return 0;
}

}  // namespace wald
