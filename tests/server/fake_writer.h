// FakeWriter: a WriterPort that does nothing until the test says so. Chunks
// handed over stay held; Sync() makes them durable, hands them back and
// notifies, as CommitWriter does after an fdatasync. Single-threaded: the
// tests step the loop themselves (Server::RunOnce).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "server/writer_port.h"

namespace wald::test {

class FakeWriter final : public server::WriterPort {
 public:
  explicit FakeWriter(uint64_t durable = 0, std::function<void()> notify = {})
      : durable_(durable), notify_(std::move(notify)) {}

  void Submit(server::Chunk* c) override { held_.push_back(c); }
  void Wake() override { ++wakes; }
  server::Chunk* TakeFree() override {
    if (free_.empty()) return nullptr;
    server::Chunk* c = free_.front();
    free_.pop_front();
    return c;
  }
  uint64_t RequestTrim(uint64_t up_to) override {
    trim_requests.push_back(up_to);
    return trim_requests.size();
  }
  uint64_t trims_done() const override { return trims_done_; }
  // Hold changes are done at once, and said at the next Notify.
  uint64_t RequestHold(const std::string& name, uint64_t seq, bool release) override {
    server::HoldResult r;
    r.number = ++hold_numbers_;
    auto it = std::find_if(holds_.begin(), holds_.end(), [&](const server::HoldState& h) { return h.name == name; });
    if (release) {
      if (it == holds_.end()) {
        r.outcome = server::HoldResult::Outcome::kNoSuchHold;
      } else {
        holds_.erase(it);
      }
    } else {
      r.seq = std::min(seq, durable_);
      if (it == holds_.end()) {
        holds_.push_back({name, r.seq, 0});
      } else {
        it->seq = r.seq;
      }
    }
    results_.push_back(r);
    return r.number;
  }
  void TakeHoldResults(std::vector<server::HoldResult>* out) override {
    out->insert(out->end(), results_.begin(), results_.end());
    results_.clear();
  }
  std::vector<server::HoldState> holds() const override { return holds_; }
  void RequestRetention() override { ++retention_requests; }
  uint64_t append_limit() const override { return append_limit_; }
  uint64_t trim_seq() const override { return trim_seq_; }
  uint64_t durable_seq() const override { return durable_; }
  uint32_t segment_salt() const override { return salt; }
  bool failed() const override { return !failure_.empty(); }
  std::string failure() const override { return failure_; }
  const server::WriterStats& stats() const override { return stats_; }
  void Stop() override { stopped = true; }
  const storage::Status& close_status() const override { return close_status_; }

  // The test's verbs.
  // Every chunk held becomes durable and comes back; the loop is told.
  void Sync() {
    for (server::Chunk* c : held_) {
      if (!c->empty()) durable_ = c->last_seq;
      free_.push_back(c);
    }
    held_.clear();
    Notify();
  }
  // The `n` chunks handed over first become durable and come back (a writer
  // part-way through what it holds); the loop is told.
  void SyncOldest(size_t n) {
    for (; n > 0 && !held_.empty(); --n) {
      server::Chunk* c = held_.front();
      held_.pop_front();
      if (!c->empty()) durable_ = c->last_seq;
      free_.push_back(c);
    }
    Notify();
  }
  // The writer made seqs up to `durable` durable (for readers of a log the
  // test wrote itself); the loop is told.
  void Publish(uint64_t durable) {
    durable_ = durable;
    Notify();
  }
  // Every trim asked for is done, releasing up to `released`.
  void FinishTrims(uint64_t released) {
    trims_done_ = trim_requests.size();
    trim_seq_ = released;
    Notify();
  }
  // The disk budget moves to `limit` (WriterPort::append_limit); the loop is told.
  void SetAppendLimit(uint64_t limit) {
    append_limit_ = limit;
    Notify();
  }
  void Fail(std::string why) {
    failure_ = std::move(why);
    Notify();
  }
  const std::deque<server::Chunk*>& held() const { return held_; }
  // The chunks handed over and not yet synced hold this many records.
  uint64_t held_records() const {
    uint64_t n = 0;
    for (const server::Chunk* c : held_) n += c->empty() ? 0 : c->last_seq - c->first_seq + 1;
    return n;
  }

  uint64_t wakes = 0;
  uint32_t salt = 0;  // what segment_salt() says
  uint64_t retention_requests = 0;
  bool stopped = false;
  std::vector<uint64_t> trim_requests;

 private:
  void Notify() {
    if (notify_) notify_();
  }

  uint64_t durable_;
  uint64_t hold_numbers_ = 0;
  std::vector<server::HoldResult> results_;
  std::vector<server::HoldState> holds_;
  const std::function<void()> notify_;
  std::deque<server::Chunk*> held_;
  std::deque<server::Chunk*> free_;
  uint64_t trims_done_ = 0;
  uint64_t trim_seq_ = 0;
  uint64_t append_limit_ = UINT64_MAX;
  std::string failure_;
  server::WriterStats stats_;
  storage::Status close_status_;
};

}  // namespace wald::test
