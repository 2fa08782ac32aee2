// AckFanout: from a new durable seq to the Acks frames that tell each client
// which of its Appends are durable, and to the answers of finished trims and
// hold changes.
// Loop thread only.
//
// Tricky: sending an ack can close the connection it goes to (the write
// fails: the client reset), and the Server's OnClosing then calls Forget,
// which edits the list of connections with pending acks. So Publish never
// walks that list: it swaps it out and walks the copy, and a connection that
// Forget cleared (in_ack_list == false) is skipped. A closed connection is
// deleted only in a later loop iteration (Connection), so the copy's
// pointers stay valid for the walk. Trims and holds are handled the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "framing.h"
#include "server/connection.h"
#include "server/histogram.h"
#include "server/writer_port.h"

namespace wald::server {

class AckFanout {
 public:
  // `after_acks` runs for each open connection that got acks (the Server
  // re-evaluates its backpressure there).
  explicit AckFanout(std::function<void(Connection*)> after_acks);
  AckFanout(const AckFanout&) = delete;
  AckFanout& operator=(const AckFanout&) = delete;

  // c has just got a pending ack (c->pending); cheap when c is tracked.
  void Track(Connection* c) {
    if (!c->in_ack_list) {
      c->in_ack_list = true;
      list_.push_back(c);
    }
  }
  // c is closing: never touch it again. Its trims are dropped too.
  void Forget(Connection* c);

  // Acks every pending Append and AppendBatch at or below `durable` (one
  // Acks frame per kMaxAcksPerFrame acks, per connection); `now_ns` is for
  // the latency, counted once per record.
  void Publish(uint64_t durable, uint64_t now_ns);

  // A Trim{up_to} on c waits for the writer's trim number `number`.
  void AwaitTrim(Connection* c, uint64_t request_id, uint64_t number, uint64_t up_to);
  // Answers every trim whose number is <= `done`, saying `trim_seq` and, if
  // a hold lies below what it asked for, the lowest such hold. `holds` is
  // called only when some trim is answered.
  void AnswerTrims(uint64_t done, uint64_t trim_seq, const std::function<std::vector<HoldState>()>& holds);
  // A Hold or ReleaseHold on c waits for the writer's hold number `number`.
  void AwaitHold(Connection* c, uint64_t request_id, uint64_t number, std::string name);
  // Answers the hold requests these results finish: HoldAck, or an Error
  // saying why the change was refused.
  void AnswerHolds(const std::vector<HoldResult>& results);

  size_t tracked() const { return list_.size(); }
  const Histogram& latency_us() const { return latency_us_; }

  static constexpr size_t kMaxAcksPerFrame = 4096;

 private:
  void AckUpTo(Connection* c, uint64_t durable, uint64_t now_ns);

  struct PendingTrim {
    Connection* conn;
    uint64_t request_id;
    uint64_t number;  // WriterPort::RequestTrim's
    uint64_t up_to;
  };
  struct PendingHold {
    Connection* conn;
    uint64_t request_id;
    uint64_t number;  // WriterPort::RequestHold's
    std::string name;
  };

  const std::function<void(Connection*)> after_acks_;
  std::vector<Connection*> list_;  // connections with pending acks
  std::vector<Connection*> walk_;  // Publish's walk: list_ swapped out
  std::vector<PendingTrim> trims_;
  std::vector<PendingTrim> finished_;  // AnswerTrims' walk
  std::vector<PendingHold> holds_;
  std::vector<std::pair<PendingHold, const HoldResult*>> answered_;  // AnswerHolds' walk
  std::vector<proto::AckEntry> scratch_;
  std::vector<proto::BatchAckEntry> batch_scratch_;
  proto::FrameBuilder fb_{4096};
  Histogram latency_us_;
};

}  // namespace wald::server
