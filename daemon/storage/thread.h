// Helper threads that never take a process-directed signal.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace wald::storage {

// Starts `f` on a new std::thread with every signal blocked in it (the
// caller's mask is restored before returning; the new thread inherits the
// full block, so there is no window in which it could take a signal).
// Signals are the caller's business: the daemon reads SIGTERM and SIGINT on
// its loop thread (server.h). A background thread that took a signal with a
// handler would run it where nobody expects; a sanitizer runtime defers it
// until that thread next enters an intercepted call, which a parked writer
// (a raw futex wait) may never do.
template <typename F>
std::thread StartSignalFreeThread(F&& f) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  std::thread t(std::forward<F>(f));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return t;
}

}  // namespace wald::storage
