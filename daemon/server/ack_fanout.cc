#include "server/ack_fanout.h"

#include <algorithm>
#include <cassert>

#include "server/connection.h"

namespace wald::server {

AckFanout::AckFanout(std::function<void(Connection*)> after_acks) : after_acks_(std::move(after_acks)) {
  scratch_.reserve(kMaxAcksPerFrame);
  batch_scratch_.reserve(kMaxAcksPerFrame);
}

void AckFanout::Forget(Connection* c) {
  if (c->in_ack_list) {
    list_.erase(std::remove(list_.begin(), list_.end(), c), list_.end());
    c->in_ack_list = false;
  }
  std::erase_if(trims_, [c](const PendingTrim& t) { return t.conn == c; });
  std::erase_if(holds_, [c](const PendingHold& h) { return h.conn == c; });
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
  batch_scratch_.clear();
  while (!c->pending.empty() && c->pending.front().seq <= durable) {
    const PendingAck& p = c->pending.front();
    if (p.batch == 0) {
      scratch_.emplace_back(p.request_id, p.seq);
    } else {
      batch_scratch_.emplace_back(p.request_id, p.seq - p.batch + 1, p.batch);
    }
    latency_us_.Add((now_ns - p.recv_ns) / 1000, p.records());
    c->pending_bytes -= p.bytes;
    c->pending_records -= p.records();
    c->pending.pop();
    if (scratch_.size() + batch_scratch_.size() == kMaxAcksPerFrame) {
      c->Send(fb_.Acks(scratch_, batch_scratch_));
      scratch_.clear();
      batch_scratch_.clear();
    }
  }
  if (!scratch_.empty() || !batch_scratch_.empty()) c->Send(fb_.Acks(scratch_, batch_scratch_));
  if (!c->closing()) after_acks_(c);
}

void AckFanout::AwaitTrim(Connection* c, uint64_t request_id, uint64_t number, uint64_t up_to) {
  trims_.push_back({c, request_id, number, up_to});
}

void AckFanout::AnswerTrims(uint64_t done, uint64_t trim_seq, const std::function<std::vector<HoldState>()>& holds) {
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
  if (finished_.empty()) return;
  const std::vector<HoldState> now = holds();
  const HoldState* low = storage::LowestHold(now);
  for (const PendingTrim& t : finished_) {
    const bool held = low != nullptr && low->seq < t.up_to;
    t.conn->Send(fb_.TrimAck(t.request_id, trim_seq, held ? std::string_view(low->name) : std::string_view()));
  }
  finished_.clear();
}

void AckFanout::AwaitHold(Connection* c, uint64_t request_id, uint64_t number, std::string name) {
  holds_.push_back({c, request_id, number, std::move(name)});
}

void AckFanout::AnswerHolds(const std::vector<HoldResult>& results) {
  if (results.empty() || holds_.empty()) return;
  // As in AnswerTrims: out of holds_ before any Send.
  assert(answered_.empty());
  for (const HoldResult& r : results) {
    auto it = std::find_if(holds_.begin(), holds_.end(), [&](const PendingHold& h) { return h.number == r.number; });
    if (it == holds_.end()) continue;  // its connection closed
    answered_.emplace_back(std::move(*it), &r);
    holds_.erase(it);
  }
  using Outcome = HoldResult::Outcome;
  for (const auto& [h, r] : answered_) {
    switch (r->outcome) {
      case Outcome::kDone: h.conn->Send(fb_.HoldAck(h.request_id, h.name, r->seq)); break;
      case Outcome::kNoSuchHold: h.conn->Send(fb_.Error(h.request_id, proto::ErrorCode::NoSuchHold, r->why)); break;
      case Outcome::kTrimmed:
        h.conn->Send(fb_.Error(h.request_id, proto::ErrorCode::Trimmed, r->why, r->first_seq));
        break;
      case Outcome::kInvalid: h.conn->Send(fb_.Error(h.request_id, proto::ErrorCode::InvalidRequest, r->why)); break;
    }
  }
  answered_.clear();
}

}  // namespace wald::server
