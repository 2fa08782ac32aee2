#include "server/openmetrics.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "histogram_buckets.h"

namespace wald {
namespace {

class Writer {
 public:
  void Family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void Sample(const std::string& name, uint64_t value) { out_ += name + ' ' + std::to_string(value) + '\n'; }
  void Metric(const char* name, const char* type, const char* help, uint64_t value) {
    Family(name, type, help);
    Sample(name, value);
  }
  // Every bucket of the protocol's layout, cumulative, so that the set of
  // series never changes between scrapes. `micros`: the recorded integers
  // are microseconds, shown as seconds.
  void Histogram(const char* name, const char* help, const HistogramSnapshot& h, bool micros) {
    namespace b = proto::buckets;
    Family(name, "histogram", help);
    std::vector<uint64_t> counts(b::kCount, 0);
    for (size_t i = 0; i < h.bounds.size() && i < h.counts.size(); ++i) counts[b::Index(h.bounds[i])] += h.counts[i];
    const std::string base = name;
    uint64_t cumulative = 0;
    for (int i = 0; i + 1 < b::kCount; ++i) {
      cumulative += counts[static_cast<size_t>(i)];
      Sample(base + "_bucket{le=\"" + Value(b::Lower(i + 1) - 1, micros) + "\"}", cumulative);
    }
    // The writer thread bumps a bucket before the count: a snapshot taken
    // in between has a count below its buckets' sum. Counts only grow, so
    // the larger is the truer one, and +Inf never falls below a bucket.
    const uint64_t total = std::max(cumulative + counts[b::kCount - 1], h.count);
    Sample(base + "_bucket{le=\"+Inf\"}", total);
    out_ += base + "_sum " + Value(h.sum, micros) + '\n';
    Sample(base + "_count", total);
  }
  // An integer, or microseconds as exact decimal seconds ("0.000071").
  static std::string Value(uint64_t v, bool micros) {
    if (!micros) return std::to_string(v);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llu.%06llu", static_cast<unsigned long long>(v / 1000000),
                  static_cast<unsigned long long>(v % 1000000));
    return buf;
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

std::string Escape(const std::string& v) {
  std::string s;
  for (char c : v) {
    if (c == '\\' || c == '"') s += '\\';
    if (c == '\n') {
      s += "\\n";
      continue;
    }
    s += c;
  }
  return s;
}

}  // namespace

std::string FormatOpenMetrics(const ServerStats& s, uint64_t own_connections) {
  Writer w;
  w.Family("wald_uptime_seconds", "gauge", "Seconds since the daemon started.");
  w.out() += "wald_uptime_seconds " + Writer::Value(s.uptime_us, true) + '\n';
  w.Metric("wald_connections", "gauge", "Client connections open now.",
           s.connections > own_connections ? s.connections - own_connections : 0);
  w.Metric("wald_records_total", "counter", "Records appended since the daemon started.", s.records);
  w.Metric("wald_payload_bytes_total", "counter", "Payload bytes appended since the daemon started.", s.bytes);
  w.Metric("wald_syncs_total", "counter", "fdatasyncs of record batches since the daemon started.", s.syncs);
  w.Metric("wald_durable_seq", "gauge", "The highest seq made durable.", s.durable_seq);
  w.Metric("wald_next_seq", "gauge", "The seq the next record gets.", s.next_seq);
  w.Metric("wald_first_seq", "gauge", "The oldest seq the log still holds (trim point + 1).", s.first_seq);
  w.Metric("wald_rejected_frames_total", "counter", "Frames refused as malformed, oversized or out of order.",
           s.rejected_frames);
  w.Metric("wald_backpressure_events_total", "counter",
           "Times every socket stopped being read for the unsynced-bytes cap.", s.backpressure_events);
  w.Metric("wald_holds", "gauge", "Named holds.", s.holds.size());
  w.Metric("wald_holds_invalidated_total", "counter", "Holds dropped for lagging past --max-hold-lag.",
           s.holds_invalidated);
  w.Metric("wald_disk_budget_refusals_total", "counter", "Appends refused with DiskBudget (--max-disk).",
           s.disk_budget_refusals);
  w.Metric("wald_producers", "gauge", "Idempotent producers remembered (--producer-window, --max-producers).",
           s.producers);
  w.Metric("wald_producer_duplicates_total", "counter",
           "Idempotent producers' appends answered as already in the log, not written again.", s.producer_duplicates);
  if (!s.holds.empty()) {
    w.Family("wald_hold_seq", "gauge", "A named hold's seq: nothing above it is released.");
    for (const HoldInfo& h : s.holds) w.Sample("wald_hold_seq{hold=\"" + Escape(h.name) + "\"}", h.seq);
    w.Family("wald_hold_lag_bytes", "gauge", "The disk a named hold keeps: whole segments above its seq.");
    for (const HoldInfo& h : s.holds) w.Sample("wald_hold_lag_bytes{hold=\"" + Escape(h.name) + "\"}", h.lag_bytes);
    w.Family("wald_hold_lag_records", "gauge", "Records a named hold is behind the durable seq.");
    for (const HoldInfo& h : s.holds) {
      w.Sample("wald_hold_lag_records{hold=\"" + Escape(h.name) + "\"}",
               s.durable_seq > h.seq ? s.durable_seq - h.seq : uint64_t{0});
    }
  }
  w.Histogram("wald_records_per_sync", "Records made durable by one fdatasync.", s.records_per_sync, false);
  w.Histogram("wald_sync_latency_seconds", "pwritev + fdatasync of one batch.", s.sync_latency_us, true);
  w.Histogram("wald_ack_latency_seconds", "From reading an Append to writing its ack.", s.ack_latency_us, true);
  return std::move(w.out());
}

}  // namespace wald
