// LogLimiter: at most `burst` log lines per `period`; the lines over it are
// counted, and the next line that passes says how many were dropped. So a
// local client that connects in a loop to be refused cannot flood journald
// (and exhaust its rate limit, hiding everything else wald says).
// Loop thread only.
#pragma once

#include <cstdint>

namespace wald::server {

class LogLimiter {
 public:
  constexpr LogLimiter(uint32_t burst, uint64_t period_ns) : burst_(burst), period_ns_(period_ns) {}

  // True if a line may be logged at `now_ns`; then *dropped is the number of
  // lines refused since the last one allowed.
  bool Allow(uint64_t now_ns, uint64_t* dropped) {
    if (now_ns - window_start_ns_ >= period_ns_) {
      window_start_ns_ = now_ns;
      in_window_ = 0;
    }
    if (in_window_ >= burst_) {
      ++dropped_;
      return false;
    }
    ++in_window_;
    *dropped = dropped_;
    dropped_ = 0;
    return true;
  }

 private:
  const uint32_t burst_;
  const uint64_t period_ns_;
  uint64_t window_start_ns_ = 0;
  uint32_t in_window_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace wald::server
