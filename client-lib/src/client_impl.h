// Client::Impl: the client's state and its I/O, shared by client.cc (the
// connection, appends, control calls), incoming.cc (the frames the daemon
// sends), reads.cc (reads and subscriptions) and reconnect.cc (idempotent
// producers: reconnecting and resending). Internal: not installed.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "append_batcher.h"
#include "framing.h"
#include "wald/client.h"

namespace wald {

inline Error Err(ErrorCode code, std::string msg) { return Error{code, std::move(msg)}; }

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline constexpr size_t kReadSize = 64 << 10;

// Appends in flight, indexed by request id: ids are assigned 1, 2, 3... so
// slot = (id - first_id) from the head of a ring that grows by doubling.
struct Slot {
  AppendCallback cb;
  bool done = false;
  uint32_t batch = 0;     // the first append of an AppendBatch: its record count
  uint32_t kept_len = 0;  // a producer's: its payload's copy, at `kept` in Impl::kept_buf's
  uint64_t kept = 0;      // absolute offsets (Impl::kept_base)
  uint64_t pseq = 0;      // a producer's: its number
  bool resent = false;    // resent after a reconnect as a repeat of what the daemon may have: an error then
                          // leaves its outcome unknown
};

// Dials the daemon's socket: a connected descriptor (non-blocking if asked:
// then a full accept backlog is an error, EAGAIN, not a wait), or why not.
Result<int> Dial(const std::string& socket_path, bool nonblocking);

ErrorCode FromWire(proto::ErrorCode c);

struct Client::Impl {
  ~Impl() { Close(); }

  Error Handshake(int timeout_ms);
  Error Queue(std::span<const std::byte> payload, AppendCallback cb);
  Error Poll(int timeout_ms);
  Error WriteSome();
  // Puts a frame after everything queued before it (the open batch too).
  void Put(std::span<const uint8_t> frame);
  // Closes the open batch of appends into `out`.
  void CloseBatch();
  // Completes the `count` appends from `rid` on: seqs first_seq... or `r`'s error.
  void CompleteBatch(uint64_t rid, uint32_t count, Seq first_seq);
  void FailBatch(uint64_t rid, uint32_t count, const Error& e);
  // Reads and dispatches what a closing daemon sent. Never under Dispatch:
  // growing `in` would move the frame being read.
  void TakeLastWords();
  Error ReadSome();
  // Takes apart the frames waiting in `in` (incoming.cc).
  void Dispatch();
  void OnAcks(const proto::Acks* m);
  void OnError(const proto::Error* e);
  void OnRecords(const proto::Records* r);
  void Complete(uint64_t request_id, Result<Seq> r);
  Error Break(Error why);  // marks the connection unusable, fails what is in flight
  // Fails every append in flight with kOutcomeUnknown (`why` in the message).
  void FailInflight(const Error& why);
  // Takes a HelloAck's limits (and, on the first, the log id and the
  // producer's numbering); an error if it is malformed or does not fit.
  Error ApplyHelloAck(const proto::HelloAck* h);

  // Reconnecting (reconnect.cc). The connection is lost: reconnect if the
  // options allow (returns kOk once it is back, or the error that broke the
  // client), else Break. Under Dispatch it is only noted (`lost`), and Poll
  // reconnects once the frames read are dispatched.
  Error Lost(Error why);
  bool CanReconnect() const { return reconnect_ms > 0 && !socket_path.empty() && !closing; }
  Error Reconnect(const Error& why);
  // One attempt: dial, Hello, HelloAck, by `deadline` (NowMs). kOk: fd is
  // the new connection, the limits taken.
  Error Redial(int64_t deadline);
  // Sends again what the old connection left unanswered.
  void Resend();
  // A producer's payload copies (kept until acked, for Resend).
  void Keep(Slot& s, std::span<const std::byte> payload);
  std::span<const std::byte> Kept(const Slot& s) const { return {kept_buf.data() + (s.kept - kept_base), s.kept_len}; }
  void DropAcked();  // frees the copies of what is no longer in flight
  // Sends a Read and drives I/O until it is done, stopped or failed (reads.cc).
  Error RunRead(Seq from, uint64_t max_records, bool follow, const RecordInfoCallback& cb);
  void Close();

  Slot& At(uint64_t rid) { return ring[(head + (rid - first_id)) & (ring.size() - 1)]; }

  int fd = -1;
  ClientOptions options;
  LogId log_id{};
  Seq durable = 0;
  uint32_t max_record = 0;
  uint32_t max_frame = 0;
  uint32_t max_inflight = 0;

  proto::FrameBuilder fb{512};
  std::vector<uint8_t> out;
  size_t out_off = 0;
  AppendBatcher batcher;  // appends queued since the last write
  // The batcher's own builder: a frame built in `fb` (a Read, a Trim) must
  // survive closing the batch before it (Put).
  proto::FrameBuilder batch_fb{512};
  std::vector<uint8_t> in = std::vector<uint8_t>(kReadSize);
  size_t in_off = 0, in_len = 0;
  std::vector<uint8_t> scratch;

  std::vector<Slot> ring = std::vector<Slot>(64);
  size_t head = 0;
  uint64_t first_id = 1;  // request id of ring[head]
  uint64_t next_id = 1;
  bool dispatching = false;
  bool hello_done = false;
  uint64_t stats_id = 0;  // of the StatsRequest awaiting its reply
  // Reads and trims use request ids above this, apart from appends' 1, 2, 3...
  static constexpr uint64_t kControlIds = uint64_t{1} << 63;
  uint64_t control_id = kControlIds;
  uint64_t read_id = 0;  // the Read being served, or 0
  const RecordInfoCallback* read_cb = nullptr;
  bool read_done = false;
  bool read_stopped = false;  // the callback returned false
  Error read_error;
  // The subscription of subscribe_async: it owns its callbacks; read_cb
  // points at async_cb while it runs.
  bool async_read = false;
  RecordInfoCallback async_cb;
  std::function<void(Error)> async_done;
  void EndAsyncRead(Error why);  // reads.cc
  // The one Trim, Hold or ReleaseHold awaiting its answer (a seq, and for a
  // TrimAck its held_by).
  uint64_t control_wait_id = 0;
  std::optional<Result<Seq>> control_result;
  std::string control_text;
  Result<Seq> Control(std::span<const uint8_t> frame);
  std::optional<ServerStats> stats_reply;
  Error broken;  // kOk while usable
  // A write failed inside a callback, under Dispatch: Poll breaks the
  // connection once the frames already read are dispatched.
  Error write_error;

  // Reconnecting and producers.
  std::string socket_path;  // connect()'s; empty for adopt_fd
  int reconnect_ms = 0;     // ClientOptions::reconnect_timeout_ms, resolved
  uint64_t reconnects = 0;
  Error lost;                   // the connection was lost under Dispatch
  uint64_t producer_id = 0;     // 0: not a producer
  uint64_t next_pseq = 1;       // a producer's next number
  uint64_t acked_pseq = 0;      // the highest number acked
  uint64_t hello_pseq = 0;      // the last HelloAck's producer_seq
  bool connected_once = false;  // a HelloAck was taken: later ones are reconnects
  bool closing = false;         // close() was called: no reconnecting
  std::vector<std::byte> kept_buf;
  uint64_t kept_base = 0;  // absolute offset of kept_buf[0]
  // The read being served, to resume it on a new connection: the next seq
  // it wants, the records it may still take (max_records; 0: no limit).
  Seq read_next = 0;
  uint64_t read_left = 0;
  bool read_limited = false;
  bool read_follow = false;
  bool stats_waiting = false;  // a StatsRequest (stats_id) is unanswered
};

}  // namespace wald
