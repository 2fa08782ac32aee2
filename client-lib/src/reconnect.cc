// Reconnecting (ClientOptions::reconnect_timeout_ms) and the idempotent
// producer's resend (PROTOCOL.md, "Idempotent producers").
//
// When the connection is lost, what the old connection left unanswered is
// sent again on a new one: every append in flight (a producer's, with its
// number: the daemon answers one already in the log with the seq it got and
// writes the rest), the read being served (from the record after the last
// one delivered), a StatsRequest. A plain connection cannot resend appends
// safely: they get kOutcomeUnknown, as without reconnecting. A Trim, Hold or
// ReleaseHold awaiting its answer gets kOutcomeUnknown too (it may have been
// applied). A producer's appends are renumbered where the daemon's last
// number (HelloAck) shows they are not in the log (Resend).
//
// The dial loop blocks the call that found the connection lost, up to the
// deadline; its handshake reads and writes the socket itself (not Poll), so
// that a failed attempt never breaks the client, only leads to the next.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "client_impl.h"

namespace wald {
namespace {
constexpr int kFirstPauseMs = 5;
constexpr int kLongestPauseMs = 500;
constexpr size_t kCompactAt = 64 << 10;  // bytes of acked copies before kept_buf is compacted
}  // namespace

Error Client::Impl::Lost(Error why) {
  if (!CanReconnect()) return Break(std::move(why));
  if (dispatching) {
    if (lost.ok()) lost = std::move(why);
    return {};
  }
  return Reconnect(why);
}

Error Client::Impl::Reconnect(const Error& why) {
  ::close(fd);
  fd = -1;
  hello_done = false;
  lost = {};
  write_error = {};
  // What was queued for the old connection is dropped: it is all sent again
  // below, from the slots and the read's position.
  out.clear();
  out_off = 0;
  batcher.Clear();
  in_off = in_len = 0;
  if (producer_id == 0) {
    FailInflight(why);
    if (!broken.ok()) return broken;  // a callback closed the client
    write_error = {};                 // a callback's flush() met no socket: what it queued goes out after the redial
  }
  if (control_wait_id != 0 && !control_result) {
    control_result = Err(ErrorCode::kOutcomeUnknown, "the connection broke (" + why.message +
                                                         ") before the answer: the request may or may not "
                                                         "have been applied");
  }
  const int64_t deadline = NowMs() + reconnect_ms;
  int pause = kFirstPauseMs;
  for (;;) {
    Error e = Redial(deadline);
    if (e.ok()) break;
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    // Not worth another try: the daemon refuses us, or it is not one we can
    // resend to.
    if (e.code == ErrorCode::kNotPermitted || e.code == ErrorCode::kProtocol || e.code == ErrorCode::kUnsupported) {
      return Break(e);
    }
    const int64_t left = deadline - NowMs();
    if (left <= 0) {
      return Break(Err(why.code, why.message + "; wald was not back within " + std::to_string(reconnect_ms) +
                                     " ms (reconnect_timeout_ms): " + e.message));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(pause, left)));
    pause = std::min(pause * 2, kLongestPauseMs);
  }
  ++reconnects;
  Resend();
  return broken;  // kOk, unless a callback of what Resend failed closed the client
}

Error Client::Impl::Redial(int64_t deadline) {
  in_off = in_len = 0;  // nothing of an earlier attempt's
  auto dialed = Dial(socket_path, /*nonblocking=*/true);
  if (!dialed.ok()) return dialed.error();
  fd = *dialed;
  const auto hello = fb.Hello(options.client_name, proto::kProtocolVersion, producer_id);
  size_t sent = 0;
  for (;;) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) return Err(ErrorCode::kTimeout, "no HelloAck in time");
    const bool sending = sent < hello.size();
    pollfd p{fd, static_cast<short>(sending ? POLLOUT : POLLIN), 0};
    if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) {
      return Err(ErrorCode::kDaemonGone, std::string("poll: ") + std::strerror(errno));
    }
    if (sending) {
      const ssize_t n = ::send(fd, hello.data() + sent, hello.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return Err(ErrorCode::kDaemonGone, std::string("write to the daemon: ") + std::strerror(errno));
      }
      if (n > 0) sent += static_cast<size_t>(n);
      continue;
    }
    if (in.size() - in_len < kReadSize / 2) in.resize(in_len + kReadSize);
    const ssize_t n = ::recv(fd, in.data() + in_len, in.size() - in_len, MSG_DONTWAIT);
    if (n == 0) return Err(ErrorCode::kDaemonGone, "the daemon closed the connection during the handshake");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return Err(ErrorCode::kDaemonGone, std::string("read from the daemon: ") + std::strerror(errno));
    }
    in_len += static_cast<size_t>(n);
    auto f = proto::ParseFrame({in.data(), in_len}, proto::kMaxFrameSize, &scratch);
    if (f.kind == proto::ParsedFrame::kNeedMore) continue;
    if (f.kind != proto::ParsedFrame::kFrame) return Err(ErrorCode::kProtocol, "a malformed frame in the handshake");
    in_off = f.consumed;  // the daemon sends nothing else before our requests
    if (f.msg->body_type() == proto::Body::Error) {
      const proto::Error* e = f.msg->body_as_Error();
      return Err(FromWire(e->code()), e->message() != nullptr ? e->message()->str() : "refused");
    }
    if (f.msg->body_type() != proto::Body::HelloAck) return Err(ErrorCode::kProtocol, "no HelloAck after Hello");
    return ApplyHelloAck(f.msg->body_as_HelloAck());
  }
}

void Client::Impl::Resend() {
  // Only what was there before: a callback run below may append, and its
  // append goes out through the batcher as any new one.
  const uint64_t resend_end = next_id;
  if (producer_id != 0) {
    // The daemon's last number for us, L: an append in flight numbered at or
    // below it may be in the log (it is resent as it was, and answered with
    // its seq if so); one above it is not (numbers are used in order, and
    // the daemon's table covers every recent record), so it takes the next
    // free number: numbers a restart lost (refused ones, or a tail that was
    // never durable) would otherwise look like a gap.
    const uint64_t last = hello_pseq;
    const bool was = std::exchange(dispatching, true);  // callbacks below: no blocking calls
    if (last < acked_pseq) {
      // The daemon forgot this producer (idle past --producer-window, or
      // evicted): a repeat could not be recognized. Nothing is resent. An
      // unknown producer may start anywhere: go on above every number used;
      // a known one goes on after its last.
      if (last != 0) next_pseq = last + 1;
      const uint64_t acked = std::exchange(acked_pseq, last);
      FailInflight(Err(ErrorCode::kOutcomeUnknown, "wald no longer knows this producer (its last number " +
                                                       std::to_string(last) + " is below the " + std::to_string(acked) +
                                                       " acked): appends in flight are not resent"));
    } else {
      uint64_t n = last;
      for (uint64_t rid = first_id; rid < resend_end; ++rid) {
        Slot& s = At(rid);
        if (s.done) continue;
        s.resent = s.pseq <= last;
        if (s.kept_len > max_record) {
          // The daemon came back with a lower --max-record.
          Complete(rid, s.resent ? Err(ErrorCode::kOutcomeUnknown,
                                       "wald now refuses a record this large (--max-record " +
                                           std::to_string(max_record) + "); its first copy may be in the log")
                                 : Err(ErrorCode::kRecordTooLarge, "record exceeds the daemon's max record size " +
                                                                       std::to_string(max_record) +
                                                                       " since it restarted; nothing was appended"));
          continue;
        }
        if (!s.resent) s.pseq = ++n;
      }
      next_pseq = n + 1;
    }
    dispatching = was;
    if (!broken.ok()) return;  // a callback closed the client
  }
  // In request order, each as a plain Append: a batch the old connection
  // sent may be in the log in part (a crash keeps a prefix), and the daemon
  // answers repeats record by record.
  for (uint64_t rid = first_id; rid < resend_end && producer_id != 0; ++rid) {
    Slot& s = At(rid);
    if (s.done) continue;
    s.batch = 0;
    const std::span<const std::byte> payload = Kept(s);
    Put(fb.Append(rid, {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()}, s.pseq));
  }
  if (read_id != 0 && !read_done) {
    if (read_limited && read_left == 0) {
      read_done = true;  // it had everything it asked for
    } else {
      Put(fb.Read(read_id, read_next, read_limited ? read_left : 0, read_follow));
    }
  }
  if (stats_waiting) Put(fb.StatsRequest(stats_id));
}

void Client::Impl::Keep(Slot& s, std::span<const std::byte> payload) {
  s.kept = kept_base + kept_buf.size();
  s.kept_len = static_cast<uint32_t>(payload.size());
  kept_buf.insert(kept_buf.end(), payload.begin(), payload.end());
}

void Client::Impl::DropAcked() {
  if (first_id == next_id) {
    kept_base += kept_buf.size();
    kept_buf.clear();
    return;
  }
  // Appends are acked in order, so the oldest in flight holds the lowest
  // copy: everything before it goes, once that is worth a move.
  const uint64_t dead = At(first_id).kept - kept_base;
  if (dead >= kCompactAt && dead * 2 >= kept_buf.size()) {
    kept_buf.erase(kept_buf.begin(), kept_buf.begin() + static_cast<std::ptrdiff_t>(dead));
    kept_base += dead;
  }
}

}  // namespace wald
