// Health: what wald says about itself. The periodic summary line (and the
// systemd STATUS=), the systemd watchdog ping, and the StatsReply frame.
// Loop thread only; the writer's counters are read through their atomics.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <span>

#include "framing.h"
#include "server/histogram.h"
#include "server/loop_handle.h"
#include "wald/client.h"  // ServerStats: the plain struct only

namespace wald::server {

class StagingPool;
class WriterPort;

// The loop thread's counters.
struct LoopStats {
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t rejected_frames = 0;
  uint64_t backpressure_events = 0;
  uint64_t disk_budget_refusals = 0;  // Appends refused with DiskBudget
  uint64_t producer_duplicates = 0;   // producers' appends answered as already in the log
  uint64_t producers = 0;             // ProducerTable::size() at the last change
};

// What Health reads; every pointer must outlive it.
struct HealthSources {
  const LoopStats* loop;
  const Histogram* ack_latency_us;
  const size_t* connections;
  StagingPool* staging;
  const WriterPort* writer;
  const std::atomic<int>* storage_fd_waiters;  // the writer waits for descriptors: alive, not stuck
};

class Health {
 public:
  explicit Health(HealthSources sources);
  Health(const Health&) = delete;
  Health& operator=(const Health&) = delete;

  // Starts the summary timer (every interval_s; 0: none) and, when systemd
  // asked for one (WATCHDOG_USEC), the watchdog timer at half its interval.
  void Start(uv_loop_t* loop, uint32_t interval_s);
  void Close();

  // Every counter now (what StatsReply carries and --metrics-listen shows).
  ServerStats Snapshot() const;
  // A StatsReply frame, built in `fb`.
  std::span<const uint8_t> StatsReply(proto::FrameBuilder& fb, uint64_t request_id) const;

 private:
  static void OnSummary(uv_timer_t* h);
  static void OnWatchdog(uv_timer_t* h);

  const HealthSources src_;
  const uint64_t start_ns_;
  LoopHandle<uv_timer_t> summary_timer_;
  LoopHandle<uv_timer_t> watchdog_timer_;
  uint64_t last_records_ = 0;
  uint64_t last_ns_;
  uint64_t watchdog_syncs_ = 0;  // writer syncs at the last watchdog tick
};

}  // namespace wald::server
