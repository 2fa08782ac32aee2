#include "wald/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

#include "client_impl.h"

namespace wald {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kDaemonGone: return "daemon gone";
    case ErrorCode::kOutcomeUnknown: return "outcome unknown";
    case ErrorCode::kProtocol: return "protocol error";
    case ErrorCode::kRecordTooLarge: return "record too large";
    case ErrorCode::kNotPermitted: return "not permitted";
    case ErrorCode::kServerFailed: return "server failed";
    case ErrorCode::kShuttingDown: return "shutting down";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kTrimmed: return "trimmed";
    case ErrorCode::kSeqGap: return "seq gap";
    case ErrorCode::kTooManyReads: return "too many reads";
    case ErrorCode::kTooManyConnections: return "too many connections";
    case ErrorCode::kNoSuchHold: return "no such hold";
    case ErrorCode::kDiskBudget: return "disk budget";
    case ErrorCode::kReadFailed: return "read failed";
    case ErrorCode::kProducerSeqGap: return "producer seq gap";
    case ErrorCode::kProducerSeqStale: return "producer seq stale";
    case ErrorCode::kProducerFenced: return "producer fenced";
  }
  return "unknown";
}

Error Client::Impl::Break(Error why) {
  if (broken.ok()) broken = why;
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
  if (async_read) EndAsyncRead(read_done ? read_error : broken);  // the daemon's reason, if it gave one
  FailInflight(broken);
  batcher.Clear();
  return broken;
}

void Client::Impl::FailInflight(const Error& why) {
  // Out of the ring before any callback runs: a callback may append (a new
  // slot after these) or close. Sent but not acked means unknown outcome.
  std::vector<AppendCallback> cbs;  // a failure path: allocating is fine
  for (uint64_t id = first_id; id < next_id; ++id) {
    Slot& s = At(id);
    if (!s.done && s.cb) cbs.push_back(std::move(s.cb));
    s = Slot{};
  }
  head = 0;
  first_id = next_id;
  kept_base += kept_buf.size();
  kept_buf.clear();
  // Blocking calls from these callbacks are refused, as from any callback.
  const bool was = std::exchange(dispatching, true);
  for (AppendCallback& cb : cbs) {
    cb(Err(ErrorCode::kOutcomeUnknown,
           "the connection broke with this append in flight (" + why.message + "): it may or may not be in the log"));
  }
  dispatching = was;
}

void Client::Impl::Close() {
  closing = true;
  if (broken.ok()) Break(Err(ErrorCode::kDaemonGone, "the client was closed"));
}

void Client::Impl::CloseBatch() {
  const auto closed = batcher.Close(&batch_fb, &out);
  if (closed.count > 1) At(closed.first_id).batch = closed.count;
}

void Client::Impl::Put(std::span<const uint8_t> frame) {
  CloseBatch();
  out.insert(out.end(), frame.begin(), frame.end());
}

Error Client::Impl::WriteSome() {
  if (!write_error.ok()) return write_error;
  CloseBatch();
  while (out_off < out.size()) {
    ssize_t n = ::send(fd, out.data() + out_off, out.size() - out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return {};
    Error gone = Err(ErrorCode::kDaemonGone, std::string("write to the daemon: ") + std::strerror(errno));
    if (dispatching) return write_error = gone;
    // The daemon closed the connection, perhaps right after saying why (an
    // Error frame: not permitted, shutting down, server failed). Its reason
    // beats "connection reset".
    TakeLastWords();
    if (!broken.ok()) return broken;
    if (!lost.ok()) gone = std::exchange(lost, Error{});  // the daemon's reason, if it gave one
    return Lost(gone);
  }
  out.clear();
  out_off = 0;
  return {};
}

void Client::Impl::TakeLastWords() {
  while (fd >= 0 && !dispatching) {
    if (in.size() - in_len < kReadSize / 2) in.resize(in_len + kReadSize);
    ssize_t n = ::recv(fd, in.data() + in_len, in.size() - in_len, MSG_DONTWAIT);
    if (n <= 0) return;
    in_len += static_cast<size_t>(n);
    Dispatch();
  }
}

Error Client::Impl::ReadSome() {
  if (in_off > 0) {  // keep an incomplete frame at the front
    std::memmove(in.data(), in.data() + in_off, in_len - in_off);
    in_len -= in_off;
    in_off = 0;
  }
  if (in.size() - in_len < kReadSize / 2) in.resize(in_len + kReadSize);
  for (;;) {
    ssize_t n = ::recv(fd, in.data() + in_len, in.size() - in_len, MSG_DONTWAIT);
    if (n > 0) {
      in_len += static_cast<size_t>(n);
      return {};
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return {};
    if (!broken.ok()) return broken;
    return Lost(Err(ErrorCode::kDaemonGone, n == 0 ? "the daemon closed the connection"
                                                   : std::string("read from the daemon: ") + std::strerror(errno)));
  }
}

Error Client::Impl::Poll(int timeout_ms) {
  if (!broken.ok()) return broken;
  if (dispatching) return Err(ErrorCode::kInvalidArgument, "blocking wald call from inside a callback");
  if (out_off < out.size() || !batcher.empty()) {
    if (Error e = WriteSome(); !e.ok()) return e;
  }
  // poll(0) is what an event loop calls once the socket is ready: read at
  // once (a non-blocking recv), without a poll(2) of our own per event.
  // Otherwise wait in poll, never in a blocking read: a reader blocked in
  // read() is woken once when the daemon reads the request and again for
  // the ack.
  short revents = POLLIN;
  if (timeout_ms != 0) {
    pollfd p{fd, static_cast<short>(POLLIN | (out_off < out.size() ? POLLOUT : 0)), 0};
    int n = ::poll(&p, 1, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return {};
      return Err(ErrorCode::kDaemonGone, std::string("poll: ") + std::strerror(errno));
    }
    if (n == 0) return {};
    revents = p.revents;
  }
  if ((revents & POLLOUT) != 0) {
    if (Error e = WriteSome(); !e.ok()) return e;
  }
  if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
    Error e = ReadSome();
    Dispatch();  // frames read before a close still count
    if (async_read && read_done) {
      EndAsyncRead(read_error);  // kOk if the callback stopped it
      return {};
    }
    if (!e.ok()) return e;
  }
  if (!write_error.ok() && broken.ok()) {
    TakeLastWords();
    if (!broken.ok()) return broken;  // the daemon's last words broke it for good
    Error why = std::exchange(write_error, Error{});
    if (!lost.ok()) why = std::exchange(lost, Error{});
    return Lost(why);
  }
  if (!lost.ok() && broken.ok()) return Lost(std::exchange(lost, Error{}));
  return broken;
}

Error Client::Impl::Queue(std::span<const std::byte> payload, AppendCallback cb) {
  if (!broken.ok()) return broken;
  if (!write_error.ok()) return write_error;
  if (payload.size() > max_record) {
    return Err(ErrorCode::kRecordTooLarge, "record of " + std::to_string(payload.size()) +
                                               " bytes exceeds the daemon's max record size " +
                                               std::to_string(max_record));
  }
  // Respect the daemon's window, except inside a callback (we cannot wait
  // there; the daemon just reads more slowly).
  while (!dispatching && next_id - first_id >= max_inflight) {
    if (Error e = Poll(-1); !e.ok()) return e;
  }
  if (next_id - first_id == ring.size()) {  // grow the ring, keeping id order
    std::vector<Slot> bigger(ring.size() * 2);
    for (uint64_t id = first_id; id < next_id; ++id) bigger[id - first_id] = std::move(At(id));
    ring.swap(bigger);
    head = 0;
  }
  const uint64_t rid = next_id++;
  Slot& s = At(rid);
  s = Slot{};
  s.cb = std::move(cb);
  if (producer_id != 0) {
    s.pseq = next_pseq++;
    Keep(s, payload);
  }
  if (!batcher.Fits(payload.size())) CloseBatch();
  batcher.Add(rid, payload, s.pseq);
  if (batcher.full()) CloseBatch();
  return {};
}

Error Client::Impl::Handshake(int timeout_ms) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  batcher.Configure(0, 0);
  auto hello = fb.Hello(options.client_name, proto::kProtocolVersion, producer_id);
  out.assign(hello.begin(), hello.end());
  const int64_t deadline = NowMs() + timeout_ms;
  while (!hello_done) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) return Break(Err(ErrorCode::kTimeout, "no HelloAck from the daemon in time"));
    if (Error e = Poll(static_cast<int>(left)); !e.ok()) return e;
  }
  return {};
}

Error Client::Impl::ApplyHelloAck(const proto::HelloAck* h) {
  if (h->log_id() == nullptr || h->log_id()->size() != log_id.size() || h->max_frame_size() > proto::kMaxFrameSize ||
      h->max_record_size() > h->max_frame_size()) {
    return Err(ErrorCode::kProtocol, "malformed HelloAck");
  }
  LogId id;
  std::memcpy(id.data(), h->log_id()->data(), id.size());
  if (producer_id != 0 && h->producer_depth() == 0) {
    return Err(ErrorCode::kUnsupported, "this wald daemon has no idempotent producers (it is older than them)");
  }
  // A reconnect: what is in flight or being read may go on only in the
  // same log.
  if (connected_once && id != log_id) {
    return Err(ErrorCode::kProtocol,
               "the daemon at the socket now serves another log; what was in flight is not resent there");
  }
  hello_pseq = h->producer_seq();
  if (!connected_once && producer_id != 0) next_pseq = hello_pseq + 1;
  connected_once = true;
  log_id = id;
  durable = std::max(durable, h->durable_seq());
  max_record = h->max_record_size();
  max_frame = h->max_frame_size();
  max_inflight = h->max_inflight() ? h->max_inflight() : 1;
  batcher.Configure(max_frame, options.batch_appends ? std::min(h->max_batch_records(), max_inflight) : 0);
  hello_done = true;
  return {};
}

// ---- Client ----

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::adopt_fd(int fd, const ClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->fd = fd;
  impl->options = options;
  if (options.producer) {
    impl->producer_id = options.producer_id;
    while (impl->producer_id == 0) {
      if (::getrandom(&impl->producer_id, sizeof impl->producer_id, 0) != sizeof impl->producer_id) {
        ::close(fd);
        return Err(ErrorCode::kInvalidArgument, std::string("getrandom for a producer id: ") + std::strerror(errno));
      }
    }
  }
  if (Error e = impl->Handshake(options.connect_timeout_ms); !e.ok()) return e;
  return Client(std::move(impl));
}

Result<int> Dial(const std::string& socket_path, bool nonblocking) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Err(ErrorCode::kInvalidArgument, "socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return Err(ErrorCode::kDaemonGone, std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    // "Connection refused" for a directory or a plain file misleads: say
    // what the path is.
    struct stat st {};
    if (::stat(socket_path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
      return Err(ErrorCode::kDaemonGone, "cannot connect to wald at " + socket_path + ": it is " +
                                             (S_ISDIR(st.st_mode) ? "a directory" : "not a socket") +
                                             ", not wald's socket (--socket names the socket file)");
    }
    return Err(ErrorCode::kDaemonGone, "cannot connect to wald at " + socket_path + ": " + std::strerror(e));
  }
  return fd;
}

Result<Client> connect(const std::string& socket_path, const ClientOptions& options) {
  auto fd = Dial(socket_path, /*nonblocking=*/false);  // a full backlog: wait, as before
  if (!fd.ok()) return fd.error();
  auto c = Client::adopt_fd(*fd, options);
  if (!c.ok()) return c;
  // Only now: a failed first handshake is an error, not a reconnect.
  Client::Impl& i = *c->impl_;
  i.socket_path = socket_path;
  i.reconnect_ms = options.reconnect_timeout_ms >= 0 ? options.reconnect_timeout_ms : options.producer ? 30000 : 0;
  return c;
}

Result<Seq> Client::append(std::span<const std::byte> payload) {
  struct Out {
    bool done = false;
    Result<Seq> r = Error{ErrorCode::kOutcomeUnknown, "not completed"};
  } o;
  if (impl_->dispatching) return Err(ErrorCode::kInvalidArgument, "blocking wald call from inside a callback");
  if (Error e = impl_->Queue(payload,
                             [&o](Result<Seq> r) {
                               o.r = std::move(r);
                               o.done = true;
                             });
      !e.ok()) {
    return e;
  }
  while (!o.done) {
    if (Error e = impl_->Poll(-1); !e.ok() && !o.done) return e;
  }
  return std::move(o.r);
}

Error Client::append_async(std::span<const std::byte> payload, AppendCallback cb) {
  if (!cb) return Err(ErrorCode::kInvalidArgument, "append_async needs a callback");
  return impl_->Queue(payload, std::move(cb));
}

Result<std::vector<Seq>> Client::append_many(std::span<const std::span<const std::byte>> payloads) {
  if (impl_->dispatching) return Err(ErrorCode::kInvalidArgument, "blocking wald call from inside a callback");
  struct Out {
    std::vector<Seq> seqs;
    Error first_error;
    size_t left;
  } o{std::vector<Seq>(payloads.size()), {}, payloads.size()};
  for (size_t i = 0; i < payloads.size(); ++i) {
    Error e = impl_->Queue(payloads[i], [&o, i](Result<Seq> r) {
      if (r.ok()) {
        o.seqs[i] = r.value();
      } else if (o.first_error.ok()) {
        o.first_error = r.error();
      }
      --o.left;
    });
    if (!e.ok()) {
      o.left -= payloads.size() - i;  // never queued
      if (o.first_error.ok()) o.first_error = e;
      break;
    }
  }
  while (o.left > 0) {
    if (Error e = impl_->Poll(-1); !e.ok() && o.left > 0) return e;
  }
  if (!o.first_error.ok()) return o.first_error;
  return std::move(o.seqs);
}

Error Client::flush() {
  if (!impl_->broken.ok()) return impl_->broken;
  return impl_->WriteSome();
}

Error Client::wait_all(int timeout_ms) {
  const int64_t deadline = timeout_ms < 0 ? 0 : NowMs() + timeout_ms;
  while (impl_->next_id != impl_->first_id) {
    int wait = -1;
    if (timeout_ms >= 0) {
      const int64_t left = deadline - NowMs();
      if (left <= 0) return Err(ErrorCode::kTimeout, std::to_string(inflight()) + " appends still in flight");
      wait = static_cast<int>(left);
    }
    if (Error e = impl_->Poll(wait); !e.ok()) return e;
  }
  return impl_->broken;
}

Result<ServerStats> Client::stats(int timeout_ms) {
  if (impl_->dispatching) return Err(ErrorCode::kInvalidArgument, "blocking wald call from inside a callback");
  if (!impl_->broken.ok()) return impl_->broken;
  impl_->stats_reply.reset();
  auto frame = impl_->fb.StatsRequest(++impl_->stats_id);
  impl_->Put(frame);
  impl_->stats_waiting = true;
  const int64_t deadline = NowMs() + timeout_ms;
  while (!impl_->stats_reply) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) {
      impl_->stats_waiting = false;
      return Err(ErrorCode::kTimeout, "no StatsReply from the daemon in time");
    }
    if (Error e = impl_->Poll(static_cast<int>(left)); !e.ok()) return e;
  }
  return std::move(*impl_->stats_reply);
}

Result<Seq> Client::Impl::Control(std::span<const uint8_t> frame) {
  Put(frame);
  control_result.reset();
  control_text.clear();
  while (!control_result) {
    if (Error e = Poll(-1); !e.ok()) return e;
  }
  control_wait_id = 0;
  return std::move(*control_result);
}

Result<Seq> Client::trim(Seq up_to, std::string* held_by) {
  if (impl_->dispatching) return Err(ErrorCode::kInvalidArgument, "blocking wald call from inside a callback");
  if (!impl_->broken.ok()) return impl_->broken;
  impl_->control_wait_id = ++impl_->control_id;
  Result<Seq> r = impl_->Control(impl_->fb.Trim(impl_->control_wait_id, up_to));
  if (held_by != nullptr) *held_by = r.ok() ? impl_->control_text : "";
  return r;
}

Result<Seq> Client::hold(std::string_view name, Seq seq) {
  if (impl_->dispatching) return Err(ErrorCode::kInvalidArgument, "blocking wald call from inside a callback");
  if (!impl_->broken.ok()) return impl_->broken;
  impl_->control_wait_id = ++impl_->control_id;
  return impl_->Control(impl_->fb.Hold(impl_->control_wait_id, name, seq));
}

Error Client::release_hold(std::string_view name) {
  if (impl_->dispatching) return Err(ErrorCode::kInvalidArgument, "blocking wald call from inside a callback");
  if (!impl_->broken.ok()) return impl_->broken;
  impl_->control_wait_id = ++impl_->control_id;
  Result<Seq> r = impl_->Control(impl_->fb.ReleaseHold(impl_->control_wait_id, name));
  return r.ok() ? Error{} : r.error();
}

Error Client::poll(int timeout_ms) { return impl_->Poll(timeout_ms); }
int Client::fd() const { return impl_->fd; }
bool Client::wants_write() const { return impl_->out_off < impl_->out.size() || !impl_->batcher.empty(); }
size_t Client::inflight() const { return impl_->next_id - impl_->first_id; }
const LogId& Client::log_id() const { return impl_->log_id; }
Seq Client::durable_seq() const { return impl_->durable; }
uint32_t Client::max_record_size() const { return impl_->max_record; }
uint32_t Client::max_inflight() const { return impl_->max_inflight; }
uint64_t Client::producer_id() const { return impl_->producer_id; }
uint64_t Client::producer_seq() const { return impl_->producer_id != 0 ? impl_->next_pseq - 1 : 0; }
uint64_t Client::reconnects() const { return impl_->reconnects; }
bool Client::connected() const { return impl_->broken.ok(); }
void Client::close() { impl_->Close(); }

}  // namespace wald
