#include "server/ack_fanout.h"

#include <algorithm>
#include <cassert>

#include "server/connection.h"

namespace wald::server {

AckFanout::AckFanout(std::function<void(Connection*)> after_acks) : after_acks_(std::move(after_acks)) {
  scratch_.reserve(kMaxAcksPerFrame);
}

void AckFanout::Forget(Connection* c) {
  if (c->in_ack_list) {
    list_.erase(std::remove(list_.begin(), list_.end(), c), list_.end());
    c->in_ack_list = false;
  }
  std::erase_if(trims_, [c](const PendingTrim& t) { return t.conn == c; });
}

void AckFanout::Publish(uint64_t durable, uint64_t now_ns) {
  assert(walk_.empty());  // not re-entered from a callee
  walk_.swap(list_);
  for (Connection* c : walk_) {
    if (!c->in_ack_list) continue;  // closed earlier in this walk
    AckUpTo(c, durable, now_ns);
    if (!c->in_ack_list) continue;  // closed by its own ack write
    if (c->pending.empty()) {
      c->in_ack_list = false;
    } else {
      list_.push_back(c);
    }
  }
  walk_.clear();  // keeps its capacity: no allocation per batch
}

void AckFanout::AckUpTo(Connection* c, uint64_t durable, uint64_t now_ns) {
  scratch_.clear();
  while (!c->pending.empty() && c->pending.front().seq <= durable) {
    const PendingAck& p = c->pending.front();
    scratch_.emplace_back(p.request_id, p.seq);
    latency_us_.Add((now_ns - p.recv_ns) / 1000);
    c->pending_bytes -= p.bytes;
    c->pending.pop();
    if (scratch_.size() == kMaxAcksPerFrame) {
      c->Send(fb_.Acks(scratch_));
      scratch_.clear();
    }
  }
  if (!scratch_.empty()) c->Send(fb_.Acks(scratch_));
  if (!c->closing()) after_acks_(c);
}

void AckFanout::AwaitTrim(Connection* c, uint64_t request_id, uint64_t number) {
  trims_.push_back({c, request_id, number});
}

void AckFanout::AnswerTrims(uint64_t done, uint64_t trim_seq) {
  if (trims_.empty()) return;
  // The finished ones leave trims_ before any is answered: a Send that
  // closes its connection makes Forget edit trims_. finished_ is not
  // Forget's: a connection closed during this walk is still allocated (it is
  // deleted in a later loop iteration) and ignores the Send.
  assert(finished_.empty());
  size_t keep = 0;
  for (const PendingTrim& t : trims_) {
    if (t.number <= done) {
      finished_.push_back(t);
    } else {
      trims_[keep++] = t;
    }
  }
  trims_.resize(keep);
  for (const PendingTrim& t : finished_) t.conn->Send(fb_.TrimAck(t.request_id, trim_seq));
  finished_.clear();
}

}  // namespace wald::server
