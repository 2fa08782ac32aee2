// Server: wires the parts of the daemon's loop thread together and owns its
// state machine. The parts, each one thing:
//
//   listener      the listening socket, accept, the peer ACL
//   connection    one socket: reads, sends, one idempotent close
//   dispatch.cc   frames to handlers (this class's OnData and Handle*)
//   staging       seqs, records encoded into chunks, the hand-off
//   commit_writer the writer thread: batched write + fdatasync
//   ack_fanout    durable seq -> Acks and TrimAcks
//   backpressure  when reading stops (pure policy)
//   read_service  Read cursors on the thread pool
//   stop_signals  SIGTERM/SIGINT through a signalfd
//   health        summary line, watchdog, StatsReply
//
// Data path per record (no lock, no allocation, no syscall of its own):
// socket read (many frames) -> ParseFrame -> StagingPool::Stage (seq, encode)
// -> PendingAck on its connection. Once per loop iteration (uv_check) the
// current chunk goes to the writer. When the writer publishes a new durable
// seq (its doorbell, or the ack spin at low load), AckFanout sends each
// connection one Acks frame.
//
// States: kRunning -> kDraining (SIGTERM/SIGINT: stop accepting and reading,
// make everything received durable, ack it, close; exit 0) -> kStopped.
// kRunning or kDraining -> kFailed (the writer failed: every pending Append
// gets ServerFailed; exit 1) -> kStopped. Only Shutdown enters kStopped.
//
// Threads: every method runs on the loop thread (the one in Run(); debug
// builds check), except that the writer reaches the loop only through
// doorbell_.Ring().
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "framing.h"
#include "server/ack_fanout.h"
#include "server/connection.h"
#include "server/doorbell.h"
#include "server/health.h"
#include "server/listener.h"
#include "server/log_limiter.h"
#include "server/loop_handle.h"
#include "server/metrics_listener.h"
#include "server/options.h"
#include "server/producer_table.h"
#include "server/read_service.h"
#include "server/staging.h"
#include "server/stop_signals.h"
#include "server/thread_role.h"
#include "server/writer_port.h"
#include "storage/env.h"
#include "storage/format.h"

namespace wald::server {

class Server final : public ConnectionOwner {
 public:
  // Every file operation, the reads' too, goes through `env` (nullptr:
  // Env::Posix()); it must outlive the Server. Fault tests pass a FaultEnv.
  explicit Server(ServerOptions options, storage::Env* env = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens and recovers the log, starts the writer, binds and listens.
  // Errors name what failed (directory, lock, socket in use).
  storage::Status Start();
  // Start with a writer of the caller's making instead of the log's
  // CommitWriter (the in-process tests' fake). `make_writer` gets the number
  // of staging chunks and the callback to call after each batch.
  using WriterFactory = std::function<std::unique_ptr<WriterPort>(size_t n_chunks, std::function<void()> notify)>;
  storage::Status StartWith(const WriterFactory& make_writer, uint64_t next_seq, const storage::LogId& log_id);

  // Runs the loop until shutdown; returns the process exit code (0 after a
  // drain, 1 after a fail-stop).
  int Run();
  // One loop iteration without blocking (tests); false once stopped.
  bool RunOnce();
  // Serves an already connected socket (tests: one end of a socketpair) as
  // if it had been accepted. After Start, on the loop thread.
  void Adopt(int fd);
  // Starts a drain, as SIGTERM does. Loop thread.
  void BeginDrain(const char* why);

  std::string ReadyLine() const;
  // Run()'s result: 0 after a drain, 1 after a fail-stop (once stopped).
  int exit_code() const { return exit_code_; }
  // Connections not yet closed, closing ones included (tests).
  size_t live_connections() const { return connection_fds_; }

 private:
  // ConnectionOwner (dispatch.cc and here).
  size_t OnData(Connection* c, std::span<const uint8_t> data) override;
  void OnDrained(Connection* c) override;
  void OnClosing(Connection* c) override;
  void OnClosed(Connection* c) override;

  // Dispatch (dispatch.cc).
  enum class Outcome { kDone, kStall, kClosed };
  Outcome Dispatch(Connection* c, const proto::Message* msg);
  // Trims and holds (retention): false, with Error{NotPermitted} sent, for a
  // peer outside --allow-trim-uid/--allow-trim-gid.
  bool MayRetain(Connection* c, uint64_t request_id, std::string_view what);
  void RequestHold(Connection* c, uint64_t request_id, const flatbuffers::String* name, uint64_t seq, bool release);
  void HandleHello(Connection* c, const proto::Hello* h);
  Outcome HandleAppend(Connection* c, const proto::Append* a);
  Outcome HandleAppendBatch(Connection* c, const proto::AppendBatch* b);
  // For the `count` appends of request rid numbered from pseq (0: not
  // numbered), of `bytes` payload bytes (`batch`: an AppendBatch's): true if
  // they are to be appended; false if they were answered here (an Error, or
  // a duplicate's ack queued for the seqs its first copy got).
  bool AdmitProduced(Connection* c, uint64_t rid, uint64_t pseq, uint32_t count, uint64_t bytes, bool batch);
  // The admitted appends pseq.. of c were refused after all: their numbers
  // are used up (ProducerTable::Refuse), so that the next are no gap.
  void RefuseProduced(Connection* c, uint64_t pseq, uint32_t count);
  // The metadata wald stores with c's records.
  storage::RecordMeta MetaFor(const Connection* c) const;
  // Refuses an append for the disk budget (the connection stays).
  void RefuseForBudget(Connection* c, uint64_t request_id);
  void Reject(Connection* c, proto::ErrorCode code, std::string_view msg);
  // c now holds `bytes` of an incomplete frame: counts them against
  // --max-partial-bytes, and refuses c if its growth passes it.
  void CountPartial(Connection* c, uint64_t bytes);

  // Accepting, and the bounds on what clients may hold.
  void Accept();
  void Welcome(Connection* c);  // ACL, state and budget checks, then reading
  // Descriptors the clients hold: connections (counted from construction to
  // OnClosed) and the segments their read cursors hold open (shared among
  // cursors of one segment; opens under way on the pool threads may pass
  // this by a few, which kReservedFds absorbs).
  size_t fds_in_use() const { return connection_fds_ + reads_->open_files(); }
  // Closes connections past the Hello deadline, or past the frame deadline
  // with a frame begun.
  static void OnDeadlineSweep(uv_timer_t* h);
  // Logs a refusal or a rejected peer through limiter_.
  void LogRefusal(std::string_view what);

  // The data path.
  static void OnCheck(uv_check_t* h);
  static void OnRing(void* self);
  void AwaitDurable(uint64_t target);
  void OnWriterProgress();
  void RetryStalled();

  // Backpressure (backpressure.h): applies the policy to the sockets.
  void UpdateReading(Connection* c);
  void UpdateAllReading();
  bool GlobalPaused() const;
  bool UpdateGlobalPause();  // true if the global pause started or lifted
  bool MayRead(const Connection* c) const;

  // Stopping.
  static void OnDrainTimer(uv_timer_t* h);
  void CheckDrained();
  void FailStop();
  void Shutdown(int exit_code);  // stops the writer, then closes our handles
  // Closes every open handle of the Server's own (not the connections').
  // Only after the writer has stopped: it may ring doorbell_.
  void CloseOwnHandles();

  const ServerOptions options_;
  // Without an injected Env: Env::PosixAt(--dir), so that storage and reads
  // resolve names against the directory descriptor held since it was checked.
  const std::unique_ptr<storage::Env> own_env_;
  storage::Env* const env_;
  ThreadRole loop_role_{"loop"};
  uv_loop_t loop_{};
  bool loop_open_ = false;  // uv_loop_init succeeded; uv_loop_close is due
  Doorbell doorbell_;       // the writer's wake-up: a batch is durable, a request done, or it failed
  LoopHandle<uv_check_t> check_;
  LoopHandle<uv_timer_t> drain_timer_;     // the drain's deadline (--drain-timeout)
  LoopHandle<uv_timer_t> deadline_timer_;  // the sweep of --hello-timeout and --frame-timeout
  LoopHandle<uv_timer_t> retain_timer_;    // asks the writer to apply --retain-age

  Listener listener_;
  StopSignals stop_signals_;
  std::unique_ptr<WriterPort> writer_;
  std::unique_ptr<StagingPool> staging_;
  AckFanout acks_;
  std::unique_ptr<ReadService> reads_;
  std::unique_ptr<Health> health_;
  std::unique_ptr<MetricsListener> metrics_;  // --metrics-listen
  storage::LogId log_id_{};

  enum class State { kRunning, kDraining, kFailed, kStopped } state_ = State::kRunning;
  int exit_code_ = 0;
  uint64_t acked_seq_ = 0;     // durable seq the acks were sent for
  uint64_t last_acked_ = 0;    // records the last advance of acked_seq_ acked (the ack spin's load signal)
  uint64_t handed_early_ = 0;  // records OnData handed to an idle writer in this loop iteration
  uint64_t append_limit_ = 0;  // writer_->append_limit() at its last notification (only grows)
  uint32_t stamp_flags_ = 0;   // storage::kFlagTime / kFlagProducer, from --stamp
  // Idempotent producers: what the log holds of each, and which connection
  // speaks for each now (the last to say Hello with its id; older ones are
  // fenced).
  ProducerTable producers_;
  std::unordered_map<uint64_t, uint64_t> producer_owner_;  // producer id -> Connection::id
  bool republish_ = false;  // a duplicate's ack may be due at acked_seq_: Publish again at OnCheck

  uint64_t next_conn_id_ = 1;
  std::vector<Connection*> all_;  // every open connection (Connection::all_index)
  size_t connections_ = 0;        // all_.size(), for Health
  uint64_t partial_bytes_ = 0;    // incomplete frames held by all connections (--max-partial-bytes)
  size_t connection_fds_ = 0;     // Connections that exist (closing ones too)
  size_t fd_budget_ = 0;          // soft RLIMIT_NOFILE less kReservedFds
  // Storage calls waiting for descriptors now (EMFILE/ENFILE; fd_retry.h):
  // while any do, new connections and new Reads are refused. Counted by the
  // writer's and the preparer's threads, read by the loop.
  std::atomic<int> storage_fd_waiters_{0};
  LogLimiter limiter_{20, 10'000'000'000};  // refusals and rejects: 20 lines per 10 s
  std::vector<HoldResult> hold_results_;    // OnAsync's, reused
  std::vector<Connection*> stalled_;        // held-back frames wait for a staging chunk
  // Closing after their last frame (SendAndClose): out of all_, but a stop
  // must wait for them or close them, or their write holds the loop open.
  std::vector<Connection*> finishing_;
  std::vector<Connection*> walk_;  // a copy of all_ or stalled_ to walk while callees close
  bool global_paused_ = false;

  std::vector<uint8_t> read_buf_;       // shared by all connections
  std::vector<uint8_t> frame_scratch_;  // for frames that arrive misaligned
  proto::FrameBuilder fb_{4096};
  LoopStats stats_;
};

}  // namespace wald::server
