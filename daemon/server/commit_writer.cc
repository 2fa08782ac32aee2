#include "server/commit_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "storage/thread.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WALD_PAUSE() _mm_pause()
#else
#define WALD_PAUSE() std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

namespace wald::server {
namespace {
uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}
}  // namespace

CommitWriter::CommitWriter(std::unique_ptr<storage::LogWriter> log, size_t max_chunks, SpinOptions spin,
                           std::function<void()> notify)
    : log_(std::move(log)),
      log_id_(log_->log_id()),
      spin_(spin),
      notify_(std::move(notify)),
      full_(max_chunks),
      free_(max_chunks),
      durable_seq_(log_->durable_seq()),
      segment_salt_(log_->segment_salt()),
      trim_seq_(log_->first_seq() - 1),
      append_limit_(log_->AppendLimit()),
      retention_(log_->retention_enabled()),
      gap_avg_ns_(static_cast<double>(spin.spin_max_us) * 2000.0) {
  SnapshotHolds();
}

CommitWriter::~CommitWriter() { Stop(); }

void CommitWriter::Start() {
  thread_ = storage::StartSignalFreeThread([this] { Run(); });
}

void CommitWriter::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_seq_cst);
  parked_.store(0, std::memory_order_seq_cst);
  parked_.notify_one();
  thread_.join();
}

void CommitWriter::Submit(Chunk* c) {
  loop_role_.CheckOrBind();
  bool ok = full_.Push(c);
  (void)ok;  // cannot fail: the queue holds every chunk there is
}

void CommitWriter::Wake() {
  loop_role_.Check();
  // Dekker-style: the loop stores tail_ (Push) then loads parked_; the writer
  // stores parked_ then loads tail_ (IdleWait). All four are seq_cst, so at
  // least one side sees the other's store: the writer does not sleep on a
  // chunk it missed, and the loop makes the futex call only when needed.
  if (parked_.load() == 1 && parked_.exchange(0) == 1) parked_.notify_one();
}

Chunk* CommitWriter::TakeFree() {
  loop_role_.Check();
  Chunk* c = nullptr;
  return free_.Pop(&c) ? c : nullptr;
}

uint64_t CommitWriter::RequestTrim(uint64_t up_to) {
  loop_role_.CheckOrBind();
  // "Up to what exists now". Requests that wait together merge into the
  // highest target; the writer takes it (resetting it to 0) when it serves
  // them, so that a target a hold kept back is never applied by a later,
  // smaller trim once the hold moves.
  up_to = std::min(up_to, durable_seq());
  uint64_t cur = trim_target_.load();
  while (cur < up_to && !trim_target_.compare_exchange_weak(cur, up_to)) {
  }
  const uint64_t n = trim_requests_.fetch_add(1) + 1;
  Wake();
  return n;
}

void CommitWriter::RequestRetention() {
  if (!retention_) return;
  retain_asked_.store(true);
  Wake();
}

uint64_t CommitWriter::RequestHold(const std::string& name, uint64_t seq, bool release) {
  loop_role_.CheckOrBind();
  const uint64_t n = ++hold_numbers_;
  {
    std::lock_guard lk(holds_mu_);
    hold_ops_.push_back({n, name, seq, release});
    holds_queued_.store(true);
  }
  Wake();
  return n;
}

void CommitWriter::TakeHoldResults(std::vector<HoldResult>* out) {
  if (!results_ready_.load(std::memory_order_acquire)) return;  // the common case: no lock per batch
  std::lock_guard lk(holds_mu_);
  results_ready_.store(false, std::memory_order_relaxed);
  for (HoldResult& r : hold_results_) out->push_back(std::move(r));
  hold_results_.clear();
}

std::vector<HoldState> CommitWriter::holds() const {
  std::lock_guard lk(holds_mu_);
  return holds_;
}

bool CommitWriter::DoHolds() {
  std::vector<HoldOp> ops;
  {
    std::lock_guard lk(holds_mu_);
    ops.swap(hold_ops_);
    holds_queued_.store(false);
  }
  std::vector<HoldResult> results;
  for (const HoldOp& op : ops) {
    storage::Status st = op.release ? log_->ReleaseHold(op.name) : log_->SetHold(op.name, op.seq);
    // A refusal (a bad name, no such hold, below the trim point) is the
    // client's; anything that stopped the LogWriter is a failure.
    if (!log_->failure().ok()) return !Fail(log_->failure());
    HoldResult r{.number = op.number, .why = st.message()};
    if (st.ok()) {
      for (const storage::Hold& h : log_->holds()) {
        if (h.name == op.name) r.seq = h.seq;
      }
    } else if (st.code() == storage::Code::kNotFound) {
      r.outcome = op.release ? HoldResult::Outcome::kNoSuchHold : HoldResult::Outcome::kTrimmed;
      r.first_seq = log_->first_seq();
    } else {
      r.outcome = HoldResult::Outcome::kInvalid;
    }
    results.push_back(std::move(r));
  }
  // The policy first: a hold that moved may let it release at once, and the
  // client hears of its change only once the space is published.
  if (retention_ && !Retain()) return false;
  SnapshotHolds();
  {
    std::lock_guard lk(holds_mu_);
    for (HoldResult& r : results) hold_results_.push_back(std::move(r));
    results_ready_.store(true, std::memory_order_release);
  }
  return true;
}

bool CommitWriter::Retain() {
  std::vector<storage::Hold> dropped;
  const auto wall = std::chrono::system_clock::now().time_since_epoch();
  const auto now_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count());
  if (storage::Status st = log_->ApplyRetention(now_ns, &dropped); !st.ok()) return !Fail(st);
  for (const storage::Hold& h : dropped) {
    stats_.holds_invalidated.fetch_add(1, std::memory_order_relaxed);
    spdlog::error(
        "hold {} at seq {} invalidated: it lagged more than --max-hold-lag behind the end of the log (durable seq {}); "
        "the records above it may now be released. Its consumer must start again from the first seq held",
        h.name, h.seq, log_->durable_seq());
  }
  PublishSpace();
  if (!dropped.empty()) SnapshotHolds();
  return true;
}

void CommitWriter::SnapshotHolds() {
  std::vector<HoldState> now;
  for (const storage::Hold& h : log_->holds()) now.push_back({h.name, h.seq, log_->HoldLagBytes(h.seq)});
  std::lock_guard lk(holds_mu_);
  holds_.swap(now);
}

void CommitWriter::PublishSpace() {
  trim_seq_.store(log_->first_seq() - 1, std::memory_order_release);
  append_limit_.store(log_->AppendLimit(), std::memory_order_release);
}

bool CommitWriter::HasWork() const {
  return !full_.Empty() || trim_requests_.load() != trims_done_.load(std::memory_order_relaxed) ||
         holds_queued_.load() || retain_asked_.load() || stop_.load();
}

std::string CommitWriter::failure() const {
  std::lock_guard lk(failure_mu_);
  return failure_;
}

void CommitWriter::IdleWait() {
  const uint64_t start = NowNs();
  const double max_ns = spin_.spin_max_us * 1000.0;
  double budget = spin_.spin_min_us * 1000.0;
  if (gap_avg_ns_ < max_ns) budget = std::min(max_ns, std::max(budget, 2 * gap_avg_ns_));
  const uint64_t until = start + static_cast<uint64_t>(budget);
  bool arrived = false;
  do {
    for (int i = 0; i < 32; ++i) {
      if (HasWork()) {
        arrived = true;
        break;
      }
      WALD_PAUSE();
    }
  } while (!arrived && NowNs() < until);
  if (!arrived) {
    parked_.store(1);  // seq_cst: see Wake()
    if (!HasWork()) {
      parked_.wait(1, std::memory_order_acquire);
    }
    parked_.store(0, std::memory_order_relaxed);
  }
  // Learn the gap. A park that lasted long says "low load": the average goes
  // up and the next idle period parks early.
  const double gap = static_cast<double>(NowNs() - start);
  gap_avg_ns_ = 0.75 * gap_avg_ns_ + 0.25 * std::min(gap, 100 * max_ns);
}

// Fail-stop: publish the cause, then write nothing more and wait for Stop().
// Keeps the chunks; the process exits. Returns true (for `return` at callers).
bool CommitWriter::Fail(const storage::Status& st) {
  writer_role_.Check();
  {
    std::lock_guard lk(failure_mu_);
    failure_ = st.ToString();
  }
  failed_.store(true, std::memory_order_release);
  notify_();
  for (;;) {
    parked_.store(1);
    if (stop_.load()) return true;  // seq_cst: see Stop()
    parked_.wait(1);
  }
}

void CommitWriter::Run() {
  writer_role_.Bind();
  std::vector<Chunk*> batch;
  std::vector<storage::EncodedChunk> spans;
  batch.reserve(1024);
  spans.reserve(1024);
  // The policy applies from the start, not only after the first roll: it
  // may have been tightened since the last run.
  head_seen_ = log_->head_segment_seq();
  if (retention_) {
    if (!Retain()) return;
    notify_();  // the loop reads the limit it may have raised
  }
  for (;;) {
    // Group commit, capped (as LevelDB and RocksDB cap a write group): a
    // burst of staged chunks goes out as several batches of about
    // kMaxBatchBytes, each published as soon as its fdatasync returns, so the
    // first appends of a burst are acked without waiting for the last.
    Chunk* c;
    size_t bytes = 0;
    while (bytes < kMaxBatchBytes && full_.Pop(&c)) {
      batch.push_back(c);
      spans.push_back({std::span<std::byte>(c->data.get(), c->used), c->first_seq, c->last_seq, c->salt});
      bytes += c->used;
    }
    // Hold changes and trims are rare and run between batches, on this
    // thread, which owns every file. The trims asked for before the holds
    // are read first (req), then the holds change, then those trims run: a
    // hold is never overtaken by a trim asked for after it. A hold that
    // moved may let the retention policy release at once.
    const uint64_t req = trim_requests_.load();
    if (holds_queued_.load()) {
      if (!DoHolds()) return;
      notify_();
    }
    if (retain_asked_.load() && retain_asked_.exchange(false)) {
      if (!Retain()) return;
      notify_();  // the loop reads the new trim point and disk limit
    }
    if (req != trims_done_.load(std::memory_order_relaxed)) {
      // A request whose target is taken here but whose number came after
      // req is answered next round, by a Trim(0) that changes nothing.
      storage::Status st = log_->Trim(trim_target_.exchange(0));
      if (!st.ok() && Fail(st)) return;
      PublishSpace();
      trims_done_.store(req, std::memory_order_release);
      notify_();
    }
    if (batch.empty()) {
      if (stop_.load(std::memory_order_acquire) && full_.Empty()) {
        // A clean stop: everything handed over is durable; record it, so
        // that recovery can prove damage to any of it (FORMAT.md).
        close_status_ = log_->Close();
        return;
      }
      if (!HasWork()) IdleWait();
      continue;
    }
    const uint64_t t0 = NowNs();
    // The loop stamped this batch's first record with the durable seq it
    // knew, which lags by the sync in progress then. Here the previous batch's
    // fdatasync has returned: raise the stamp to what is durable now, so that
    // this batch proves every earlier one durable (one CRC per batch).
    (void)storage::RestampDurable(batch.front()->data.get(), log_->durable_seq(), batch.front()->salt);
    storage::Status st = log_->Append(spans);
    if (st.ok()) st = log_->Sync();
    if (!st.ok() && Fail(st)) return;
    const uint64_t durable = log_->durable_seq();
    stats_.syncs.fetch_add(1, std::memory_order_relaxed);
    stats_.records_per_sync.Add(durable - durable_seq_.load(std::memory_order_relaxed));
    stats_.sync_latency_us.Add((NowNs() - t0) / 1000);
    // Only now, after fdatasync returned 0, is the new seq published.
    durable_seq_.store(durable, std::memory_order_release);
    segment_salt_.store(log_->segment_salt(), std::memory_order_relaxed);  // after a roll: the new segment's
    append_limit_.store(log_->AppendLimit(), std::memory_order_release);
    for (Chunk* done : batch) {
      bool ok = free_.Push(done);  // the loop resets it: it accounts its bytes
      (void)ok;
    }
    batch.clear();
    spans.clear();
    notify_();
    // After the acks are out: a roll sealed a segment, so the policy may
    // release the oldest (a meta replace and unlinks, before the next batch),
    // and every hold lags a segment more.
    if (log_->head_segment_seq() != head_seen_) {
      head_seen_ = log_->head_segment_seq();
      if (retention_) {
        if (!Retain()) return;
        notify_();
      }
      SnapshotHolds();
    }
  }
}

}  // namespace wald::server
