// Server: the libuv loop thread and everything it owns: the listening socket,
// the connections, framing and dispatch, seq assignment, staging of encoded
// records, the hand-off to the CommitWriter, and the acks.
//
// Threads: every method runs on the loop thread (the one that calls Run()),
// except the CommitWriter's thread, which reaches the loop only through
// uv_async_send on async_.
//
// Data path per record (no lock, no allocation, no syscall of its own):
// read (many frames per read) -> ParseFrame (verifier) -> seq = next_seq_++ ->
// encode into the current staging chunk -> PendingAck on its connection.
// Once per loop iteration (uv_check) the current chunk goes to the writer.
// When the writer publishes a new durable seq (uv_async), every connection
// with pending acks at or below it gets one Acks frame (one write).
//
// Backpressure: reading stops on every socket while more than
// max_unsynced_bytes are staged but not durable (or no staging chunk is
// free), and on one socket while its unacked payload plus unsent output
// exceeds max_connection_bytes or it has max_inflight unacked Appends.
//
// Shutdown: SIGTERM/SIGINT drain (stop accepting and reading, make everything
// received durable, ack it, close, exit 0). A writer failure fails every
// pending Append with ServerFailed and exits 1 (fail-stop).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framing.h"
#include "server/commit_writer.h"
#include "server/connection.h"
#include "server/options.h"
#include "server/read_cursor.h"
#include "storage/env.h"

namespace wald::server {

struct LoopStats {
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t rejected_frames = 0;
  uint64_t backpressure_events = 0;
  Histogram ack_latency_us;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens and recovers the log, starts the writer, binds and listens.
  // Errors name what failed (directory, lock, socket in use).
  storage::Status Start();
  // Runs the loop until shutdown; returns the process exit code (0 after a
  // drain, 1 after a fail-stop).
  int Run();

  // Called once, with READY details, after Start succeeded and before Run
  // (for systemd notification by main).
  std::string ReadyLine() const;

 private:
  // libuv callbacks
  static void OnConnection(uv_stream_t* listener, int status);
  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void OnWrite(uv_write_t* req, int status);
  static void OnClose(uv_handle_t* h);
  static void OnCheck(uv_check_t* h);
  static void OnAsync(uv_async_t* h);
  static void OnSignal(uv_poll_t* h, int status, int events);
  static void OnStatsTimer(uv_timer_t* h);
  static void OnWatchdogTimer(uv_timer_t* h);
  static void OnDrainTimer(uv_timer_t* h);

  storage::Status WatchStopSignals();
  storage::Status Listen();
  void Accept();
  // Parses and dispatches frames in [data, data+len); keeps an incomplete
  // tail (or, when stalled, everything unprocessed) in c->partial.
  void Consume(Connection* c, const uint8_t* data, size_t len, uint64_t now_ns);
  // False: no staging chunk is free; the frame must wait.
  enum class Outcome { kDone, kStall, kClosed };
  Outcome Dispatch(Connection* c, const proto::Message* msg, uint64_t now_ns);
  Outcome HandleAppend(Connection* c, const proto::Append* a, uint64_t now_ns);
  void HandleHello(Connection* c, const proto::Hello* h);
  void HandleStats(Connection* c, const proto::StatsRequest* r);
  void HandleRead(Connection* c, const proto::Read* r);
  void HandleTrim(Connection* c, const proto::Trim* t);
  void HandleCancelRead(Connection* c, const proto::CancelRead* m);

  // Reads (read_cursor.h): queue a chunk on the pool, park at the durable
  // end, or wait for the connection's output to drain.
  static void OnReadWork(uv_work_t* w);
  static void OnReadDone(uv_work_t* w, int status);
  // Parks, blocks or queues r. Sends nothing and closes nothing, so callers
  // may walk a list of cursors around it.
  void ContinueRead(ReadCursor* r);
  void QueueRead(ReadCursor* r);
  void EndRead(ReadCursor* r);

  Chunk* TakeChunk();
  void Recycle();         // takes back every chunk the writer is done with
  void Submit(Chunk* c);  // hands a chunk to the writer and wakes it
  // Returns the number of records handed to the writer (0: none).
  uint64_t HandOff();
  void AwaitDurable(uint64_t target);
  void OnWriterProgress();
  void AckUpTo(Connection* c, uint64_t durable, uint64_t now_ns);
  void RetryStalled(uint64_t now_ns);

  void Send(Connection* c, std::span<const uint8_t> frame);
  void StartWrite(Connection* c);
  void SendErrorAndClose(Connection* c, uint64_t request_id, proto::ErrorCode code, std::string_view msg);
  void Close(Connection* c);
  void UpdateReading(Connection* c);
  void UpdateAllReading();
  bool GlobalPaused() const;

  void BeginDrain(const char* why);
  void CheckDrained();
  void FailStop();
  // Stops the writer, then closes the Server's own handles.
  void Shutdown(int exit_code);

  // The Server's own uv handles each carry their state: only an initialised
  // handle may be closed (uv_close on a zeroed one follows a null loop
  // pointer), and only once. Start may stop half-way, and the stop-signal
  // handle exists only with handle_stop_signals, so Shutdown and ~Server
  // close exactly the kOpen ones.
  enum class HandleState : uint8_t { kUnopened, kOpen, kClosed /* uv_close called */ };
  template <typename Handle>
  static void CloseHandle(Handle* handle, HandleState* state);
  // Closes every kOpen handle of the Server's own (not the connections').
  // Call only after the writer has stopped: it may uv_async_send on async_.
  void CloseOwnHandles();

  const ServerOptions options_;
  uv_loop_t loop_{};
  bool loop_open_ = false;  // uv_loop_init succeeded; uv_loop_close is due
  uv_pipe_t listener_{};
  HandleState listener_state_ = HandleState::kUnopened;
  uv_async_t async_{};
  HandleState async_state_ = HandleState::kUnopened;
  uv_check_t check_{};
  HandleState check_state_ = HandleState::kUnopened;
  // SIGTERM and SIGINT arrive through a signalfd, never through a handler:
  // WatchStopSignals() blocks them in the loop thread, every other thread
  // either inherits that block (libuv's pool) or blocks every signal (the
  // writer, the segment preparer), and the kernel keeps them queued for the
  // loop to read. libuv's uv_signal runs a handler on whatever thread the
  // kernel picks; under ThreadSanitizer such a SIGTERM was sometimes lost and
  // wald never drained (a CI hang: the second SIGTERM always worked).
  uv_poll_t signal_poll_{};
  HandleState signal_poll_state_ = HandleState::kUnopened;
  int signal_fd_ = -1;
  uv_timer_t stats_timer_{};
  HandleState stats_timer_state_ = HandleState::kUnopened;
  uv_timer_t watchdog_timer_{};
  HandleState watchdog_timer_state_ = HandleState::kUnopened;
  uv_timer_t drain_timer_{};  // the drain's deadline (--drain-timeout)
  HandleState drain_timer_state_ = HandleState::kUnopened;
  bool owns_socket_file_ = false;

  std::unique_ptr<storage::Env> fault_env_;  // test builds only
  storage::Env* env_ = nullptr;              // every file operation, the reads' too: fault_env_ or Env::Posix()
  std::unique_ptr<CommitWriter> writer_;
  std::string log_id_hex_;
  storage::LogId log_id_{};

  enum class State { kRunning, kDraining, kFailed, kStopped } state_ = State::kRunning;
  int exit_code_ = 0;

  // Staging (loop thread).
  std::vector<std::unique_ptr<Chunk>> chunks_;  // every chunk there is
  std::vector<Chunk*> free_chunks_;
  Chunk* current_ = nullptr;
  uint64_t next_seq_ = 1;          // seq of the next accepted Append
  uint32_t stamp_flags_ = 0;       // storage::kFlagTime / kFlagProducer, from --stamp
  uint64_t recv_time_ns_ = 0;      // wall clock of the socket read being consumed
  uint64_t staged_bytes_ = 0;      // encoded bytes handed out but not yet recycled
  uint64_t acked_seq_ = 0;         // durable seq the acks were sent for
  uint64_t submitted_chunks_ = 0;  // handed to the writer (watchdog: idle?)
  uint64_t recycled_chunks_ = 0;   // handed back
  uint64_t watchdog_syncs_ = 0;    // writer syncs at the last watchdog tick

  // Connections.
  uint64_t next_conn_id_ = 1;
  std::vector<Connection*> all_;
  std::vector<Connection*> ack_list_;  // connections with pending acks
  std::vector<Connection*> ack_walk_;  // OnWriterProgress's walk: ack_list_ swapped out
  std::vector<Connection*> stalled_;
  std::vector<ReadCursor*> parked_;  // following cursors at the durable end
  struct PendingTrim {
    Connection* conn;
    uint64_t request_id;
    uint64_t number;  // CommitWriter::RequestTrim's
  };
  std::vector<PendingTrim> trims_;
  bool global_paused_ = false;

  std::vector<uint8_t> read_buf_;       // shared by all connections
  std::vector<uint8_t> frame_scratch_;  // for frames that arrive misaligned
  proto::FrameBuilder fb_{4096};
  std::vector<proto::AckEntry> ack_scratch_;
  LoopStats stats_;
  uint64_t start_ns_ = 0;
  uint64_t last_logged_records_ = 0;
  uint64_t last_logged_ns_ = 0;
};

}  // namespace wald::server
