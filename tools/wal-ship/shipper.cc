#include "shipper.h"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <random>
#include <thread>

namespace wald::ship {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

std::string Hex(const LogId& id) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : id) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

std::string WaldError(const std::string& what, const Error& e) {
  return what + ": " + error_code_name(e.code) + (e.message.empty() ? "" : " (" + e.message + ")");
}

}  // namespace

struct Shipper::Session {
  std::optional<Client> sub;      // the subscription
  std::optional<Client> control;  // holds and stats
  uint64_t next_expected = 0;     // the stream seq the next publish expects last
  uint64_t from = 0;              // the first wald seq read
  uint64_t last_read = 0;         // the last wald seq handed to JetStream (0: none yet)
  std::optional<Error> ended;     // the subscription's end
  bool reading_done = false;      // --once: everything up to the target is published
  // The subscription's done callback writes `ended`: close it first.
  ~Session() { sub.reset(); }
};

Shipper::Shipper(ShipOptions options, const std::atomic<bool>* stop) : options_(std::move(options)), stop_(stop) {}

Shipper::~Shipper() {
  // Acks may still arrive on libnats' threads while the connection closes:
  // close it, and wait for those threads, while the fields they touch live.
  js_.reset();
  nats_CloseAndWait(2000);
}

void Shipper::Log(const char* level, const std::string& message) {
  // The same retry message at most once every 10 s: an outage must not
  // flood the journal.
  const auto now = Clock::now();
  if (message == last_log_ && now - last_log_at_ < std::chrono::seconds(10)) return;
  last_log_ = message;
  last_log_at_ = now;
  if (isatty(STDERR_FILENO)) std::fputs("\r\033[K", stderr);
  std::fprintf(stderr, "wal-ship: %s: %s\n", level, message.c_str());
}

void Shipper::Acked(uint64_t wald_seq, uint64_t stream_seq) {
  std::lock_guard<std::mutex> l(mu_);
  acks_.emplace_back(wald_seq, stream_seq);
}

void Shipper::Failed(uint64_t wald_seq, std::string why, bool fatal) {
  std::lock_guard<std::mutex> l(mu_);
  if (failure_.empty() || (fatal && !failure_fatal_)) {
    failure_ = "publish of seq " + std::to_string(wald_seq) + " failed: " + why;
    failure_fatal_ = fatal;
  }
  failed_.store(true, std::memory_order_release);
}

int Shipper::Run() {
  std::mt19937 rng(std::random_device{}());
  auto backoff = milliseconds(50);
  int code = kExitOk;
  while (!stopping()) {
    const uint64_t shipped_before = shipped_;
    Outcome o = RunSession();
    // What a failed session left in flight is forgotten (a stop waits for it).
    if (js_ && !o.ok()) js_->DropPending();
    if (o.kind == Outcome::kFatal) {
      Log("error", o.message);
      code = o.message.rfind("JetStream lost", 0) == 0 ? kExitStreamLost : kExitFatal;
      break;
    }
    if (once_done_ || stopping()) break;
    Log("warning", o.message + "; resuming from the stream's end");
    ++resumes_;
    if (shipped_ > shipped_before) backoff = milliseconds(50);
    // Bounded back-off with jitter, so that two wal-ships take turns.
    const auto wait = milliseconds(std::uniform_int_distribution<int64_t>(backoff.count() / 2, backoff.count())(rng));
    for (auto until = Clock::now() + wait; Clock::now() < until && !stopping();) {
      std::this_thread::sleep_for(milliseconds(20));
      DrainAcks();
    }
    if (ready_sent_) (void)sd_notify(0, "WATCHDOG=1");
    backoff = std::min(backoff * 2, milliseconds(2000));
  }
  if (code == kExitOk && js_) {
    (void)js_->WaitPending(2000);  // what was published gets its ack counted
    DrainAcks();
  }
  if (code == kExitOk) Summary();
  (void)sd_notify(0, "STOPPING=1");
  return code;
}

Outcome Shipper::RunSession() {
  Session s;
  if (Outcome o = StartSession(&s); !o.ok()) return o;
  if (!ready_sent_) {
    (void)sd_notify(0, "READY=1");
    ready_sent_ = true;
  }
  Report(&*s.control, true);
  while (!stopping()) {
    if (s.sub && s.sub->connected()) {
      if (Error e = s.sub->poll(100); !e.ok() && !s.ended) return Outcome::Retry(WaldError("wald", e));
    } else {
      std::this_thread::sleep_for(milliseconds(10));
    }
    if (failed_.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> l(mu_);
      return failure_fatal_ ? Outcome::Fatal(failure_) : Outcome::Retry(failure_);
    }
    DrainAcks();
    if (s.ended && !s.ended->ok()) {
      const Error e = *s.ended;
      if (e.code == ErrorCode::kSeqGap) {
        // A salvage retired the seqs after the last record read: they never
        // held records. Once the stream ends at that record, read on after
        // the gap (a stream that ends earlier gets the records before it
        // first).
        const uint64_t after = s.last_read != 0 ? s.last_read : s.from - 1;
        Log("warning", "wald retired seqs " + std::to_string(after + 1) + " to " + std::to_string(e.first_seq - 1) +
                           " (a salvage): shipping on from " + std::to_string(e.first_seq));
        skip_gap_after_ = after;
        skip_gap_to_ = e.first_seq;
        return Outcome::Retry("seq gap");
      }
      if (e.code == ErrorCode::kTrimmed) {
        return Outcome::Fatal("wald no longer has seq " + std::to_string(s.from) + " (its first seq is " +
                              std::to_string(e.first_seq) + "): records trimmed before they were shipped; " +
                              "the stream would have a gap. Was hold '" + options_.hold + "' released?");
      }
      return Outcome::Retry(WaldError("wald subscription", e));
    }
    if (Outcome o = MoveHold(&*s.control, false); !o.ok()) return o;
    Report(&*s.control, false);
    if (options_.once && s.reading_done && acked_wald_ >= once_target_) {
      if (Outcome o = MoveHold(&*s.control, true); !o.ok()) return o;
      once_done_ = true;
      return {};
    }
  }
  return {};
}

Outcome Shipper::StartSession(Session* s) {
  {
    std::lock_guard<std::mutex> l(mu_);
    failure_.clear();
    failure_fatal_ = false;
    failed_.store(false, std::memory_order_relaxed);
  }
  if (ready_sent_) (void)sd_notify(0, "WATCHDOG=1");
  auto sub = wald::connect(options_.socket, {"wal-ship", 2000});
  if (!sub.ok()) return Outcome::Retry(WaldError("connect to wald at " + options_.socket, sub.error()));
  auto control = wald::connect(options_.socket, {"wal-ship control", 2000});
  if (!control.ok()) return Outcome::Retry(WaldError("connect to wald at " + options_.socket, control.error()));
  const std::string id = Hex(sub->log_id());
  if (!log_id_.empty() && id != log_id_) {
    return Outcome::Fatal("wald at " + options_.socket + " now serves log " + id + ", not " + log_id_);
  }
  log_id_ = id;
  if (!once_target_set_) {
    once_target_ = sub->durable_seq();
    once_target_set_ = true;
  }
  s->sub.emplace(std::move(sub.value()));
  s->control.emplace(std::move(control.value()));
  if (!js_) {
    if (Outcome o = JetStream::Connect(options_.nats, this, &js_); !o.ok()) return o;
    // Headers take a few hundred bytes; a record over what is left stops
    // wal-ship when it comes (exit 1): say so now.
    if (static_cast<int64_t>(s->sub->max_record_size()) + 512 > js_->MaxPayload()) {
      Log("warning", "wald takes records up to " + std::to_string(s->sub->max_record_size()) +
                         " bytes but the NATS servers' max_payload is " + std::to_string(js_->MaxPayload()) +
                         ": a record near wald's limit cannot be shipped");
    }
  }
  spec_ = StreamSpec{options_.stream.empty() ? "wald-" + log_id_ : options_.stream,
                     options_.subject.empty() ? "wald." + log_id_ : options_.subject, log_id_, options_.replicas,
                     options_.duplicate_window_ns};
  if (Outcome o = js_->Ensure(spec_); !o.ok()) return o;
  StreamEnd end;
  if (Outcome o = js_->ReadEnd(&end); !o.ok()) return o;
  DrainAcks();
  if (end.stream_seq < acked_stream_) {
    return Outcome::Fatal("JetStream lost acked records: stream " + spec_.name + " ends at message " +
                          std::to_string(end.stream_seq) + " (wald seq " + std::to_string(end.wald_seq) +
                          ") but acked message " + std::to_string(acked_stream_) + " (wald seq " +
                          std::to_string(acked_wald_) + "); wald still holds them above seq " +
                          std::to_string(hold_seq_) + " (hold '" + options_.hold + "')");
  }
  if (Outcome o = SetUpHold(s, end); !o.ok()) return o;
  s->next_expected = end.stream_seq;
  if (end.wald_seq == skip_gap_after_ && skip_gap_to_ > end.wald_seq + 1) s->from = std::max(s->from, skip_gap_to_);
  // What the stream already has counts as acked now: a restart never lets
  // the hold pass records whose ack may be younger than the delay.
  if (acked_at_.empty() || acked_at_.back().first < end.wald_seq) acked_at_.emplace_back(end.wald_seq, Clock::now());
  if (end.wald_seq > acked_wald_) {
    acked_wald_ = end.wald_seq;
    acked_stream_ = end.stream_seq;
  }
  if (options_.once && s->from > once_target_) {
    s->reading_done = true;
    s->sub.reset();
    return {};
  }
  Error e = s->sub->subscribe_async(
      s->from, [this, s](const RecordInfo& r) { return OnRecord(s, r); }, [s](Error why) { s->ended = why; });
  if (!e.ok()) return Outcome::Retry(WaldError("subscribe to wald", e));
  return {};
}

Outcome Shipper::SetUpHold(Session* s, const StreamEnd& end) {
  auto st = s->control->stats();
  if (!st.ok()) return Outcome::Retry(WaldError("wald stats", st.error()));
  durable_ = st->durable_seq;
  if (end.wald_seq > st->durable_seq) {
    return Outcome::Fatal("stream " + spec_.name + " already has wald seq " + std::to_string(end.wald_seq) +
                          " but wald's log ends at " + std::to_string(st->durable_seq) +
                          ": is this wald running on an older copy of its log? Not shipping what would " +
                          "disagree with the stream");
  }
  const auto held =
      std::find_if(st->holds.begin(), st->holds.end(), [this](const HoldInfo& h) { return h.name == options_.hold; });
  s->from = end.wald_seq + 1;
  if (held != st->holds.end()) {
    if (held->seq > end.wald_seq) {
      return Outcome::Fatal("JetStream lost acked records: stream " + spec_.name + " ends at wald seq " +
                            std::to_string(end.wald_seq) + " but hold '" + options_.hold + "' is at " +
                            std::to_string(held->seq) + " (records JetStream acked more than the release delay " +
                            "ago); wald still holds everything above it");
    }
    hold_seq_ = held->seq;
    return {};
  }
  // No hold (the first run, a new --hold, or it was released or dropped by
  // --max-hold-lag): pin all that wald still has. When the stream's records
  // were acked is unknown: the hold passes them only after the delay.
  const uint64_t first = st->first_seq > 0 ? st->first_seq : 1;
  if (end.stream_seq != 0 && first > end.wald_seq + 1) {
    return Outcome::Fatal("wald no longer has seqs " + std::to_string(end.wald_seq + 1) + " to " +
                          std::to_string(first - 1) + ", the next the stream needs: they were trimmed before " +
                          "they were shipped (was hold '" + options_.hold + "' released?)");
  }
  if (end.stream_seq == 0 && first > 1) {
    Log("warning", "the log starts at seq " + std::to_string(first) +
                       ": the records below were trimmed before wal-ship first ran");
    s->from = first;
  }
  auto r = s->control->hold(options_.hold, first - 1);
  if (!r.ok()) return Outcome::Retry(WaldError("set hold '" + options_.hold + "'", r.error()));
  hold_seq_ = r.value();
  return {};
}

bool Shipper::OnRecord(Session* s, const RecordInfo& r) {
  if (stopping() || failed_.load(std::memory_order_relaxed)) return false;
  if (options_.once && r.seq > once_target_) {
    s->reading_done = true;
    return false;
  }
  Outgoing out{r.seq, r.payload, s->next_expected, r.time_ns, r.has_producer, r.pid, r.uid, r.gid};
  if (Outcome o = js_->Publish(out); !o.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    if (failure_.empty() || o.kind == Outcome::kFatal) {
      failure_ = o.message;
      failure_fatal_ = o.kind == Outcome::kFatal;
    }
    failed_.store(true, std::memory_order_relaxed);
    return false;
  }
  ++s->next_expected;
  s->last_read = r.seq;
  if (options_.once && r.seq >= once_target_) {
    s->reading_done = true;
    return false;
  }
  return true;
}

void Shipper::DrainAcks() {
  std::vector<std::pair<uint64_t, uint64_t>> got;
  {
    std::lock_guard<std::mutex> l(mu_);
    got.swap(acks_);
  }
  if (got.empty()) return;
  shipped_ += got.size();
  for (const auto& [wald_seq, stream_seq] : got) {
    if (first_shipped_ == 0 || wald_seq < first_shipped_) first_shipped_ = wald_seq;
    // The stream stores in order: an ack of message n means 1..n are stored.
    if (stream_seq > acked_stream_) {
      acked_stream_ = stream_seq;
      acked_wald_ = wald_seq;
    }
  }
  // Stamped after the acks arrived, never before: the delay only grows.
  const auto now = Clock::now();
  if (acked_at_.empty() || (acked_at_.back().first < acked_wald_ && now - acked_at_.back().second > milliseconds(20))) {
    acked_at_.emplace_back(acked_wald_, now);
  }
}

Outcome Shipper::MoveHold(Client* control, bool now) {
  const auto t = Clock::now();
  if (!now && t - last_hold_move_ < milliseconds(500)) return {};
  last_hold_move_ = t;
  if (now) DrainAcks();
  if (now && (acked_at_.empty() || acked_at_.back().first < acked_wald_)) acked_at_.emplace_back(acked_wald_, t);
  const auto cutoff = t - nanoseconds(options_.release_delay_ns);
  uint64_t target = hold_seq_;
  while (!acked_at_.empty() && acked_at_.front().second <= cutoff) {
    target = std::max(target, acked_at_.front().first);
    acked_at_.pop_front();
  }
  if (target <= hold_seq_) return {};
  auto r = control->hold(options_.hold, target);
  if (!r.ok()) return Outcome::Retry(WaldError("move hold '" + options_.hold + "'", r.error()));
  hold_seq_ = r.value();
  return {};
}

}  // namespace wald::ship
