#include "server/health.h"

#include <spdlog/spdlog.h>

#include <vector>

#include "server/staging.h"
#include "server/systemd.h"
#include "server/writer_port.h"

namespace wald::server {

Health::Health(HealthSources sources) : src_(sources), start_ns_(uv_hrtime()), last_ns_(start_ns_) {}

void Health::Start(uv_loop_t* loop, uint32_t interval_s) {
  uv_timer_init(loop, summary_timer_.get());
  summary_timer_.Opened(this);
  uv_timer_init(loop, watchdog_timer_.get());
  watchdog_timer_.Opened(this);
  if (const uint64_t usec = systemd::WatchdogUsec(); usec > 0) {
    const uint64_t ms = std::max<uint64_t>(1, usec / 2000);  // ping at half the interval
    uv_timer_start(watchdog_timer_.get(), OnWatchdog, ms, ms);
  }
  if (interval_s > 0) {
    const uint64_t ms = uint64_t{interval_s} * 1000;
    uv_timer_start(summary_timer_.get(), OnSummary, ms, ms);
  }
}

void Health::Close() {
  watchdog_timer_.Close();
  summary_timer_.Close();
}

void Health::OnSummary(uv_timer_t* h) {
  auto* s = static_cast<Health*>(h->data);
  const uint64_t now = uv_hrtime();
  const uint64_t records = s->src_.loop->records;
  if (records == s->last_records_) {
    // Quiet: no line, but the next rate counts from now, not from the last
    // busy interval (1,003 appends after an idle hour read "0 records/s").
    s->last_ns_ = now;
    return;
  }
  const double rate = static_cast<double>(records - s->last_records_) * 1e9 / static_cast<double>(now - s->last_ns_);
  const WriterStats& ws = s->src_.writer->stats();
  const uint64_t syncs = ws.syncs.load(std::memory_order_relaxed);
  const uint64_t durable = s->src_.writer->durable_seq();
  spdlog::info(
      "{:.0f} records/s, durable seq {}, {} connections, {:.1f} records/sync, sync p50 {} us p99 {} us, "
      "ack p50 {} us p99 {} us",
      rate, durable, *s->src_.connections,
      syncs ? static_cast<double>(ws.records_per_sync.sum()) / static_cast<double>(syncs) : 0.0,
      ws.sync_latency_us.Percentile(0.5), ws.sync_latency_us.Percentile(0.99), s->src_.ack_latency_us->Percentile(0.5),
      s->src_.ack_latency_us->Percentile(0.99));
  systemd::Notify(
      fmt::format("STATUS={:.0f} records/s, durable seq {}, {} connections", rate, durable, *s->src_.connections));
  s->last_records_ = records;
  s->last_ns_ = now;
}

void Health::OnWatchdog(uv_timer_t* h) {
  auto* s = static_cast<Health*>(h->data);
  // WATCHDOG=1 only while both threads are healthy: this loop is running (we
  // are here), and the writer is either idle or has finished a batch since
  // the last ping. A stuck fdatasync stops the pings, and systemd restarts us.
  const uint64_t syncs = s->src_.writer->stats().syncs.load(std::memory_order_relaxed);
  s->src_.staging->Recycle();
  const bool waiting_for_fds = s->src_.storage_fd_waiters->load(std::memory_order_relaxed) > 0;
  const bool healthy =
      !s->src_.writer->failed() && (s->src_.staging->writer_idle() || syncs != s->watchdog_syncs_ || waiting_for_fds);
  s->watchdog_syncs_ = syncs;
  if (healthy) {
    systemd::Notify("WATCHDOG=1");
  } else {
    spdlog::warn("watchdog: the writer made no progress for half a watchdog interval; not pinging systemd");
  }
}

ServerStats Health::Snapshot() const {
  auto hist = [](const Histogram& h) {
    HistogramSnapshot out;
    for (int i = 0; i < Histogram::kBuckets; ++i) {
      if (h.bucket(i) == 0) continue;
      out.bounds.push_back(Histogram::Lower(i));
      out.counts.push_back(h.bucket(i));
    }
    out.count = h.count();
    out.sum = h.sum();
    return out;
  };
  const WriterStats& ws = src_.writer->stats();
  ServerStats s;
  s.uptime_us = (uv_hrtime() - start_ns_) / 1000;
  s.connections = *src_.connections;
  s.records = src_.loop->records;
  s.bytes = src_.loop->bytes;
  s.syncs = ws.syncs.load(std::memory_order_relaxed);
  s.durable_seq = src_.writer->durable_seq();
  s.next_seq = src_.staging->next_seq();
  s.rejected_frames = src_.loop->rejected_frames;
  s.backpressure_events = src_.loop->backpressure_events;
  s.first_seq = src_.writer->trim_seq() + 1;
  for (const HoldState& h : src_.writer->holds()) s.holds.push_back(HoldInfo{h.name, h.seq, h.lag_bytes});
  s.holds_invalidated = ws.holds_invalidated.load(std::memory_order_relaxed);
  s.disk_budget_refusals = src_.loop->disk_budget_refusals;
  s.producers = src_.loop->producers;
  s.producer_duplicates = src_.loop->producer_duplicates;
  s.records_per_sync = hist(ws.records_per_sync);
  s.sync_latency_us = hist(ws.sync_latency_us);
  s.ack_latency_us = hist(*src_.ack_latency_us);
  return s;
}

std::span<const uint8_t> Health::StatsReply(proto::FrameBuilder& fb, uint64_t request_id) const {
  const ServerStats s = Snapshot();
  auto& fbb = fb.fbb();
  fbb.Clear();
  auto hist = [&](const HistogramSnapshot& h) {
    return proto::CreateHistogram(fbb, fbb.CreateVector(h.bounds), fbb.CreateVector(h.counts), h.count, h.sum);
  };
  auto rps = hist(s.records_per_sync);
  auto lat = hist(s.sync_latency_us);
  auto ack = hist(s.ack_latency_us);
  std::vector<flatbuffers::Offset<proto::HoldInfo>> infos;
  for (const HoldInfo& h : s.holds)
    infos.push_back(proto::CreateHoldInfo(fbb, fbb.CreateString(h.name), h.seq, h.lag_bytes));
  auto holds = fbb.CreateVector(infos);
  proto::StatsReplyBuilder b(fbb);
  b.add_request_id(request_id);
  b.add_uptime_us(s.uptime_us);
  b.add_connections(s.connections);
  b.add_records(s.records);
  b.add_bytes(s.bytes);
  b.add_syncs(s.syncs);
  b.add_durable_seq(s.durable_seq);
  b.add_next_seq(s.next_seq);
  b.add_records_per_sync(rps);
  b.add_sync_latency_us(lat);
  b.add_ack_latency_us(ack);
  b.add_rejected_frames(s.rejected_frames);
  b.add_backpressure_events(s.backpressure_events);
  b.add_first_seq(s.first_seq);
  b.add_holds(holds);
  b.add_holds_invalidated(s.holds_invalidated);
  b.add_disk_budget_refusals(s.disk_budget_refusals);
  b.add_producers(s.producers);
  b.add_producer_duplicates(s.producer_duplicates);
  return fb.Finish(proto::Body::StatsReply, b.Finish().Union());
}

}  // namespace wald::server
