// Out of file descriptors (EMFILE, ENFILE) is not a durability failure:
// the call that met it opened nothing and changed nothing, and the same call
// succeeds once descriptors are free. So LogWriter waits and retries these
// calls instead of fail-stopping (issue #20), and tells its owner through a
// FdWaitHook, which the server uses to refuse new connections and say why.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <thread>

#include "storage/status.h"

namespace wald::storage {

// Called with true before a call's first wait, and with false once that call
// went through (or failed otherwise): so a count of the calls waiting now is
// true-calls minus false-calls. May run on the writer's or the segment
// preparer's thread, both of which may wait at once.
using FdWaitHook = std::function<void(bool waiting, const Status& why)>;

inline bool OutOfFds(const Status& st) {
  return st.code() == Code::kIoError && (st.err() == EMFILE || st.err() == ENFILE);
}

inline const Status& StatusOf(const Status& st) { return st; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

// Runs `op` (returning Status or Result) until it fails with anything but
// EMFILE/ENFILE, waiting 1 ms, 2 ms, ... up to 100 ms between tries. Only
// for calls that are safe to repeat.
template <typename Op>
auto RetryOutOfFds(const FdWaitHook& hook, Op op) -> decltype(op()) {
  auto wait = std::chrono::milliseconds(1);
  bool waited = false;
  for (;;) {
    auto r = op();
    if (!OutOfFds(StatusOf(r))) {
      if (waited && hook) hook(false, StatusOf(r));
      return r;
    }
    if (hook && !waited) hook(true, StatusOf(r));
    waited = true;
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, std::chrono::milliseconds(100));
  }
}

}  // namespace wald::storage
