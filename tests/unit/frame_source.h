// FrameSource: the frames a client sent on a descriptor, one at a time, for
// the tests' fake daemons.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "framing.h"

namespace wald::test {

class FrameSource {
 public:
  explicit FrameSource(int fd) : fd_(fd) {}
  // The next whole frame (valid until the next call), or nullptr after
  // timeout_ms without one, at the end of the stream, or for a bad frame.
  const proto::Message* Next(int timeout_ms = 5000) {
    for (;;) {
      auto f = proto::ParseFrame({in_.data() + off_, in_.size() - off_}, 1 << 20, &scratch_);
      if (f.kind == proto::ParsedFrame::kFrame) {
        off_ += f.consumed;
        return f.msg;
      }
      if (f.kind != proto::ParsedFrame::kNeedMore) return nullptr;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return nullptr;
      uint8_t buf[65536];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return nullptr;
      in_.insert(in_.end(), buf, buf + n);
    }
  }

 private:
  const int fd_;
  std::vector<uint8_t> in_;
  size_t off_ = 0;
  std::vector<uint8_t> scratch_;
};

}  // namespace wald::test
