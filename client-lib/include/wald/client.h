// wald client library: append records to a local wald daemon.
//
//   auto c = wald::connect("/run/wald/wald.sock");
//   if (!c.ok()) { std::cerr << c.error().message << "\n"; return 1; }
//   auto seq = c->append("hello");          // blocks until durable
//   c->append_async("world", [](wald::Result<wald::Seq> r) { ... });
//   c->wait_all();                            // runs the callback
//
// Guarantees (see protocol/PROTOCOL.md): a returned or called-back Seq means
// the record is durable at that position in the log. An append that fails
// with kOutcomeUnknown (the connection broke while it was in flight, or the
// daemon fail-stopped with it written but not durable) may or may not be in
// the log; every other error means it was not appended.
//
// Producers: with ClientOptions::producer, every append is written exactly
// once even across a daemon restart. When the daemon goes away (a restart, a
// fail-stop, systemd restarting it behind its socket) the client reconnects
// on its own, resends every append in flight (under its producer number, or
// a new one where the daemon's last number shows it is not in the log), and
// completes each with the seq it really got; the daemon writes
// none of them twice. The caller sees kOutcomeUnknown only if the daemon is
// not back within reconnect_timeout_ms, or has forgotten the producer (idle
// longer than its --producer-window, or evicted past --max-producers: then
// nothing is resent, since a repeat could not be recognized):
//
//   wald::ClientOptions o;
//   o.producer = true;                      // a random producer id
//   auto c = wald::connect(path, o);
//   c->append_async(payload, cb);           // survives `systemctl restart wald`
//
// Threads: a Client is used by one thread at a time, like a database
// connection; give each thread its own. Callbacks run on the thread that
// calls poll(), flush(), wait_all() or a blocking append, never elsewhere.
//
// Event loops: fd() is the connected socket (non-blocking). Wait for it to be
// readable (and writable while wants_write()), then call poll(0). No libuv or
// other dependency is needed. With reconnect_timeout_ms, a reconnect happens
// inside the call that found the connection lost (it blocks until the daemon
// is back or the deadline passes) and fd() is then a new socket, perhaps
// with the same number: re-register it whenever reconnects() has grown.
//
// Depends only on the standard library (and, inside, on wald's protocol).
#pragma once

#if __cplusplus < 202002L
#error "wald/client.h needs C++20 (compile with -std=c++20): it uses std::span; C and older C++ can use <wald/wald.h>"
#endif

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace wald {

using Seq = uint64_t;

enum class ErrorCode {
  kOk = 0,
  kDaemonGone,          // cannot connect, or the connection is closed
  kOutcomeUnknown,      // the connection broke, or the daemon failed, while this append was in flight
  kProtocol,            // the daemon or this client broke the protocol
  kRecordTooLarge,      // over the daemon's max record size; nothing was appended
  kNotPermitted,        // the daemon refuses this peer (uid/gid)
  kServerFailed,        // the daemon hit an I/O error and stopped (fail-stop); the connection's error.
                        // An append in flight then gets kOutcomeUnknown
  kShuttingDown,        // the daemon is draining and takes no new work
  kTimeout,             // a wait with a timeout ran out
  kInvalidArgument,     // a bad argument to this library
  kUnsupported,         // the daemon does not serve this request
  kTrimmed,             // a read below the first seq still held (Error::first_seq)
  kSeqGap,              // a read reached seqs that a salvage retired: they do not
                        // exist; Error::first_seq is the next seq that does
  kTooManyReads,        // this connection already has the daemon's cap of open reads
  kTooManyConnections,  // the daemon is at its connection cap; retry later
  kNoSuchHold,          // release_hold of a hold that does not exist
  kDiskBudget,          // the log is at the daemon's --max-disk and nothing can be released yet: this
                        // append was not taken (nothing appended); retry after a trim or a hold moves
  kReadFailed,          // a read could not read the log (damage found while reading, an I/O error); the
                        // log is unchanged and the connection stays usable
  kProducerSeqGap,      // a producer's append numbered past its next one (another client with the same
                        // producer id?); nothing appended
  kProducerSeqStale,    // a producer's append at or below its last number, too old for the daemon to answer
                        // as a duplicate; nothing appended
  kProducerFenced,      // a newer connection with the same producer id took the producer over; nothing appended
};

const char* error_code_name(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kOk;
  std::string message;
  uint64_t first_seq = 0;  // kTrimmed: the first seq the log still holds; kSeqGap: the next seq after the gap
  bool ok() const { return code == ErrorCode::kOk; }
  explicit operator bool() const { return !ok(); }  // true if an error
};

// A value, or the Error that explains its absence.
template <typename T>
class Result {
 public:
  Result(T v) : v_(std::move(v)) {}      // NOLINT: implicit by design
  Result(Error e) : v_(std::move(e)) {}  // NOLINT: must not be kOk
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const {
    static const Error kNone;
    return ok() ? kNone : std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

struct ClientOptions {
  std::string client_name;        // shown in the daemon's log
  int connect_timeout_ms = 5000;  // for the handshake
  // Appends queued between two writes (append_async, append_many) go out
  // together in AppendBatch frames, up to the daemon's limits: fewer frames
  // and syscalls, the same seqs and acks per append. No timer: nothing waits
  // to fill a batch. Off, or with a daemon that takes no AppendBatch, each
  // append is its own Append frame.
  bool batch_appends = true;
  // An idempotent producer's connection (PROTOCOL.md, "Idempotent
  // producers"): the daemon de-duplicates this client's appends by
  // (producer id, number), so that resending after a reconnect never writes
  // one twice. The client keeps a copy of each append until it is acked.
  bool producer = false;
  // The producer's id: 0 picks a random one. Give the same non-zero id after
  // the application restarts to go on as the same producer: its appends are
  // numbered from the daemon's last for it (producer_seq()).
  uint64_t producer_id = 0;
  // When the daemon goes away, reconnect for up to this long (retrying with
  // a growing pause, 5 ms to 0.5 s), resend what is in flight, resume a read
  // or subscription from the record after the last one delivered, and go
  // on; the call that found the connection lost blocks meanwhile. Appends in
  // flight on a plain connection still get kOutcomeUnknown (only a producer
  // can resend safely). Past it, the client breaks as without reconnecting.
  // -1: 30000 for a producer, 0 (never reconnect) otherwise. Only for
  // clients made by connect() (adopt_fd has no path to reconnect to).
  int reconnect_timeout_ms = -1;
};

// Called once per append_async with the seq or the error. Runs on the thread
// that drives the client.
using AppendCallback = std::function<void(Result<Seq>)>;

// Called for each record of a read or subscription, in seq order; the payload
// is valid during the call only. Return false to stop.
using RecordCallback = std::function<bool(Seq seq, std::span<const std::byte> payload)>;

// A record with the metadata the daemon stamped on it (wald --stamp).
struct RecordInfo {
  Seq seq = 0;
  std::span<const std::byte> payload;  // valid during the call only
  uint64_t time_ns = 0;                // when the daemon received it, ns since the Unix epoch; 0: not stamped
  bool has_producer = false;           // pid, uid, gid were stamped (SO_PEERCRED of the sender)
  uint32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t producer_id = 0;  // an idempotent producer's record: its id and number; 0: none
  uint64_t producer_seq = 0;
};
using RecordInfoCallback = std::function<bool(const RecordInfo& record)>;

using LogId = std::array<uint8_t, 16>;

// A histogram from the daemon: counts[i] values at or above bounds[i] (and
// below the next bucket of the protocol's log-linear layout).
struct HistogramSnapshot {
  std::vector<uint64_t> bounds;
  std::vector<uint64_t> counts;
  uint64_t count = 0;
  uint64_t sum = 0;
  uint64_t percentile(double p) const;  // a bucket's lower bound; 0 if empty
  double mean() const { return count ? static_cast<double>(sum) / static_cast<double>(count) : 0.0; }
};

// A named hold: nothing above seq is released (protocol/PROTOCOL.md, Hold).
struct HoldInfo {
  std::string name;
  Seq seq = 0;
  // The disk it keeps: whole segments, from the one holding seq + 1 to the
  // end of the log (what the daemon's --max-hold-lag compares).
  uint64_t lag_bytes = 0;
  bool operator==(const HoldInfo&) const = default;
};

// The daemon's counters since it started (protocol/PROTOCOL.md, StatsReply).
struct ServerStats {
  uint64_t uptime_us = 0;
  uint64_t connections = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t syncs = 0;
  uint64_t durable_seq = 0;
  uint64_t next_seq = 0;
  uint64_t rejected_frames = 0;
  uint64_t backpressure_events = 0;
  uint64_t first_seq = 0;  // the oldest seq still held (0 from a daemon that does not say)
  std::vector<HoldInfo> holds;
  uint64_t holds_invalidated = 0;     // dropped by the daemon's --max-hold-lag
  uint64_t disk_budget_refusals = 0;  // appends refused with kDiskBudget
  uint64_t producers = 0;             // idempotent producers the daemon remembers
  uint64_t producer_duplicates = 0;   // producers' appends answered as already in the log
  HistogramSnapshot records_per_sync;
  HistogramSnapshot sync_latency_us;
  HistogramSnapshot ack_latency_us;
};

class Client {
 public:
  // Connects to the daemon at `socket_path` and runs the Hello handshake.
  friend Result<Client> connect(const std::string& socket_path, const ClientOptions& options);
  // Adopts an already connected stream socket (tests, socketpair, inherited
  // descriptors) and runs the handshake. Takes ownership of fd.
  static Result<Client> adopt_fd(int fd, const ClientOptions& options = {});

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();  // closes; callbacks still pending get kOutcomeUnknown

  // Blocks until the record is durable; returns its seq.
  Result<Seq> append(std::span<const std::byte> payload);
  Result<Seq> append(std::string_view payload) { return append(std::as_bytes(std::span(payload))); }

  // Queues the append and returns; `cb` runs once it is acked or failed.
  // Blocks (driving I/O and callbacks) only while max_inflight() appends are
  // already in flight. An error returned here means `cb` will not run.
  // Appends queued until the next write (flush, poll, wait_all) go out in
  // AppendBatch frames when ClientOptions::batch_appends allows: each keeps
  // its own callback and seq.
  Error append_async(std::span<const std::byte> payload, AppendCallback cb);
  Error append_async(std::string_view payload, AppendCallback cb) {
    return append_async(std::as_bytes(std::span(payload)), std::move(cb));
  }

  // Appends every payload with one write; blocks until all are durable and
  // returns their seqs. With batch_appends (the default) they go in as few
  // AppendBatch frames as the daemon's limits allow, and the records of one
  // frame get consecutive seqs; other clients may interleave between frames.
  // Fails whole if any fails (those before may be durable: see their seqs in
  // the log).
  Result<std::vector<Seq>> append_many(std::span<const std::span<const std::byte>> payloads);

  // Sends queued appends without waiting for acks.
  Error flush();
  // Drives I/O until every append in flight is acked or failed.
  Error wait_all(int timeout_ms = -1);
  // One round of I/O: sends what it can, waits up to timeout_ms (0: no wait,
  // -1: forever) for the socket, reads and runs callbacks. Returns kOk on a
  // timeout too; an Error only if the connection is unusable. poll(0) makes
  // no poll(2) call: it sends, then reads what is there (an event loop has
  // already waited), so an event costs the socket's own reads and writes.
  Error poll(int timeout_ms);

  // Reads the durable log from `from` to its end (the durable seq when the
  // daemon reaches it), calling cb per record; blocks. A `from` below the
  // first seq still held fails with kTrimmed (and Error::first_seq).
  // max_records 0: no limit.
  // Seqs that a salvage retired are never skipped silently: the read ends
  // with kSeqGap (Error::first_seq: where to read on).
  Error read(Seq from, const RecordCallback& cb, uint64_t max_records = 0);
  Error read(Seq from, const RecordInfoCallback& cb, uint64_t max_records = 0);
  // Follows the log from `from`: cb runs for every record as soon as it is
  // durable (never before: a subscriber never sees a record its writer could
  // not yet have had acked), until cb returns false or an error. Stopping
  // closes this connection: a subscription owns its Client.
  Error subscribe(Seq from, const RecordCallback& cb);
  Error subscribe(Seq from, const RecordInfoCallback& cb);
  // subscribe() for event loops: queues the Read and returns at once (the
  // next poll() sends it; an error returned here means done will not run). Each
  // later poll() (or any call that drives I/O) runs cb for the records that
  // arrived, as soon as they are durable. The subscription ends when cb
  // returns false, the daemon ends the read (kTrimmed, kSeqGap), the
  // connection fails or the client is closed; `done` then runs once, with kOk if cb stopped it, and
  // the client is closed (like subscribe(), a subscription owns its Client).
  Error subscribe_async(Seq from, RecordInfoCallback cb, std::function<void(Error)> done);
  // Releases whole segments whose records are all <= up_to and at or below
  // every hold; returns the seq up to which records are gone (durably: a
  // restart does not bring them back). With `held_by`, it says which hold
  // lay below up_to ("" if none did).
  Result<Seq> trim(Seq up_to, std::string* held_by = nullptr);
  // Creates the named hold, or moves it (either way), to `seq`: nothing above
  // it is released, by trim or by the daemon's retention policy, until it
  // moves or is released. Returns the seq stored (clamped to the durable
  // seq), durably. kTrimmed if records above seq are already gone;
  // kInvalidArgument for a bad name (1 to 64 of A-Z a-z 0-9 . _ - : @).
  Result<Seq> hold(std::string_view name, Seq seq);
  // Drops the named hold, durably; kNoSuchHold if there is none.
  Error release_hold(std::string_view name);

  // Asks the daemon for its counters; blocks up to timeout_ms.
  Result<ServerStats> stats(int timeout_ms = 5000);

  int fd() const;
  bool wants_write() const;  // queued bytes not yet sent
  size_t inflight() const;   // appends sent or queued, not yet acked or failed

  const LogId& log_id() const;
  Seq durable_seq() const;  // highest seq this client knows durable
  uint32_t max_record_size() const;
  uint32_t max_inflight() const;
  // A producer's id (0: not a producer), and the number its last append got
  // (for an application that numbers its own work by it).
  uint64_t producer_id() const;
  uint64_t producer_seq() const;
  // Times this client reconnected (reconnect_timeout_ms).
  uint64_t reconnects() const;
  bool connected() const;
  void close();

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

Result<Client> connect(const std::string& socket_path, const ClientOptions& options = {});

}  // namespace wald
