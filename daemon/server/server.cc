#include "server/server.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <cassert>

#include "server/backpressure.h"
#include "server/commit_writer.h"
#include "server/openmetrics.h"
#include "server/systemd.h"
#include "storage/log_writer.h"

namespace wald::server {
namespace {

constexpr size_t kReadBufSize = 256 << 10;
constexpr size_t kMinChunk = 256 << 10;
constexpr uint64_t kAckSpinMaxBatch = 2;
// Descriptors kept for storage (lock, segments, the next segment, meta
// replace, directory syncs, the pool's directory scans) and libuv (epoll,
// eventfd, signalfd, listener, and the one an accept needs to refuse).
constexpr size_t kReservedFds = 64;
constexpr uint64_t kDeadlineSweepMs = 1000;
constexpr uint64_t kRetainCheckMs = 1000;  // how often --retain-age looks at the oldest segment

// Recovery's findings, in the daemon's log.
struct LogReporter : storage::Reporter {
  void Report(Kind kind, const std::string& file, uint64_t offset, uint64_t bytes, std::string_view reason) override {
    if (kind == Kind::kTornTail) {
      spdlog::info("recovery: cut a torn tail of {} bytes at {} offset {}: {}", bytes, file, offset, reason);
    } else if (kind == Kind::kGap) {
      spdlog::warn(
          "salvage: seqs {}..{} are retired and never handed out again (some may have been acked); "
          "the log goes on at seq {} in {}",
          offset, offset + bytes - 1, offset + bytes, file);
    } else {
      spdlog::error("recovery: damage at {} offset {} ({} bytes): {}", file, offset, bytes, reason);
    }
  }
};

}  // namespace

Server::Server(ServerOptions options, storage::Env* env)
    : options_(std::move(options)),
      own_env_(env != nullptr ? nullptr : storage::Env::PosixAt(options_.dir)),
      env_(env != nullptr ? env : own_env_.get()),
      listener_({options_.socket, options_.socket_mode, options_.listen_fd}, [this] { Accept(); }),
      stop_signals_([this](const char* why) {
        if (state_ == State::kRunning) {
          BeginDrain(why);
        } else {
          spdlog::warn("{} again: still stopping", why);
        }
      }),
      acks_([this](Connection* c) { UpdateReading(c); }),
      producers_({options_.producer_window, options_.max_inflight, options_.max_producers}) {
  read_buf_.resize(kReadBufSize);
}

Server::~Server() {
  // After Run() everything is closed already. Otherwise (Start failed
  // half-way, or Run was never called) the same order as Shutdown: the writer
  // first, since it may still ring doorbell_, then the connections
  // and handles that are open, then their close callbacks.
  // The writer goes entirely, its log and the log's segment preparer with
  // it, before any descriptor of the loop's is closed: libuv closes them with
  // a raw syscall that ThreadSanitizer does not see, and a storage thread
  // reusing the number would be reported as a race. The parts that point at
  // the writer are not called again: the state is kStopped, and closes run
  // only OnClosing (which does not use it).
  state_ = State::kStopped;
  writer_.reset();
  walk_ = all_;
  walk_.insert(walk_.end(), finishing_.begin(), finishing_.end());
  for (Connection* c : walk_) c->Close();
  CloseOwnHandles();
  if (loop_open_) {
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (int rc = uv_loop_close(&loop_); rc != 0) spdlog::error("closing the event loop: {}", uv_strerror(rc));
  }
}

static_assert(storage::kMaxPayload + proto::kAppendOverhead <= proto::kMaxFrameSize,
              "a client would refuse the HelloAck of a daemon at the largest --max-record");

storage::Status Server::Start() {
  if (options_.max_record > storage::kMaxPayload || storage::EncodedSize(options_.max_record, storage::kMaxMetaSize) >
                                                        options_.segment_size - storage::kSegmentHeaderSize) {
    return storage::Status::InvalidArgument("--max-record " + std::to_string(options_.max_record) +
                                            " does not fit in a segment of " + std::to_string(options_.segment_size) +
                                            " bytes");
  }
  storage::LogOptions lo;
  lo.segment_size = options_.segment_size;
  lo.recovery.verify = options_.verify;
  lo.recovery.salvage = options_.salvage;
  static LogReporter reporter;
  lo.recovery.reporter = &reporter;
  lo.retain_bytes = options_.retain_bytes;
  lo.retain_age_ns = options_.retain_age_ms * 1000000;
  lo.max_hold_lag = options_.max_hold_lag;
  lo.max_disk = options_.max_disk;
  lo.recycle = options_.recycle;
  lo.max_record_bytes = storage::EncodedSize(options_.max_record, storage::kMaxMetaSize);
  lo.on_fd_wait = [this](bool waiting, const storage::Status& why) {
    // The writer and the segment preparer may each wait: count them, and
    // say only the first start and the last end.
    const int before = storage_fd_waiters_.fetch_add(waiting ? 1 : -1);
    if (before != (waiting ? 0 : 1)) return;
    if (waiting) {
      spdlog::warn(
          "storage is out of file descriptors ({}): its writes wait (nothing fails, nothing is acked "
          "early) and new connections are refused until descriptors are free",
          why.ToString());
    } else {
      spdlog::info("storage has file descriptors again; new connections are accepted");
    }
  };
  // Recovery scans the newest segment (all of them with --verify-on-open all):
  // ask systemd for time, and say what we are doing.
  systemd::Notify("EXTEND_TIMEOUT_USEC=120000000\nSTATUS=recovering the log in " + options_.dir);
  auto log = storage::LogWriter::Open(env_, options_.dir, lo);
  if (!log.ok()) return log.take_status();
  const uint64_t next_seq = (*log)->next_seq();
  const storage::LogId log_id = (*log)->log_id();
  // Exactly-once across a restart: the producers' table as the log has it.
  const uint64_t rebuild_start = uv_hrtime();
  auto scanned = RebuildProducers(env_, options_.dir, next_seq, &producers_);
  uint64_t read_back = 0;
  if (scanned.ok()) {
    read_back = *scanned;
  } else if (scanned.status().code() != storage::Code::kCorruption) {
    return scanned.take_status();  // an I/O error: as any at start
  } else {
    // Damage in a sealed segment does not stop wald from serving (a Read of
    // it fails, wal-tail --verify names it): nor does it here. But what the
    // table would have said past the damage is unknown, so it starts empty,
    // and a producer's resend of an append from before this start may be
    // written twice.
    spdlog::error(
        "producers: reading the last {} records back (--producer-window) failed: {}. Idempotent producers are "
        "forgotten: appends they resend now may be written twice",
        options_.producer_window, scanned.status().ToString());
    producers_.Clear();
  }
  stats_.producers = producers_.size();
  if (producers_.size() > 0) {
    spdlog::info("producers: {} idempotent producers found in the last {} records (--producer-window {}) in {} ms",
                 producers_.size(), read_back, options_.producer_window, (uv_hrtime() - rebuild_start) / 1000000);
  }
  auto make_writer = [this, &log](size_t n_chunks, std::function<void()> notify) {
    auto w = std::make_unique<CommitWriter>(std::move(*log), n_chunks, options_.spin, std::move(notify));
    w->Start();
    return w;
  };
  return StartWith(make_writer, next_seq, log_id);
}

storage::Status Server::StartWith(const WriterFactory& make_writer, uint64_t next_seq, const storage::LogId& log_id) {
  if (int rc = uv_loop_init(&loop_); rc != 0) return storage::Status::IoError("uv_loop_init", -rc);
  loop_open_ = true;
  log_id_ = log_id;
  stamp_flags_ = options_.stamp & (storage::kFlagTime | storage::kFlagProducer);

  // Only the doorbell can fail here (it creates an eventfd).
  if (int rc = doorbell_.Open(&loop_, OnRing, this); rc != 0)
    return storage::Status::IoError("the writer's doorbell (eventfd, uv_poll)", -rc);
  uv_check_init(&loop_, check_.get());
  check_.Opened(this);
  uv_check_start(check_.get(), OnCheck);
  uv_timer_init(&loop_, drain_timer_.get());
  drain_timer_.Opened(this);
  uv_timer_init(&loop_, deadline_timer_.get());
  deadline_timer_.Opened(this);
  if (options_.hello_timeout_ms > 0 || options_.frame_timeout_ms > 0) {
    uv_timer_start(deadline_timer_.get(), OnDeadlineSweep, kDeadlineSweepMs, kDeadlineSweepMs);
  }
  uv_timer_init(&loop_, retain_timer_.get());
  retain_timer_.Opened(this);
  rlimit nofile{};
  const size_t soft = ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY
                          ? static_cast<size_t>(nofile.rlim_cur)
                          : size_t{1} << 20;
  fd_budget_ = soft > 2 * kReservedFds ? soft - kReservedFds : soft / 2;
  // Before the writer's and the pool's threads exist, so that they inherit
  // the blocked stop signals.
  if (options_.handle_stop_signals) WALD_RETURN_IF_ERROR(stop_signals_.Start(&loop_));

  // Staging chunks: enough for max_unsynced_bytes, plus slack so that the
  // loop can fill one while the writer holds the rest.
  const size_t chunk_size = std::max(kMinChunk, storage::EncodedSize(options_.max_record, storage::kMaxMetaSize));
  const size_t n_chunks = std::max<size_t>(8, options_.max_unsynced_bytes / chunk_size + 4);
  writer_ = make_writer(n_chunks, [this] { doorbell_.Ring(); });
  acked_seq_ = writer_->durable_seq();
  append_limit_ = writer_->append_limit();
  if (options_.retain_age_ms > 0) {
    // An age passes without any roll: ask the writer now and then.
    uv_timer_start(
        retain_timer_.get(), [](uv_timer_t* h) { static_cast<Server*>(h->data)->writer_->RequestRetention(); },
        kRetainCheckMs, kRetainCheckMs);
  }
  staging_ = std::make_unique<StagingPool>(chunk_size, n_chunks, next_seq, writer_.get());
  reads_ = std::make_unique<ReadService>(
      &loop_, options_.dir, env_, writer_.get(),
      ReadLimits{options_.max_reads_per_connection, options_.max_connection_bytes,
                 uint64_t{proto::kRecordsChunk} + options_.max_record},
      [this] { return fds_in_use() < fd_budget_ && storage_fd_waiters_.load(std::memory_order_relaxed) == 0; });
  health_ = std::make_unique<Health>(
      HealthSources{&stats_, &acks_.latency_us(), &connections_, staging_.get(), writer_.get(), &storage_fd_waiters_});
  health_->Start(&loop_, options_.stats_interval_s);
  spdlog::info("limits: {} connections (--max-connections {}, {} descriptors less {} kept for storage), {} Reads each",
               std::min<size_t>(options_.max_connections, fd_budget_), options_.max_connections, soft, kReservedFds,
               options_.max_reads_per_connection);
  if (!options_.metrics_listen.empty()) {
    metrics_ = std::make_unique<MetricsListener>([this] { return FormatOpenMetrics(health_->Snapshot(), 0); });
    WALD_RETURN_IF_ERROR(metrics_->Start(&loop_, options_.metrics_listen));
    spdlog::info("metrics: GET /metrics on {}", options_.metrics_listen);
  }
  return listener_.Start(&loop_);
}

std::string Server::ReadyLine() const {
  return "log " + storage::LogIdToString(log_id_) + ", durable seq " + std::to_string(writer_->durable_seq()) +
         ", dir " + options_.dir + ", socket " + listener_.Describe();
}

int Server::Run() {
  loop_role_.Bind();
  spdlog::info("ready: {}", ReadyLine());
  // READY only now: recovery is done and the socket listens.
  systemd::Notify("READY=1\nSTATUS=ready: " + ReadyLine());
  uv_run(&loop_, UV_RUN_DEFAULT);
  return exit_code_;
}

bool Server::RunOnce() {
  loop_role_.Bind();
  uv_run(&loop_, UV_RUN_NOWAIT);
  return state_ != State::kStopped;
}

// ---- The data path: hand-off, the ack spin, the writer's progress ----

void Server::OnCheck(uv_check_t* h) {
  // Once per loop iteration: whatever arrived in this iteration is one batch
  // (less what OnData handed to an idle writer already).
  auto* s = static_cast<Server*>(h->data);
  // The batch the writer takes next: this hand-off's records, or else those
  // OnData handed to it early. Never both: the early ones are syncing
  // already, and this hand-off's wait for the fdatasync after theirs.
  const uint64_t late = s->staging_->HandOff();
  const uint64_t early = std::exchange(s->handed_early_, 0);
  const uint64_t n = late > 0 ? late : early;
  if (s->republish_) {
    // A duplicate whose first copy is durable already: no new durable seq
    // will come for it.
    s->republish_ = false;
    s->acks_.Publish(s->acked_seq_, uv_hrtime());
  }
  // Spin only for a small batch that the writer will take at once: with an
  // earlier batch still syncing, the wait would span two fdatasyncs while
  // other clients' records wait unread (at W4, 16x1, spinning then cost 37 us
  // of CPU per record and a quarter of the throughput). And only when the
  // acks before it were few: after a large fan-out, the clients' next
  // records are on their way, and a small batch is just the first of them
  // (at W2, 64x1, spinning there cost 10-20% of the throughput).
  const uint64_t last = s->staging_->next_seq() - 1;
  if (n > 0 && n <= kAckSpinMaxBatch && s->last_acked_ <= kAckSpinMaxBatch && s->state_ == State::kRunning &&
      s->writer_->durable_seq() + n >= last) {
    s->AwaitDurable(last);
  }
}

// At low load a batch is one record and its ack is one fdatasync away. The
// writer would wake this thread with its doorbell (an eventfd write, then an
// epoll wake-up and a context switch: ~30-50 us on this VM). Waiting for the
// durable seq here instead, with a pause-spin on the atomic, sends the ack as
// soon as the fdatasync returns. Only small batches qualify (under load the
// loop has reading to do), and only up to ack_spin_us: a slow sync falls back
// to the doorbell. Costs a core while it waits, at a load where cores
// are idle.
void Server::AwaitDurable(uint64_t target) {
  if (options_.ack_spin_us == 0) return;
  const uint64_t deadline = uv_hrtime() + uint64_t{options_.ack_spin_us} * 1000;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (writer_->durable_seq() >= target || writer_->failed()) {
        OnWriterProgress();
        return;
      }
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (uv_hrtime() > deadline) return;
  }
}

void Server::OnRing(void* self) { static_cast<Server*>(self)->OnWriterProgress(); }

void Server::OnWriterProgress() {
  loop_role_.Check();
  if (state_ == State::kStopped) return;
  const uint64_t durable = writer_->durable_seq();
  if (durable > acked_seq_) {
    last_acked_ = durable - acked_seq_;
    acked_seq_ = durable;
    acks_.Publish(durable, uv_hrtime());
  }
  if (writer_->failed()) {
    FailStop();
    return;
  }
  reads_->OnDurable(durable);
  acks_.AnswerTrims(writer_->trims_done(), writer_->trim_seq(), [this] { return writer_->holds(); });
  writer_->TakeHoldResults(&hold_results_);
  acks_.AnswerHolds(hold_results_);
  hold_results_.clear();
  // After the answers: the writer publishes the space a trim or a hold's
  // release freed before it says the request is done, so a client that
  // appends once it has its answer finds the room.
  append_limit_ = writer_->append_limit();
  // Recycle chunks, then let stalled and paused connections go on.
  staging_->Recycle();
  RetryStalled();
  if (global_paused_ && !GlobalPaused()) UpdateAllReading();
  if (state_ == State::kDraining) CheckDrained();
}

void Server::RetryStalled() {
  if (stalled_.empty() || !staging_->has_free()) return;
  assert(walk_.empty());
  walk_.swap(stalled_);
  for (Connection* c : walk_) {
    if (!c->stalled) continue;  // closed earlier in this walk
    c->stalled = false;
    c->Replay();
    if (!c->closing()) UpdateReading(c);
  }
  walk_.clear();
}

// ---- Backpressure ----

bool Server::GlobalPaused() const {
  return GlobalPause(global_paused_, {staging_->staged_bytes(), staging_->exhausted(), !stalled_.empty()},
                     {options_.max_unsynced_bytes, options_.max_inflight, options_.max_connection_bytes});
}

void Server::UpdateAllReading() {
  UpdateGlobalPause();
  for (Connection* c : all_) c->SetReading(MayRead(c));
}

// One connection's load changed. A change of the global pause reaches every
// connection, in one pass: nothing here calls back into it.
void Server::UpdateReading(Connection* c) {
  if (UpdateGlobalPause()) {
    for (Connection* o : all_) o->SetReading(MayRead(o));
    return;
  }
  c->SetReading(MayRead(c));
}

bool Server::UpdateGlobalPause() {
  const bool was = global_paused_;
  global_paused_ = GlobalPaused();
  if (global_paused_ && !was) {
    ++stats_.backpressure_events;
    spdlog::debug("pausing all reads: {} bytes not yet durable", staging_->staged_bytes());
  }
  return global_paused_ != was;
}

bool Server::MayRead(const Connection* c) const {
  return state_ == State::kRunning && !global_paused_ && !c->stalled &&
         ConnectionMayRead({c->pending_records, c->pending_bytes, c->unsent()},
                           {options_.max_unsynced_bytes, options_.max_inflight, options_.max_connection_bytes});
}

}  // namespace wald::server

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer builds only. libuv closes descriptors with
// syscall(SYS_close), which TSan does not see (google/sanitizers#1376; libuv
// annotates it only when libuv itself is built with TSan, libuv#3112, and
// Debian's is not). To TSan a closed socket's descriptor then stays open, and
// when a pool thread reuses the number for LogReader::Open's directory scan,
// its closedir is reported as a race with the loop thread's last read,
// write or epoll_ctl on the old socket. (opendir's open happens inside glibc,
// so TSan does not see the descriptor being created anew, as it does for
// open and accept4.) ListDir's DIR is its own, so a report with closedir on
// one side is always this reuse.
extern "C" const char* __tsan_default_suppressions() { return "race:closedir\n"; }
#endif
