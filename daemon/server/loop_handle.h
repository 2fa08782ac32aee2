// LoopHandle<H>: a libuv handle embedded in its owner, with the state that
// makes closing it safe and idempotent. Only an initialised handle may be
// closed (uv_close on a zeroed one follows a null loop pointer), and only
// once; a start-up that stops half-way leaves some handles unopened, so
// shutdown closes exactly the open ones.
#pragma once

#include <uv.h>

namespace wald::server {

template <typename H>
class LoopHandle {
 public:
  enum class State { kUnopened, kOpen, kClosed /* uv_close called */ };

  H* get() { return &h_; }
  const H* get() const { return &h_; }
  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&h_); }
  bool open() const { return state_ == State::kOpen; }
  // Call after the handle's uv_*_init succeeded.
  void Opened(void* data) {
    h_.data = data;
    state_ = State::kOpen;
  }
  // uv_close, if open; the close completes in a later loop iteration.
  void Close() {
    if (state_ != State::kOpen) return;
    uv_close(handle(), nullptr);
    state_ = State::kClosed;
  }

 private:
  H h_{};
  State state_ = State::kUnopened;
};

}  // namespace wald::server
