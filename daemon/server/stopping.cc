// Stopping the Server: the drain (SIGTERM: finish what was received, ack
// it, close), its deadline, fail-stop after the writer failed, and the
// shutdown both end in. Loop thread only. States in server.h.
#include <spdlog/spdlog.h>

#include <cassert>

#include "server/server.h"
#include "server/systemd.h"

namespace wald::server {

// In the reverse order of Start's.
void Server::CloseOwnHandles() {
  listener_.Close();
  if (metrics_ != nullptr) metrics_->Close();
  stop_signals_.Close();
  drain_timer_.Close();
  deadline_timer_.Close();
  retain_timer_.Close();
  if (health_ != nullptr) health_->Close();
  check_.Close();
  doorbell_.Close();
}

void Server::BeginDrain(const char* why) {
  loop_role_.Check();
  if (state_ != State::kRunning) return;
  systemd::Notify("STOPPING=1\nSTATUS=draining: making everything received durable");
  spdlog::info("{}: draining: no new connections or appends; making {} staged records durable", why,
               staging_->next_seq() - 1 - writer_->durable_seq());
  state_ = State::kDraining;
  listener_.Close();
  for (Connection* c : all_) c->SetReading(false);
  staging_->HandOff();
  if (options_.drain_timeout_ms > 0) {
    uv_timer_start(drain_timer_.get(), OnDrainTimer, options_.drain_timeout_ms, options_.drain_timeout_ms);
  }
  CheckDrained();
}

// The drain's deadline: a peer that never reads its acks must not hold a stop
// until systemd's TimeoutStopSec kills wald. Once every record received is
// durable and its ack produced, connections whose output is still unsent are
// closed. Nothing is lost: the records are in the log; only those peers miss
// the acks (an unknown outcome to them, as after any broken connection).
void Server::OnDrainTimer(uv_timer_t* h) {
  auto* s = static_cast<Server*>(h->data);
  if (s->state_ != State::kDraining) return;
  const uint64_t received = s->staging_->next_seq() - 1;
  if (s->acked_seq_ < received) {
    spdlog::warn("drain: {} ms passed and {} received records are not durable yet; still waiting for the writer",
                 s->options_.drain_timeout_ms, received - s->acked_seq_);
    return;  // the watchdog covers a writer that is stuck
  }
  assert(s->walk_.empty());
  for (Connection* c : s->all_) {
    if (c->unsent() > 0) s->walk_.push_back(c);
  }
  // And those still writing their last frame (an error) to a peer that does
  // not read.
  s->walk_.insert(s->walk_.end(), s->finishing_.begin(), s->finishing_.end());
  if (!s->walk_.empty()) {
    spdlog::warn(
        "drain: after {} ms, closing {} connection(s) that did not read their acks; every record they sent "
        "is durable (up to seq {}), they just will not hear it",
        s->options_.drain_timeout_ms, s->walk_.size(), s->acked_seq_);
    for (Connection* c : s->walk_) c->Close();
  }
  s->walk_.clear();
  s->CheckDrained();
}

void Server::CheckDrained() {
  if (state_ != State::kDraining) return;
  // acked_seq_, not the writer's durable seq: records can be durable with
  // their acks not yet sent (the doorbell's callback has not run yet).
  if (acked_seq_ < staging_->next_seq() - 1) {
    staging_->HandOff();
    return;
  }
  // Frames held back for a staging chunk were received too: they get their
  // seqs (RetryStalled) once the writer hands chunks back, then this again.
  if (!stalled_.empty()) return;
  if (republish_) {
    // A duplicate admitted since the last check: its ack is due now.
    republish_ = false;
    acks_.Publish(acked_seq_, uv_hrtime());
  }
  for (Connection* c : all_) {
    if (c->unsent() > 0) return;  // acks still going out
  }
  if (!finishing_.empty()) return;  // last frames still going out; OnClosed calls again
  // Everything received is durable and acked: close the connections (a copy
  // of all_: OnClosing edits it).
  assert(walk_.empty());
  walk_ = all_;
  for (Connection* c : walk_) c->Close();
  walk_.clear();
  spdlog::info("drained: durable seq {}", writer_->durable_seq());
  Shutdown(0);
}

void Server::FailStop() {
  const std::string why = writer_->failure();
  spdlog::critical(
      "the log writer failed: {}. Nothing more will be acked; failing every pending append and "
      "exiting so that recovery runs on restart",
      why);
  state_ = State::kFailed;
  systemd::Notify("STATUS=failed: " + why);
  listener_.Close();
  size_t failed = 0;
  assert(walk_.empty());
  walk_ = all_;
  for (Connection* c : walk_) {
    while (!c->pending.empty()) {
      c->Send(fb_.Error(c->pending.front().request_id, proto::ErrorCode::ServerFailed, "server failed: " + why));
      failed += c->pending.front().records();
      c->pending.pop();
    }
    Reject(c, proto::ErrorCode::ServerFailed, "server failed: " + why);
  }
  walk_.clear();
  spdlog::critical("failed {} pending appends (records)", failed);
  Shutdown(1);
}

void Server::Shutdown(int exit_code) {
  exit_code_ = exit_code;
  state_ = State::kStopped;
  writer_->Stop();  // before closing doorbell_: the writer may still ring it
  if (!writer_->close_status().ok()) {
    // Every record is durable and acked; only the clean-stop marker that
    // proves it to a later recovery is missing. Still an I/O error: fail-stop
    // promises a non-zero exit after one.
    spdlog::error("closing the log: {}", writer_->close_status().ToString());
    exit_code_ = 1;
  }
  // A connection still writing its last frame to a peer that does not read
  // would hold the loop open, and the exit with it (after a drain there are
  // none: CheckDrained waited for them).
  assert(walk_.empty());
  walk_ = finishing_;
  for (Connection* c : walk_) c->Close();
  walk_.clear();
  CloseOwnHandles();
  listener_.RemoveSocketFile();
}

}  // namespace wald::server
