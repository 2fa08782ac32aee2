// Doorbell: how the writer thread wakes the loop thread, in place of
// uv_async_t.
//
// Why not uv_async: libuv 1.44's uv_async_send marks the handle busy, writes
// its eventfd, then marks it done; the loop's side spins (pause, then
// sched_yield) while the handle is busy. The eventfd write wakes the loop
// before the writer has returned from it, so the loop spun on most batches:
// 5.6% of the loop thread's samples at W2 (64 x 1), perf record, 2026-12-02.
// Here nothing waits: the writer publishes its state, then sets a flag, and
// writes the eventfd only if the flag was clear; the loop reads the eventfd,
// clears the flag, then reads the state.
//
// Contract: every Ring() is followed by at least one callback that runs
// after it, on the loop thread, and sees everything the ringing thread did
// before Ring(). Rings that come close together merge into one callback, so
// the callback reads the state and never counts rings.
//
// Threads: Ring() from any thread; everything else on the loop thread.
#pragma once

#include <uv.h>

#include <atomic>

#include "server/loop_handle.h"

namespace wald::server {

class Doorbell {
 public:
  Doorbell() = default;
  ~Doorbell();  // closes the eventfd; Close() and the loop's turn come first
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;

  // Creates the eventfd and starts watching it on `loop`; `on_ring(arg)`
  // runs on the loop thread. Returns 0 or a negative errno.
  int Open(uv_loop_t* loop, void (*on_ring)(void*), void* arg);
  // Any thread. One atomic exchange, and an eventfd write only when the
  // loop has taken the previous ring. A failed write aborts the process, as
  // does an error libuv reports on the descriptor: either would leave the
  // loop deaf to the writer, with acks hanging.
  void Ring();
  // Stops watching (uv_close: done in a later loop iteration). Rings after
  // it are lost; the owner stops the ringing thread first.
  void Close() { poll_.Close(); }

 private:
  static void OnReadable(uv_poll_t* h, int status, int events);

  int fd_ = -1;
  void (*on_ring_)(void*) = nullptr;
  void* arg_ = nullptr;
  alignas(64) std::atomic<bool> rung_{false};  // set by Ring, cleared by the loop before it reads the state
  LoopHandle<uv_poll_t> poll_;
};

}  // namespace wald::server
