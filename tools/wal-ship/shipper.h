// The shipper: follows wald's durable log and publishes each record, once,
// as the next message of a JetStream stream; resumes after any crash or
// outage from the stream's own end; holds wald's copy until JetStream has
// had it longer than the release delay.
//
// One session is one wald subscription. A session ends on any error (a
// publish refused or timed out, wald or NATS gone): what is in flight is
// dropped, the shipper backs off (bounded), re-reads the stream's end and
// starts a new session from the record after it. The stream refuses a
// message that does not extend it by exactly one
// (Nats-Expected-Last-Sequence), so a resend, a late ack or a second
// wal-ship can never store a record twice or out of order.
//
// Never papering over a gap: if the stream ends before a record JetStream
// already acked, or before wal-ship's hold in wald (records acked longer
// than the release delay ago), NATS lost acked records: the shipper stops
// (exit 3) and wald still has them. If wald no longer has the records the
// stream needs next, it stops too (exit 1).
//
// Threads: Run() and everything it calls run on the caller's thread.
// Acked()/Failed() run on a libnats thread and touch only the fields under
// mu_.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "jetstream.h"
#include "wald/client.h"

namespace wald::ship {

struct ShipOptions {
  std::string socket;
  NatsOptions nats;
  std::string stream;   // "": wald-<log id>
  std::string subject;  // "": wald.<log id>
  int replicas = 3;
  int64_t duplicate_window_ns = 0;  // 0: the server's default
  uint64_t release_delay_ns = 90'000'000'000;
  std::string hold = "wal-ship";
  bool once = false;
  bool json = false;
  int status_interval_ms = 1000;
};

// Exit codes of Run().
inline constexpr int kExitOk = 0;
inline constexpr int kExitFatal = 1;       // configuration, a stream of another log, wald lost the records
inline constexpr int kExitStreamLost = 3;  // the stream is behind what JetStream acked: NATS lost records

class Shipper final : public AckSink {
 public:
  // `stop` is set (by a signal handler) to end Run() cleanly.
  Shipper(ShipOptions options, const std::atomic<bool>* stop);
  ~Shipper() override;

  // Ships until stopped (or, with --once, until everything durable at
  // start-up is acked); returns the exit code.
  int Run();

  void Acked(uint64_t wald_seq, uint64_t stream_seq) override;
  void Failed(uint64_t wald_seq, std::string why, bool fatal) override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Session;  // one wald subscription, in shipper.cc

  Outcome RunSession();
  Outcome StartSession(Session* s);
  Outcome SetUpHold(Session* s, const StreamEnd& end);
  bool OnRecord(Session* s, const RecordInfo& r);
  void DrainAcks();
  Outcome MoveHold(Client* control, bool now);
  void Report(Client* control, bool force);
  void Summary();
  void Log(const char* level, const std::string& message);
  bool stopping() const { return stop_->load(std::memory_order_relaxed); }

  const ShipOptions options_;
  const std::atomic<bool>* stop_;
  std::unique_ptr<JetStream> js_;
  std::string log_id_;  // hex; set by the first session
  StreamSpec spec_;

  // Guarded by mu_: what libnats' thread reports.
  std::mutex mu_;
  std::vector<std::pair<uint64_t, uint64_t>> acks_;  // (wald seq, stream seq)
  std::string failure_;                              // the first failure since the last session start
  bool failure_fatal_ = false;
  std::atomic<bool> failed_{false};

  // Main thread only.
  uint64_t acked_stream_ = 0;  // the highest stream seq JetStream acked to this process
  uint64_t acked_wald_ = 0;    // the wald seq stored there
  uint64_t shipped_ = 0;       // acks this run
  uint64_t first_shipped_ = 0;
  uint64_t resumes_ = 0;
  uint64_t hold_seq_ = 0;
  uint64_t skip_gap_after_ = 0, skip_gap_to_ = 0;  // wald retired seqs (after, to): read from `to`
  // (wald seq, when acked): the hold moves to a seq once its ack is older
  // than the release delay.
  std::deque<std::pair<uint64_t, Clock::time_point>> acked_at_;
  bool once_target_set_ = false;
  uint64_t once_target_ = 0;  // --once: the durable seq at start-up
  bool once_done_ = false;
  bool ready_sent_ = false;
  // Status.
  uint64_t durable_ = 0;
  Clock::time_point caught_up_at_ = Clock::now();
  Clock::time_point last_report_{}, last_json_{}, last_hold_move_{};
  uint64_t shipped_at_last_report_ = 0;
  double rate_ = 0;
  std::string last_log_;
  Clock::time_point last_log_at_{};
};

}  // namespace wald::ship
