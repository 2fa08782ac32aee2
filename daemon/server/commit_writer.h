// CommitWriter: the writer thread. It takes staging chunks from the loop
// thread, writes everything handed over since its last fdatasync with one
// pwritev, fdatasyncs, publishes the durable seq and hands the chunks back:
// group commit with no timer. A batch is whatever arrived during the
// previous fdatasync; at low load it is one record.
//
// Threads: Submit(), Wake(), TakeFree(), durable_seq(), failed() are for the
// loop thread; everything else runs on the writer thread, which owns the
// LogWriter (and so every file) and never touches a socket. Between them: two
// SPSC queues (full chunks in, empty chunks back), the atomic durable seq, and
// the `notify` callback (the daemon rings its Doorbell) that the writer calls after each
// batch and on failure. Several notifications may merge into one callback, so
// the loop reads the state, never counts notifications.
//
// Idle waiting, spin then park: with nothing to write, the writer spins (a
// pause instruction per check) for a budget, then parks on a futex
// (std::atomic::wait). Under load, the next batch arrives a few tens of µs
// after a sync completes (the loop sends acks, clients answer, the loop reads
// and hands over: at once to an idle writer, else at the end of its loop
// iteration); catching it while spinning saves a futex wake-up (a syscall on
// the loop side, a context switch here).
// At low load there is nothing to catch and spinning would burn a core that
// the loop thread and the clients need (this machine has two).
// So the budget adapts: the writer keeps a moving average of the idle gaps it
// saw (from becoming idle to the next chunk). When that average is below
// spin_max it spins for twice the average (at least spin_min); otherwise it
// spins only spin_min and parks. Measured on this 2-core VM (wal-bench W1,
// 1 client x 1 in flight, fdatasync p50 ~240 us): parking after 2 us gave a
// client p50 of 393 us; spinning 300 us before parking gave 360 us, the
// futex wake-up and context switch it avoids. Under fan-in (W2, 64 x 1) the
// same change moved throughput by under 2% (53.8k vs 54.9k records/s) while
// burning a core the clients need, hence the adaptive default (2..50 us).
// The loop makes the wake-up syscall only when
// the writer has said that it is parked (the `parked_` flag; seq_cst on both
// sides makes sure that one side always sees the other).
//
// Failure: a failed write or fdatasync stops the writer for good (the
// LogWriter refuses all later work). The writer publishes failed() and
// notifies; durable_seq() never moves again.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/spsc_queue.h"
#include "server/staging.h"
#include "server/thread_role.h"
#include "server/writer_port.h"
#include "storage/log_writer.h"

namespace wald::server {

struct SpinOptions {
  uint32_t spin_min_us = 2;   // always spin at least this long before parking
  uint32_t spin_max_us = 50;  // never spin longer
};

class CommitWriter final : public WriterPort {
 public:
  // A batch takes chunks until it holds this many bytes (at least one chunk):
  // more would delay the publication of its first records behind a long
  // write, and 1 MiB already amortizes an fdatasync (storage_bench).
  static constexpr size_t kMaxBatchBytes = 1 << 20;

  // `log` must have been opened; `max_chunks` bounds both queues.
  CommitWriter(std::unique_ptr<storage::LogWriter> log, size_t max_chunks, SpinOptions spin,
               std::function<void()> notify);
  ~CommitWriter() override;  // Stop()s and joins
  CommitWriter(const CommitWriter&) = delete;
  CommitWriter& operator=(const CommitWriter&) = delete;

  void Start();
  // Writer finishes what was submitted, closes the log cleanly
  // (LogWriter::Close: the durable floor goes to wald.meta), then exits.
  // Blocks until it has. After a failure it only exits.
  void Stop() override;
  // After Stop(): how the clean close went (OK if none was attempted).
  const storage::Status& close_status() const override { return close_status_; }

  // Loop thread. Hands a full or final chunk to the writer (the queue never
  // fills: it holds every chunk there is).
  void Submit(Chunk* c) override;
  // Loop thread, once per hand-off: wakes the writer if it is parked.
  void Wake() override;
  // Loop thread: an empty chunk handed back, or nullptr.
  Chunk* TakeFree() override;
  // Loop thread: asks the writer to release whole segments at or below
  // `up_to` (LogWriter::Trim) and wakes it. Returns the request's number;
  // trims_done() reaches it once the trim is durable (or failed()).
  uint64_t RequestTrim(uint64_t up_to) override;
  uint64_t trims_done() const override { return trims_done_.load(std::memory_order_acquire); }
  // Every seq <= trim_seq() is released.
  uint64_t trim_seq() const override { return trim_seq_.load(std::memory_order_acquire); }
  uint64_t RequestHold(const std::string& name, uint64_t seq, bool release) override;
  void TakeHoldResults(std::vector<HoldResult>* out) override;
  std::vector<HoldState> holds() const override;
  // Loop thread, now and then: runs the retention policy (if any) between
  // batches even when no segment rolls, for --retain-age.
  void RequestRetention() override;

  uint64_t append_limit() const override { return append_limit_.load(std::memory_order_acquire); }
  uint64_t durable_seq() const override { return durable_seq_.load(std::memory_order_acquire); }
  uint32_t segment_salt() const override { return segment_salt_.load(std::memory_order_relaxed); }
  bool failed() const override { return failed_.load(std::memory_order_acquire); }
  std::string failure() const override;  // the cause, once failed()
  const WriterStats& stats() const override { return stats_; }
  const storage::LogId& log_id() const { return log_id_; }

 private:
  void Run();
  void IdleWait();
  bool HasWork() const;  // writer thread: chunks, a trim or hold request, or stop
  bool DoHolds();        // writer thread: the hold requests queued, then the policy; false on failure
  bool Retain();         // writer thread: the retention policy (start, roll, hold change, timer); false on failure
  bool Fail(const storage::Status& st);
  void PublishSpace();   // writer thread: trim_seq_ and append_limit_, after a release
  void SnapshotHolds();  // writer thread: holds_ from the LogWriter's

  std::unique_ptr<storage::LogWriter> log_;  // writer thread only (after Start)
  const storage::LogId log_id_;
  const SpinOptions spin_;
  const std::function<void()> notify_;
  SpscQueue<Chunk*> full_;  // loop -> writer
  SpscQueue<Chunk*> free_;  // writer -> loop
  std::atomic<uint64_t> durable_seq_;
  std::atomic<uint32_t> segment_salt_;  // written by the writer thread; a hint (any value is correct)
  std::atomic<bool> failed_{false};
  mutable std::mutex failure_mu_;
  std::string failure_;                          // guarded by failure_mu_
  alignas(64) std::atomic<uint32_t> parked_{0};  // 1 while the writer sleeps or is about to
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> trim_target_{0};    // highest seq asked for since last served (loop raises, writer takes)
  std::atomic<uint64_t> trim_requests_{0};  // requests made (loop writes)
  std::atomic<uint64_t> trims_done_{0};     // requests served (writer writes)
  std::atomic<uint64_t> trim_seq_{0};       // released up to (writer writes)
  std::atomic<uint64_t> append_limit_;      // LogWriter::AppendLimit (writer writes)
  struct HoldOp {
    uint64_t number;
    std::string name;
    uint64_t seq;
    bool release;
  };
  // Hold changes are rare: a mutex, never taken on the append path.
  mutable std::mutex holds_mu_;
  std::vector<HoldOp> hold_ops_;            // guarded by holds_mu_: asked for, not yet done
  std::vector<HoldResult> hold_results_;    // guarded by holds_mu_: done, not yet taken
  std::vector<HoldState> holds_;            // guarded by holds_mu_: the LogWriter's, as of the last change or roll
  uint64_t hold_numbers_ = 0;               // loop thread: requests made
  std::atomic<bool> holds_queued_{false};   // hold_ops_ is not empty (HasWork's cheap look)
  std::atomic<bool> results_ready_{false};  // hold_results_ is not empty (the loop's cheap look)
  std::atomic<bool> retain_asked_{false};   // RequestRetention since the last Retain (loop sets, writer takes)
  const bool retention_;                    // a retention policy is set
  uint64_t head_seen_ = UINT64_MAX;         // writer thread: head_segment_seq() when last looked at
  double gap_avg_ns_;                       // writer thread: moving average of idle gaps
  storage::Status close_status_;            // writer thread until joined, then the caller's
  WriterStats stats_;
  ThreadRole loop_role_{"loop"};      // bound by the first Submit
  ThreadRole writer_role_{"writer"};  // bound when Run starts
  std::thread thread_;
};

}  // namespace wald::server
