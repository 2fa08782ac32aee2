#include "server/connection.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <ctime>

namespace wald::server {
namespace {

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

Connection* Of(uv_handle_t* h) { return static_cast<Connection*>(h->data); }

}  // namespace

void AckRing::Grow() {
  std::vector<PendingAck> n(buf_.empty() ? 64 : buf_.size() * 2);
  for (size_t i = 0; i < size_; ++i) n[i] = buf_[(head_ + i) & (buf_.size() - 1)];
  buf_.swap(n);
  head_ = 0;
}

Connection::Connection(uv_loop_t* loop, ConnectionOwner* owner, std::span<uint8_t> read_buf, uint64_t conn_id)
    : id(conn_id), owner_(owner), read_buf_(read_buf) {
  uv_pipe_init(loop, &pipe_, 0);
  pipe_.data = this;
  write_req_.data = this;
}

int Connection::Accept(uv_stream_t* listener) {
  int rc = uv_accept(listener, reinterpret_cast<uv_stream_t*>(&pipe_));
  if (rc != 0) CloseHandle(/*tell_owner=*/false);
  return rc;
}

int Connection::Open(int fd) {
  int rc = uv_pipe_open(&pipe_, fd);
  if (rc != 0) CloseHandle(/*tell_owner=*/false);
  return rc;
}

int Connection::fd() const {
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<const uv_handle_t*>(&pipe_), &fd);
  return fd;
}

void Connection::SetReading(bool on) {
  if (phase_ != Phase::kOpen) on = false;
  if (on == reading_) return;
  if (on) {
    if (uv_read_start(reinterpret_cast<uv_stream_t*>(&pipe_), OnAlloc, OnRead) == 0) reading_ = true;
  } else {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&pipe_));
    reading_ = false;
  }
}

// ---- Input ----

void Connection::OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  Connection* c = Of(h);
  if (c->held_ == 0) {  // the common case: read into the shared buffer
    *buf = uv_buf_init(reinterpret_cast<char*>(c->read_buf_.data()), static_cast<unsigned>(c->read_buf_.size()));
    return;
  }
  // Continue an incomplete frame in the connection's own buffer, growing it
  // only by what may arrive (a client cannot make us reserve a frame's
  // declared size without sending it).
  const size_t step = c->read_buf_.size() / 4;
  if (c->partial_.size() - c->held_ < step) c->partial_.resize(c->held_ + step);
  *buf = uv_buf_init(reinterpret_cast<char*>(c->partial_.data() + c->held_),
                     static_cast<unsigned>(c->partial_.size() - c->held_));
}

void Connection::OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  Connection* c = Of(reinterpret_cast<uv_handle_t*>(s));
  if (nread == 0) return;  // EAGAIN
  if (nread < 0) {
    if (nread != UV_EOF) spdlog::debug("connection {}: read: {}", c->id, uv_strerror(static_cast<int>(nread)));
    if (c->held_ > 0) spdlog::debug("connection {}: closed inside a frame ({} bytes dropped)", c->id, c->held_);
    c->Close();
    return;
  }
  c->read_mono_ns_ = uv_hrtime();
  c->read_wall_ns_ = RealtimeNs();
  if (c->held_ > 0) {
    // Consume from the connection's buffer; Deliver keeps the remainder.
    const size_t len = c->held_ + static_cast<size_t>(nread);
    c->held_ = 0;
    c->Deliver(c->partial_.data(), len);
  } else {
    c->Deliver(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread));
  }
}

void Connection::Replay() {
  if (phase_ != Phase::kOpen || held_ == 0) return;
  const size_t len = held_;
  held_ = 0;
  Deliver(partial_.data(), len);
}

void Connection::Deliver(const uint8_t* data, size_t len) {
  const size_t used = owner_->OnData(this, {data, len});
  if (phase_ != Phase::kOpen) return;
  const size_t rest = len - used;
  if (rest > 0) {
    // `data` may be partial_ itself: grow only a buffer it does not point into.
    if (data != partial_.data() && partial_.size() < rest) partial_.resize(rest);
    std::memmove(partial_.data(), data + used, rest);
  } else if (partial_.capacity() > read_buf_.size()) {
    std::vector<uint8_t>().swap(partial_);  // give back a big frame's buffer
  }
  held_ = rest;
}

// ---- Output ----

void Connection::Send(std::span<const uint8_t> frame) {
  if (phase_ != Phase::kOpen) return;
  size_t off = 0;
  if (!write_in_flight_ && out_.empty()) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(frame.data())),
                             static_cast<unsigned>(frame.size()));
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&pipe_), &b, 1);
    if (n == static_cast<int>(frame.size())) return;
    if (n < 0 && n != UV_EAGAIN) {
      spdlog::debug("connection {}: write: {}", id, uv_strerror(n));
      Close();
      return;
    }
    off = n > 0 ? static_cast<size_t>(n) : 0;
  }
  out_.insert(out_.end(), frame.begin() + static_cast<ptrdiff_t>(off), frame.end());
  if (!write_in_flight_) StartWrite();
}

void Connection::SendAndClose(std::span<const uint8_t> frame) {
  if (phase_ != Phase::kOpen) return;
  SetReading(false);
  Send(frame);
  if (phase_ != Phase::kOpen) return;  // the write failed: closed already
  if (!write_in_flight_) {
    Close();
    return;
  }
  // OnWrite closes once the output is written. The owner forgets the
  // connection now: it is not theirs to use any more.
  phase_ = Phase::kFinishing;
  owner_->OnClosing(this);
}

void Connection::StartWrite() {
  writing_.swap(out_);
  out_.clear();
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(writing_.data()), static_cast<unsigned>(writing_.size()));
  if (int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t*>(&pipe_), &b, 1, OnWrite); rc != 0) {
    spdlog::debug("connection {}: write: {}", id, uv_strerror(rc));
    Close();
    return;
  }
  write_in_flight_ = true;
}

void Connection::OnWrite(uv_write_t* req, int status) {
  Connection* c = static_cast<Connection*>(req->data);
  c->write_in_flight_ = false;
  c->writing_.clear();
  if (c->phase_ == Phase::kClosed) return;  // cancelled by Close
  if (status < 0) {
    spdlog::debug("connection {}: write: {}", c->id, uv_strerror(status));
    c->Close();
    return;
  }
  if (!c->out_.empty()) {
    c->StartWrite();
    return;
  }
  if (c->phase_ == Phase::kFinishing) {
    c->CloseHandle(/*tell_owner=*/false);  // told at SendAndClose
    return;
  }
  c->owner_->OnDrained(c);
}

void Connection::Close() {
  if (phase_ == Phase::kClosed) return;
  CloseHandle(/*tell_owner=*/phase_ == Phase::kOpen);
}

void Connection::CloseHandle(bool tell_owner) {
  phase_ = Phase::kClosed;
  reading_ = false;
  out_.clear();
  if (tell_owner) owner_->OnClosing(this);
  uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), OnCloseDone);
}

void Connection::OnCloseDone(uv_handle_t* h) {
  Connection* c = Of(h);
  c->owner_->OnClosed(c);
  delete c;  // only here: libuv is done with the handle
}

}  // namespace wald::server
