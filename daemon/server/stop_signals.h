// StopSignals: SIGTERM and SIGINT, read from a signalfd by the loop thread,
// never through a handler. Start() blocks them in the calling thread; every
// thread started later inherits the block (libuv's pool) or blocks every
// signal itself (the writer, the segment preparer: storage/thread.h), so the
// kernel keeps them queued for the loop to read. libuv's uv_signal runs a
// handler on whatever thread the kernel picks; under ThreadSanitizer such a
// SIGTERM was sometimes lost and wald never drained (a CI hang: the second
// SIGTERM always worked).
//
// Until Start (recovery included) the two signals keep their default action
// and end the process: nothing has been acked yet.
#pragma once

#include <uv.h>

#include <functional>

#include "server/loop_handle.h"
#include "storage/status.h"

namespace wald::server {

class StopSignals {
 public:
  // `on_stop` gets "SIGTERM", "SIGINT" or "signalfd error"; it runs for every
  // signal, also while a stop is under way.
  explicit StopSignals(std::function<void(const char* why)> on_stop);
  ~StopSignals();  // closes the signalfd (Close() the handle first)
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Call before starting any other thread that must not take the signals.
  storage::Status Start(uv_loop_t* loop);
  void Close() { poll_.Close(); }

 private:
  static void OnReadable(uv_poll_t* h, int status, int events);

  const std::function<void(const char*)> on_stop_;
  LoopHandle<uv_poll_t> poll_;
  int fd_ = -1;
};

}  // namespace wald::server
