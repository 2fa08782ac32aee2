// The Server's side of a connection's life (ConnectionOwner): accepting or
// adopting it, the welcome, the deadline sweep, and goodbye. Frames and their
// handlers are in dispatch.cc. Loop thread only.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "server/server.h"
#include "server/socket_util.h"

namespace wald::server {

void Server::Accept() {
  ++connection_fds_;  // until OnClosed, whatever happens
  auto* c = new Connection(&loop_, this, read_buf_, next_conn_id_++);
  if (int rc = listener_.Accept(c); rc != 0) {
    spdlog::warn("accept: {}", uv_strerror(rc));
    return;  // c closed itself
  }
  Welcome(c);
}

void Server::Adopt(int fd) {
  ++connection_fds_;
  auto* c = new Connection(&loop_, this, read_buf_, next_conn_id_++);
  if (int rc = c->Open(fd); rc != 0) {
    spdlog::warn("adopting fd {}: {}", fd, uv_strerror(rc));
    return;
  }
  Welcome(c);
}

void Server::Welcome(Connection* c) {
  loop_role_.Check();
  const size_t others = all_.size();
  c->all_index = all_.size();
  all_.push_back(c);
  connections_ = all_.size();
  c->accepted_ns = uv_hrtime();
  c->peer_known = PeerCredentials(c->fd(), &c->peer);
  const std::string who = c->peer_known ? fmt::format("pid {} uid {} gid {}", c->peer.pid, c->peer.uid, c->peer.gid)
                                        : std::string("unknown peer");
  spdlog::debug("connection {} from {}", c->id, who);
  // Each bound closes the connection at once: what it would hold is what the
  // bound is for. Its log line goes through the limiter (a connect loop must
  // not flood the journal).
  if (others >= options_.max_connections || fds_in_use() > fd_budget_) {
    LogRefusal(
        fmt::format("connection {} from {} refused: {} connections open (--max-connections {}), {} of {} "
                    "descriptors for clients in use",
                    c->id, who, others, options_.max_connections, fds_in_use(), fd_budget_));
    c->SendAndClose(fb_.Error(0, proto::ErrorCode::TooManyConnections,
                              "wald is at its connection limit (" + std::to_string(others) + " open); retry later"));
    return;
  }
  if (storage_fd_waiters_.load(std::memory_order_relaxed) > 0) {
    LogRefusal(fmt::format("connection {} from {} refused: storage is out of file descriptors", c->id, who));
    c->SendAndClose(fb_.Error(0, proto::ErrorCode::TooManyConnections,
                              "wald's storage is out of file descriptors (EMFILE/ENFILE); retry later"));
    return;
  }
  // Supplementary groups matter only to the gid lists.
  if (c->peer_known && (!options_.allow_gids.empty() || !options_.allow_trim_gids.empty()) &&
      !PeerGroups(c->fd(), &c->peer_groups)) {
    c->peer_groups.clear();
  }
  if (!PeerAllowed({options_.allow_uids, options_.allow_gids}, c->peer_known, c->peer, c->peer_groups)) {
    LogRefusal(fmt::format("connection {} from {} refused: not in --allow-uid/--allow-gid", c->id, who));
    c->SendAndClose(fb_.Error(
        0, proto::ErrorCode::NotPermitted,
        "uid " + std::to_string(c->peer.uid) + " gid " + std::to_string(c->peer.gid) + " may not use this log"));
    return;
  }
  if (state_ != State::kRunning) {
    Reject(c, proto::ErrorCode::ShuttingDown, "wald is shutting down");
    return;
  }
  UpdateReading(c);
}

void Server::OnClosing(Connection* c) {
  loop_role_.Check();
  acks_.Forget(c);
  partial_bytes_ -= c->partial_bytes;
  c->partial_bytes = 0;
  if (c->stalled) {
    stalled_.erase(std::remove(stalled_.begin(), stalled_.end(), c), stalled_.end());
    c->stalled = false;
  }
  reads_->EndAll(c);
  if (c->producer_id != 0) {
    auto it = producer_owner_.find(c->producer_id);
    if (it != producer_owner_.end() && it->second == c->id) producer_owner_.erase(it);
  }
  // Swap-remove from all_.
  all_[c->all_index] = all_.back();
  all_[c->all_index]->all_index = c->all_index;
  all_.pop_back();
  connections_ = all_.size();
  if (!c->closed()) finishing_.push_back(c);  // SendAndClose: its last frame is on the way
  spdlog::debug("connection {} closed ({} appends unacked)", c->id, c->pending.size());
}

void Server::OnClosed(Connection* c) {
  --connection_fds_;
  finishing_.erase(std::remove(finishing_.begin(), finishing_.end(), c), finishing_.end());
  if (state_ == State::kDraining) CheckDrained();
}

void Server::LogRefusal(std::string_view what) {
  uint64_t dropped = 0;
  if (!limiter_.Allow(uv_hrtime(), &dropped)) return;
  if (dropped > 0) {
    spdlog::warn("{} (and {} more refused or rejected connections not logged)", what, dropped);
  } else {
    spdlog::warn("{}", what);
  }
}

// The Hello deadline: a connection that never completes its handshake holds a
// descriptor and a buffer for nothing.
void Server::OnDeadlineSweep(uv_timer_t* h) {
  auto* s = static_cast<Server*>(h->data);
  const uint64_t hello_ns = s->options_.hello_timeout_ms * 1000000;
  const uint64_t frame_ns = s->options_.frame_timeout_ms * 1000000;
  const uint64_t now = uv_hrtime();
  assert(s->walk_.empty());
  for (Connection* c : s->all_) {
    if (!c->hello_done) {
      if (hello_ns > 0 && now - c->accepted_ns > hello_ns) s->walk_.push_back(c);
    } else if (frame_ns > 0 && c->partial_bytes > 0) {
      // The clock runs only while we read: a frame whose rest waits in the
      // socket because the server stopped reading is not the peer's delay.
      if (!c->reading()) {
        c->partial_since_ns = now;
      } else if (now - c->partial_since_ns > frame_ns) {
        s->walk_.push_back(c);
      }
    }
  }
  for (Connection* c : s->walk_) {
    const bool hello = !c->hello_done;
    s->LogRefusal(hello ? fmt::format("connection {}: no Hello within {} ms (--hello-timeout), closing", c->id,
                                      s->options_.hello_timeout_ms)
                        : fmt::format("connection {}: a frame did not complete within {} ms (--frame-timeout), "
                                      "closing ({} bytes of it held)",
                                      c->id, s->options_.frame_timeout_ms, c->partial_bytes));
    c->SendAndClose(s->fb_.Error(0, proto::ErrorCode::ProtocolError,
                                 hello ? "no Hello within the server's deadline"
                                       : "a frame did not complete within the server's deadline (--frame-timeout)"));
  }
  s->walk_.clear();
}

void Server::OnDrained(Connection* c) {
  UpdateReading(c);
  reads_->OnDrained(c);
  if (state_ == State::kDraining) CheckDrained();
}

}  // namespace wald::server
