// wal-ship's view of NATS JetStream: one connection (libnats reconnects it
// across node failures), one stream, and pipelined publishes whose acks come
// back on libnats' own thread.
//
// Exactly-once rests on the stream itself (DESIGN.md, "Past one host"): each
// record is one message that carries Nats-Expected-Last-Sequence, so the
// stream accepts it only as the message right after the one the publisher
// saw last; a message out of place is refused (10071) and nothing is stored
// twice, whatever the duplicate window and however many publishers race.
// Nats-Msg-Id "<log id>:<seq>" is a second guard inside the window.
//
// Threads: every method is called from one thread (the shipper's). The
// AckSink runs on a libnats thread, concurrently with it.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace wald::ship {

// What a call to NATS came to. kRetry: worth trying again after a back-off
// (no quorum, a timeout, a connection lost). kFatal: trying again cannot help.
struct Outcome {
  enum Kind { kOk, kRetry, kFatal };
  Kind kind = kOk;
  std::string message;
  bool ok() const { return kind == kOk; }
  static Outcome Retry(std::string m) { return {kRetry, std::move(m)}; }
  static Outcome Fatal(std::string m) { return {kFatal, std::move(m)}; }
};

struct NatsOptions {
  std::vector<std::string> urls;
  std::string creds_file;  // --creds: a NATS .creds file (JWT + NKey seed)
  std::string tls_ca;      // --tls-ca: trust these CAs, and require TLS
  int api_timeout_ms = 2000;
  int ack_timeout_ms = 5000;  // a publish not acked by then fails (and the shipper resumes)
  int max_pending = 4096;     // publishes in flight
};

struct StreamSpec {
  std::string name;
  std::string subject;
  std::string log_id;  // 32 hex digits: wald's log id
  int replicas = 3;
  int64_t duplicate_window_ns = 0;  // 0: the server's default (2 min)
};

// Where the stream ends: its last message and the wald record it holds.
struct StreamEnd {
  uint64_t stream_seq = 0;  // 0: the stream is empty
  uint64_t wald_seq = 0;
};

// One record to publish as the message after `expected_last`.
struct Outgoing {
  uint64_t seq = 0;
  std::span<const std::byte> payload;
  uint64_t expected_last = 0;
  uint64_t time_ns = 0;  // 0: not stamped
  bool has_producer = false;
  uint32_t pid = 0, uid = 0, gid = 0;
};

// Receives each publish's outcome, on a libnats thread.
class AckSink {
 public:
  virtual ~AckSink() = default;
  // The record `wald_seq` is stored in the stream at `stream_seq`.
  virtual void Acked(uint64_t wald_seq, uint64_t stream_seq) = 0;
  // A publish failed (refused, timed out, no responders). `fatal`: trying
  // again cannot help (the record is over the stream's maximum size).
  virtual void Failed(uint64_t wald_seq, std::string why, bool fatal) = 0;
};

// Header names: the product's interface (README, "Past one host").
inline constexpr const char* kSeqHeader = "Wald-Seq";
inline constexpr const char* kLogIdHeader = "Wald-Log-Id";
inline constexpr const char* kTimeHeader = "Wald-Time-Ns";
inline constexpr const char* kProducerHeader = "Wald-Producer";  // "pid=1 uid=2 gid=3"

class JetStream {
 public:
  // Connects (trying every URL); `sink` must outlive the JetStream.
  static Outcome Connect(const NatsOptions& options, AckSink* sink, std::unique_ptr<JetStream>* out);
  ~JetStream();
  JetStream(const JetStream&) = delete;
  JetStream& operator=(const JetStream&) = delete;

  // Finds the stream, or creates it (file storage, spec.replicas, deny
  // delete and purge). A stream made for another log, or one that is not
  // a wal-ship stream, is kFatal.
  Outcome Ensure(const StreamSpec& spec);
  // Reads the stream's last message (after Ensure). kFatal if it is not a
  // record of this log.
  Outcome ReadEnd(StreamEnd* end);
  // Queues the message; blocks while max_pending are in flight (up to
  // the ack timeout). The outcome reaches the AckSink.
  Outcome Publish(const Outgoing& record);
  // Forgets every publish still in flight: their acks, if any come, are
  // ignored (the stream itself refuses what lands out of place).
  void DropPending();
  // Waits up to timeout_ms for every publish in flight to be answered.
  Outcome WaitPending(int timeout_ms);
  // The server the connection is on now ("" while disconnected).
  std::string ConnectedUrl() const;
  // The largest message (headers and payload) the servers take.
  int64_t MaxPayload() const;

 private:
  JetStream() = default;
  static void OnAck(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);

  NatsOptions options_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  StreamSpec spec_;
  std::string msg_id_prefix_;  // "<log id>:"
  bool published_ = false;     // an async publish was made
};

}  // namespace wald::ship
