// Peer: the client end of a socketpair whose other end a Connection or the
// Server serves, in the same thread. Writes block (the frames are small);
// reads never do: Poll() takes whatever has arrived and decodes the frames,
// so a test steps the loop, then polls, then looks.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "framing.h"

namespace wald::test {

struct BatchAck {
  uint64_t request_id;
  uint64_t first_seq;
  uint64_t count;
  bool operator==(const BatchAck&) const = default;
};

// One frame from the server, decoded into what tests look at.
struct Got {
  proto::Body type = proto::Body::NONE;
  uint64_t request_id = 0;
  proto::ErrorCode code = proto::ErrorCode::None;
  std::vector<std::pair<uint64_t, uint64_t>> acks;  // Acks: (request_id, seq)
  std::vector<BatchAck> batches;                    // Acks: AppendBatch acks
  std::vector<uint64_t> seqs;                       // Records: the seqs
  bool done = false;                                // Records.done
  // request_id: also HelloAck.max_batch_records.
  uint64_t value = 0;         // HelloAck.durable_seq, TrimAck.released_up_to, HoldAck.seq, Error.first_seq
  std::string text;           // TrimAck.held_by, HoldAck.name
  uint64_t producer_seq = 0;  // HelloAck.producer_seq
};

class Peer {
 public:
  Peer();   // a connected socketpair
  ~Peer();  // closes what is still open
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // The server's end, handed over once (Server::Adopt, Connection::Open).
  int TakeServerEnd();

  void Send(std::span<const uint8_t> bytes);
  // producer_id != 0: an idempotent producer's connection.
  void Hello(uint64_t producer_id = 0) { Send(fb_.Hello("peer", proto::kProtocolVersion, producer_id)); }
  // producer_seq != 0: the producer's number for it (for a batch, its first record's).
  void Append(uint64_t request_id, std::string_view payload, uint64_t producer_seq = 0);
  void AppendBatch(uint64_t request_id, const std::vector<std::string>& payloads, uint64_t producer_seq = 0);
  void Read(uint64_t request_id, uint64_t from, uint64_t max_records, bool follow) {
    Send(fb_.Read(request_id, from, max_records, follow));
  }
  void CancelRead(uint64_t request_id) { Send(fb_.CancelRead(request_id)); }
  void Trim(uint64_t request_id, uint64_t up_to) { Send(fb_.Trim(request_id, up_to)); }
  void Stats(uint64_t request_id) { Send(fb_.StatsRequest(request_id)); }

  // Reads what has arrived (never blocks) and decodes every whole frame.
  void Poll();
  // Closes with SO_LINGER 0: the server's next write fails with ECONNRESET
  // or EPIPE.
  void Reset();

  // Runs while a Send waits for room in the socket (the test's loop step:
  // the server shares this thread); without it, Send reads what arrived.
  std::function<void()> on_blocked;

  bool raw = false;  // Poll only counts bytes_in: what arrives is not frames

  std::vector<Got> got;  // every frame so far, in order
  bool eof = false;      // the server closed its end
  size_t bytes_in = 0;   // bytes read so far

  // Every ack so far, flattened: (request_id, seq).
  std::vector<std::pair<uint64_t, uint64_t>> Acks() const;
  std::vector<BatchAck> BatchAcks() const;  // every batch ack so far
  size_t Count(proto::Body type) const;
  const Got* Last(proto::Body type) const;

 private:
  int fd_ = -1;
  int server_fd_ = -1;
  std::vector<uint8_t> in_;
  std::vector<uint8_t> scratch_;
  proto::FrameBuilder fb_;
};

}  // namespace wald::test
