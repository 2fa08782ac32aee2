#include "server/server.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "server/socket_util.h"
#include "server/systemd.h"
#include "storage/fault_env.h"
#include "storage/log_writer.h"

#ifndef WALD_VERSION
#define WALD_VERSION "0.0.0"
#endif

namespace wald::server {
namespace {

constexpr size_t kReadBufSize = 256 << 10;
constexpr size_t kMaxAcksPerFrame = 4096;
constexpr size_t kMinChunk = 256 << 10;
constexpr uint64_t kAckSpinMaxBatch = 2;

Server* Of(uv_handle_t* h) { return static_cast<Server*>(h->data); }
Connection* ConnOf(uv_handle_t* h) { return static_cast<Connection*>(h->data); }

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

template <typename T>
void EraseValue(std::vector<T>& v, const T& x) {
  v.erase(std::remove(v.begin(), v.end(), x), v.end());
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {
  read_buf_.resize(kReadBufSize);
  ack_scratch_.reserve(kMaxAcksPerFrame);
}

Server::~Server() {
  // After Run() everything is closed already. Otherwise (Start failed
  // half-way, or Run was never called) the same order as Shutdown: the writer
  // first, since it may still uv_async_send on async_, then the handles that
  // were opened, then their close callbacks. No connection exists without
  // Run (accepting happens in the loop), and Run returns only once every
  // connection's handle is closed.
  writer_.reset();
  CloseOwnHandles();
  if (loop_open_) {
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (int rc = uv_loop_close(&loop_); rc != 0) spdlog::error("closing the event loop: {}", uv_strerror(rc));
  }
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

template <typename Handle>
void Server::CloseHandle(Handle* handle, HandleState* state) {
  if (*state != HandleState::kOpen) return;
  uv_close(reinterpret_cast<uv_handle_t*>(handle), nullptr);
  *state = HandleState::kClosed;
}

// In the reverse order of Start's.
void Server::CloseOwnHandles() {
  CloseHandle(&listener_, &listener_state_);
  CloseHandle(&signal_poll_, &signal_poll_state_);
  CloseHandle(&drain_timer_, &drain_timer_state_);
  CloseHandle(&watchdog_timer_, &watchdog_timer_state_);
  CloseHandle(&stats_timer_, &stats_timer_state_);
  CloseHandle(&check_, &check_state_);
  CloseHandle(&async_, &async_state_);
}

storage::Status Server::Start() {
  start_ns_ = uv_hrtime();
  if (int rc = uv_loop_init(&loop_); rc != 0) return storage::Status::IoError("uv_loop_init", -rc);
  loop_open_ = true;
  if (options_.max_record > storage::kMaxPayload || storage::EncodedSize(options_.max_record, storage::kMaxMetaSize) >
                                                        options_.segment_size - storage::kSegmentHeaderSize) {
    return storage::Status::InvalidArgument("--max-record " + std::to_string(options_.max_record) +
                                            " does not fit in a segment of " + std::to_string(options_.segment_size) +
                                            " bytes");
  }

  storage::Env* env = storage::Env::Posix();
  if (options_.fault_sync_eio_after >= 0 || options_.fault_write_error_after >= 0 || options_.fault_alloc_enospc ||
      options_.fault_power_cut_after >= 0) {
    auto* f = new storage::FaultEnv(env);
    if (options_.fault_sync_eio_after >= 0) f->FailSyncAfter(options_.fault_sync_eio_after, EIO);
    if (options_.fault_write_error_after >= 0) {
      f->FailWriteAfter(options_.fault_write_error_after, options_.fault_write_errno);
    }
    if (options_.fault_alloc_enospc) f->FailAllocate(ENOSPC);
    // An injected fault also loses what no fdatasync covered, as the machine
    // would: a record acked before its sync then shows as missing.
    f->DropUnsyncedAtFault();
    if (options_.fault_power_cut_after >= 0) f->PowerCutAfterOps(options_.fault_power_cut_after);
    fault_env_.reset(f);
    env = f;
    spdlog::warn(
        "fault injection on: sync-eio-after {}, write-error-after {} (errno {}), alloc-enospc {}, "
        "power-cut-after {}",
        options_.fault_sync_eio_after, options_.fault_write_error_after, options_.fault_write_errno,
        options_.fault_alloc_enospc, options_.fault_power_cut_after);
  }
  env_ = env;
  storage::LogOptions lo;
  lo.segment_size = options_.segment_size;
  lo.recovery.verify = options_.verify;
  lo.recovery.salvage = options_.salvage;
  struct LogReporter : storage::Reporter {
    void Report(Kind kind, const std::string& file, uint64_t offset, uint64_t bytes, std::string_view reason) override {
      if (kind == Kind::kTornTail) {
        spdlog::info("recovery: cut a torn tail of {} bytes at {} offset {}: {}", bytes, file, offset, reason);
      } else if (kind == Kind::kGap) {
        spdlog::warn(
            "salvage: seqs {}..{} are retired and never handed out again (some may have been acked); "
            "the log goes on at seq {} in {}",
            offset, offset + bytes - 1, offset + bytes, file);
      } else {
        spdlog::error("recovery: damage at {} offset {} ({} bytes): {}", file, offset, bytes, reason);
      }
    }
  };
  static LogReporter reporter;
  lo.recovery.reporter = &reporter;
  // Recovery scans the newest segment (all of them with --verify-on-open all):
  // ask systemd for time, and say what we are doing.
  systemd::Notify("EXTEND_TIMEOUT_USEC=120000000\nSTATUS=recovering the log in " + options_.dir);
  auto log = storage::LogWriter::Open(env, options_.dir, lo);
  if (!log.ok()) return log.take_status();
  next_seq_ = (*log)->next_seq();
  stamp_flags_ = options_.stamp & (storage::kFlagTime | storage::kFlagProducer);
  acked_seq_ = (*log)->durable_seq();
  log_id_ = (*log)->log_id();
  log_id_hex_ = storage::LogIdToString(log_id_);

  // Staging chunks: enough for max_unsynced_bytes, plus slack so that the
  // loop can fill one while the writer holds the rest.
  const size_t chunk_size = std::max(kMinChunk, storage::EncodedSize(options_.max_record, storage::kMaxMetaSize));
  const size_t n_chunks = std::max<size_t>(8, options_.max_unsynced_bytes / chunk_size + 4);
  for (size_t i = 0; i < n_chunks; ++i) {
    chunks_.push_back(std::make_unique<Chunk>(chunk_size));
    free_chunks_.push_back(chunks_.back().get());
  }

  async_.data = check_.data = signal_poll_.data = stats_timer_.data = watchdog_timer_.data = drain_timer_.data =
      listener_.data = this;
  // Each handle's state says it was initialised (CloseOwnHandles). Only
  // uv_async_init can fail here (it creates the loop's eventfd).
  if (int rc = uv_async_init(&loop_, &async_, OnAsync); rc != 0) return storage::Status::IoError("uv_async_init", -rc);
  async_state_ = HandleState::kOpen;
  uv_check_init(&loop_, &check_);
  check_state_ = HandleState::kOpen;
  uv_check_start(&check_, OnCheck);
  uv_timer_init(&loop_, &stats_timer_);
  stats_timer_state_ = HandleState::kOpen;
  uv_timer_init(&loop_, &watchdog_timer_);
  watchdog_timer_state_ = HandleState::kOpen;
  uv_timer_init(&loop_, &drain_timer_);
  drain_timer_state_ = HandleState::kOpen;
  if (const uint64_t usec = systemd::WatchdogUsec(); usec > 0) {
    const uint64_t ms = std::max<uint64_t>(1, usec / 2000);  // ping at half the interval
    uv_timer_start(&watchdog_timer_, OnWatchdogTimer, ms, ms);
  }
  if (options_.stats_interval_s > 0) {
    uint64_t ms = uint64_t{options_.stats_interval_s} * 1000;
    uv_timer_start(&stats_timer_, OnStatsTimer, ms, ms);
  }
  if (options_.handle_stop_signals) WALD_RETURN_IF_ERROR(WatchStopSignals());

  writer_ =
      std::make_unique<CommitWriter>(std::move(*log), n_chunks, options_.spin, [this] { uv_async_send(&async_); });
  writer_->Start();
  return Listen();
}

// Until here (recovery included) SIGTERM and SIGINT keep their default
// action and end the process: nothing has been acked yet. From here on they
// stay queued until the loop reads them, before any client can connect.
storage::Status Server::WatchStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  // Before libuv's pool exists (it starts on the first Read, from this
  // thread, and inherits the mask); the writer and the segment preparer
  // block every signal anyway (storage/thread.h).
  if (int rc = pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); rc != 0) {
    return storage::Status::IoError("blocking SIGTERM and SIGINT", rc);
  }
  signal_fd_ = ::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) return storage::Status::IoError("signalfd for SIGTERM and SIGINT", errno);
  if (int rc = uv_poll_init(&loop_, &signal_poll_, signal_fd_); rc != 0) {
    return storage::Status::IoError("watching the signalfd", -rc);
  }
  signal_poll_state_ = HandleState::kOpen;
  if (int rc = uv_poll_start(&signal_poll_, UV_READABLE, OnSignal); rc != 0) {
    return storage::Status::IoError("watching the signalfd", -rc);
  }
  return storage::Status::OK();
}

storage::Status Server::Listen() {
  uv_pipe_init(&loop_, &listener_, 0);
  listener_state_ = HandleState::kOpen;
  if (options_.listen_fd >= 0) {
    if (int rc = uv_pipe_open(&listener_, options_.listen_fd); rc != 0) {
      return storage::Status::IoError("adopting listening socket fd " + std::to_string(options_.listen_fd), -rc);
    }
  } else {
    WALD_RETURN_IF_ERROR(ClaimSocketPath(options_.socket));
    if (int rc = uv_pipe_bind(&listener_, options_.socket.c_str()); rc != 0) {
      return storage::Status::IoError("bind " + options_.socket, -rc);
    }
    owns_socket_file_ = true;
    if (::chmod(options_.socket.c_str(), options_.socket_mode) != 0) {
      return storage::Status::IoError("chmod " + options_.socket, errno);
    }
  }
  if (int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 1024, OnConnection); rc != 0) {
    return storage::Status::IoError("listen on " + options_.socket, -rc);
  }
  return storage::Status::OK();
}

std::string Server::ReadyLine() const {
  return "log " + log_id_hex_ + ", durable seq " + std::to_string(writer_->durable_seq()) + ", dir " + options_.dir +
         ", socket " +
         (options_.listen_fd >= 0 ? "fd " + std::to_string(options_.listen_fd) + " from systemd" : options_.socket);
}

int Server::Run() {
  spdlog::info("ready: {}", ReadyLine());
  // READY only now: recovery is done and the socket listens.
  systemd::Notify("READY=1\nSTATUS=ready: " + ReadyLine());
  uv_run(&loop_, UV_RUN_DEFAULT);
  return exit_code_;
}

// ---- Accepting ----

void Server::OnConnection(uv_stream_t* listener, int status) {
  Server* s = Of(reinterpret_cast<uv_handle_t*>(listener));
  if (status < 0) {
    spdlog::warn("accept: {}", uv_strerror(status));
    return;
  }
  s->Accept();
}

void Server::Accept() {
  auto* c = new Connection(this, next_conn_id_++);
  uv_pipe_init(&loop_, &c->pipe, 0);
  if (int rc = uv_accept(reinterpret_cast<uv_stream_t*>(&listener_), reinterpret_cast<uv_stream_t*>(&c->pipe));
      rc != 0) {
    spdlog::warn("accept: {}", uv_strerror(rc));
    uv_close(reinterpret_cast<uv_handle_t*>(&c->pipe), OnClose);
    return;
  }
  c->all_index = all_.size();
  all_.push_back(c);
  uv_os_fd_t fd;
  uv_fileno(reinterpret_cast<uv_handle_t*>(&c->pipe), &fd);
  c->peer_known = PeerCredentials(fd, &c->peer);
  std::string who = c->peer_known ? "pid " + std::to_string(c->peer.pid) + " uid " + std::to_string(c->peer.uid) +
                                        " gid " + std::to_string(c->peer.gid)
                                  : std::string("unknown peer");
  spdlog::debug("connection {} from {}", c->id, who);
  auto allowed = [](const std::vector<uint32_t>& list, uint32_t v) {
    return std::find(list.begin(), list.end(), v) != list.end();
  };
  if (!options_.allow_uids.empty() || !options_.allow_gids.empty()) {
    if (!allowed(options_.allow_uids, c->peer.uid) && !allowed(options_.allow_gids, c->peer.gid)) {
      spdlog::warn("connection {} from {} refused: not in --allow-uid/--allow-gid", c->id, who);
      SendErrorAndClose(
          c, 0, proto::ErrorCode::NotPermitted,
          "uid " + std::to_string(c->peer.uid) + " gid " + std::to_string(c->peer.gid) + " may not use this log");
      return;
    }
  }
  if (state_ != State::kRunning) {
    SendErrorAndClose(c, 0, proto::ErrorCode::ShuttingDown, "wald is shutting down");
    return;
  }
  UpdateReading(c);
}

// ---- Reading and dispatch ----

void Server::OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  Connection* c = ConnOf(h);
  Server* s = c->server;
  if (c->partial_len == 0) {  // the common case: read into the shared buffer
    *buf = uv_buf_init(reinterpret_cast<char*>(s->read_buf_.data()), static_cast<unsigned>(s->read_buf_.size()));
    return;
  }
  // Continue an incomplete frame in the connection's own buffer, growing it
  // only by what may arrive (a client cannot make us reserve a frame's
  // declared size without sending it).
  if (c->partial.size() - c->partial_len < kReadBufSize / 4) c->partial.resize(c->partial_len + kReadBufSize / 4);
  *buf = uv_buf_init(reinterpret_cast<char*>(c->partial.data() + c->partial_len),
                     static_cast<unsigned>(c->partial.size() - c->partial_len));
}

void Server::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Connection* c = ConnOf(reinterpret_cast<uv_handle_t*>(stream));
  Server* s = c->server;
  if (nread == 0) return;  // EAGAIN
  if (nread < 0) {
    if (nread != UV_EOF) spdlog::debug("connection {}: read: {}", c->id, uv_strerror(static_cast<int>(nread)));
    if (c->partial_len > 0 && c->state != Connection::State::kClosing) {
      spdlog::debug("connection {}: closed inside a frame ({} bytes dropped)", c->id, c->partial_len);
    }
    s->Close(c);
    return;
  }
  const uint64_t now = uv_hrtime();
  s->recv_time_ns_ = RealtimeNs();  // one clock read (vDSO) per socket read, not per record
  if (c->partial_len > 0) {
    c->partial_len += static_cast<size_t>(nread);
    // Consume from the connection's buffer; it keeps the remainder itself.
    const size_t len = c->partial_len;
    c->partial_len = 0;
    s->Consume(c, c->partial.data(), len, now);
  } else {
    s->Consume(c, reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(nread), now);
  }
  if (c->state != Connection::State::kClosing) s->UpdateReading(c);
}

void Server::Consume(Connection* c, const uint8_t* data, size_t len, uint64_t now_ns) {
  const uint32_t max_frame = options_.max_record + proto::kAppendOverhead;
  size_t off = 0;
  while (off < len && c->state != Connection::State::kClosing) {
    proto::ParsedFrame f = proto::ParseFrame({data + off, len - off}, max_frame, &frame_scratch_);
    if (f.kind == proto::ParsedFrame::kNeedMore) break;
    if (f.kind == proto::ParsedFrame::kTooLarge) {
      ++stats_.rejected_frames;
      SendErrorAndClose(
          c, 0, proto::ErrorCode::FrameTooLarge,
          "frame of " + std::to_string(f.declared) + " bytes exceeds the limit of " + std::to_string(max_frame));
      return;
    }
    if (f.kind == proto::ParsedFrame::kInvalid) {
      ++stats_.rejected_frames;
      SendErrorAndClose(c, 0, proto::ErrorCode::ProtocolError, "frame failed verification");
      return;
    }
    Outcome o = Dispatch(c, f.msg, now_ns);
    if (o == Outcome::kClosed) return;
    if (o == Outcome::kStall) {
      if (!c->stalled) {
        c->stalled = true;
        c->stalled_time_ns = recv_time_ns_;  // when the held-back frames arrived
        stalled_.push_back(c);
      }
      break;
    }
    off += f.consumed;
  }
  if (c->state == Connection::State::kClosing) return;
  // Keep what is left (an incomplete frame, or frames held back by a stall).
  const size_t rest = len - off;
  if (rest > 0) {
    if (data != c->partial.data() && c->partial.size() < rest) c->partial.resize(rest);
    std::memmove(c->partial.data(), data + off, rest);
  }
  c->partial_len = rest;
  if (rest == 0 && c->partial.capacity() > kReadBufSize) {
    std::vector<uint8_t>().swap(c->partial);  // give back a big frame's buffer
  }
}

Server::Outcome Server::Dispatch(Connection* c, const proto::Message* msg, uint64_t now_ns) {
  using proto::Body;
  if (c->state == Connection::State::kHello) {
    if (msg->body_type() != Body::Hello) {
      ++stats_.rejected_frames;
      SendErrorAndClose(c, 0, proto::ErrorCode::ProtocolError, "the first message must be Hello");
      return Outcome::kClosed;
    }
    HandleHello(c, msg->body_as_Hello());
    return c->state == Connection::State::kClosing ? Outcome::kClosed : Outcome::kDone;
  }
  switch (msg->body_type()) {
    case Body::Append: return HandleAppend(c, msg->body_as_Append(), now_ns);
    case Body::StatsRequest: HandleStats(c, msg->body_as_StatsRequest()); return Outcome::kDone;
    case Body::Read: HandleRead(c, msg->body_as_Read()); return Outcome::kDone;
    case Body::Trim: HandleTrim(c, msg->body_as_Trim()); return Outcome::kDone;
    case Body::CancelRead: HandleCancelRead(c, msg->body_as_CancelRead()); return Outcome::kDone;
    default:
      ++stats_.rejected_frames;
      SendErrorAndClose(c, 0, proto::ErrorCode::ProtocolError,
                        std::string("unexpected message ") + proto::EnumNameBody(msg->body_type()));
      return Outcome::kClosed;
  }
}

void Server::HandleHello(Connection* c, const proto::Hello* h) {
  if (h->protocol_version() != proto::kProtocolVersion) {
    SendErrorAndClose(c, 0, proto::ErrorCode::UnsupportedVersion,
                      "this server speaks protocol version " + std::to_string(proto::kProtocolVersion) + ", not " +
                          std::to_string(h->protocol_version()));
    return;
  }
  if (h->client_name() != nullptr && h->client_name()->size() > 0) {
    spdlog::debug("connection {} is {}", c->id, h->client_name()->string_view());
  }
  c->state = Connection::State::kOpen;
  Send(c, fb_.HelloAck({log_id_.data(), log_id_.size()}, writer_->durable_seq(),
                       options_.max_record + proto::kAppendOverhead, options_.max_record, options_.max_inflight,
                       WALD_VERSION));
}

Server::Outcome Server::HandleAppend(Connection* c, const proto::Append* a, uint64_t now_ns) {
  const auto* payload = a->payload();
  const size_t size = payload ? payload->size() : 0;
  if (size > options_.max_record) {
    ++stats_.rejected_frames;
    Send(c, fb_.Error(a->request_id(), proto::ErrorCode::RecordTooLarge,
                      "record of " + std::to_string(size) + " bytes exceeds --max-record " +
                          std::to_string(options_.max_record)));
    return Outcome::kDone;
  }
  storage::RecordMeta meta;
  meta.flags = stamp_flags_ & (c->peer_known ? ~0u : ~storage::kFlagProducer);
  meta.time_ns = recv_time_ns_;
  meta.pid = static_cast<uint32_t>(c->peer.pid);
  meta.uid = c->peer.uid;
  meta.gid = c->peer.gid;
  // The first record of every chunk carries the durable seq: the proof that
  // recovery uses to tell damage from a torn tail (FORMAT.md).
  const size_t need = storage::EncodedSize(size, storage::MetaSize(meta.flags | storage::kFlagDurable));
  if (current_ == nullptr || current_->room() < need) {
    if (current_ != nullptr && !current_->empty()) {
      Submit(current_);
      current_ = nullptr;
    }
    if (current_ == nullptr) current_ = TakeChunk();
    if (current_ == nullptr) return Outcome::kStall;
  }
  if (current_->empty()) {
    meta.flags |= storage::kFlagDurable;
    meta.durable_seq = writer_->durable_seq();
  }
  const uint64_t seq = next_seq_++;
  const size_t before = current_->used;
  current_->Add(seq, meta, std::as_bytes(std::span(payload ? payload->data() : nullptr, size)));
  staged_bytes_ += current_->used - before;
  c->pending.push({a->request_id(), seq, now_ns, static_cast<uint32_t>(size)});
  c->pending_bytes += size;
  if (!c->in_ack_list) {
    c->in_ack_list = true;
    ack_list_.push_back(c);
  }
  ++stats_.records;
  stats_.bytes += size;
  return Outcome::kDone;
}

void Server::HandleStats(Connection* c, const proto::StatsRequest* r) {
  auto& fbb = fb_.fbb();
  fbb.Clear();
  auto hist = [&](const Histogram& h) {
    std::vector<uint64_t> bounds, counts;
    for (int i = 0; i < Histogram::kBuckets; ++i) {
      if (h.bucket(i) == 0) continue;
      bounds.push_back(Histogram::Lower(i));
      counts.push_back(h.bucket(i));
    }
    return proto::CreateHistogram(fbb, fbb.CreateVector(bounds), fbb.CreateVector(counts), h.count(), h.sum());
  };
  const WriterStats& ws = writer_->stats();
  auto rps = hist(ws.records_per_sync);
  auto lat = hist(ws.sync_latency_us);
  auto ack = hist(stats_.ack_latency_us);
  proto::StatsReplyBuilder b(fbb);
  b.add_request_id(r->request_id());
  b.add_uptime_us((uv_hrtime() - start_ns_) / 1000);
  b.add_connections(all_.size());
  b.add_records(stats_.records);
  b.add_bytes(stats_.bytes);
  b.add_syncs(ws.syncs.load(std::memory_order_relaxed));
  b.add_durable_seq(writer_->durable_seq());
  b.add_next_seq(next_seq_);
  b.add_records_per_sync(rps);
  b.add_sync_latency_us(lat);
  b.add_ack_latency_us(ack);
  b.add_rejected_frames(stats_.rejected_frames);
  b.add_backpressure_events(stats_.backpressure_events);
  Send(c, fb_.Finish(proto::Body::StatsReply, b.Finish().Union()));
}

// ---- Reading and trimming ----

void Server::HandleRead(Connection* c, const proto::Read* r) {
  // Each open Read holds buffers and a file descriptor: capped per connection.
  if (c->cursors.size() >= options_.max_reads_per_connection) {
    ++stats_.rejected_frames;
    Send(c, fb_.Error(r->request_id(), proto::ErrorCode::TooManyReads,
                      "this connection already has " + std::to_string(c->cursors.size()) +
                          " open Reads (--max-reads-per-connection); cancel or finish one first"));
    return;
  }
  auto* cur = new ReadCursor;
  cur->conn = c;
  cur->request_id = r->request_id();
  cur->next_seq = std::max<uint64_t>(1, r->from_seq());
  cur->remaining = r->max_records();
  cur->limited = r->max_records() != 0;
  cur->follow = r->follow();
  cur->dir = &options_.dir;
  cur->env = env_;
  c->cursors.push_back(cur);
  ContinueRead(cur);
}

void Server::HandleCancelRead(Connection* c, const proto::CancelRead* m) {
  for (ReadCursor* r : c->cursors) {
    if (r->request_id == m->request_id() && !r->cancelled) {
      if (r->in_flight) {
        // Still on the pool: it keeps its place under the cap until it
        // returns (OnReadDone ends it), so Read+CancelRead loops cannot pile
        // up work, buffers and descriptors.
        r->cancelled = true;
      } else {
        EndRead(r);
      }
      return;
    }
  }
}

void Server::HandleTrim(Connection* c, const proto::Trim* t) {
  trims_.push_back({c, t->request_id(), writer_->RequestTrim(t->up_to_seq())});
}

void Server::ContinueRead(ReadCursor* r) {
  Connection* c = r->conn;
  if (c->state == Connection::State::kClosing) return;
  if (r->follow && r->next_seq > writer_->durable_seq()) {
    r->parked = true;
    parked_.push_back(r);
  } else if (c->out.size() + c->writing.size() > options_.max_connection_bytes) {
    r->blocked = true;  // OnWrite resumes it
  } else {
    QueueRead(r);
  }
}

void Server::QueueRead(ReadCursor* r) {
  r->durable_cap = writer_->durable_seq();
  r->in_flight = true;
  r->work.data = r;
  uv_queue_work(&loop_, &r->work, OnReadWork, OnReadDone);
}

void Server::OnReadWork(uv_work_t* w) {
  auto* r = static_cast<ReadCursor*>(w->data);
  r->Fill(*r->dir);
}

void Server::OnReadDone(uv_work_t* w, int) {
  auto* r = static_cast<ReadCursor*>(w->data);
  Connection* c = r->conn;
  if (c == nullptr) {  // the connection closed meanwhile
    delete r;
    return;
  }
  Server* s = c->server;
  if (r->cancelled) {
    r->in_flight = false;
    s->EndRead(r);
    return;
  }
  // r stays in_flight while its answer is sent: a failed Send closes the
  // connection, Close ends every cursor on it, and EndRead must then only
  // detach r (conn = nullptr), not delete it under this function.
  if (r->trimmed) {
    s->Send(c, s->fb_.Error(r->request_id, proto::ErrorCode::Trimmed,
                            "seq " + std::to_string(r->next_seq) + " is trimmed; the first seq held is " +
                                std::to_string(r->first_held),
                            r->first_held));
  } else if (!r->error.ok()) {
    spdlog::error("read for connection {}: {}", c->id, r->error.ToString());
    s->Send(c, s->fb_.Error(r->request_id, proto::ErrorCode::ServerFailed, "read failed: " + r->error.ToString()));
  } else {
    if (!r->frame.empty()) s->Send(c, r->frame);
    if (r->gap_to != 0 && c->state != Connection::State::kClosing) {
      // Never skipped silently: the reader learns which seqs do not exist
      // and where the log goes on.
      s->Send(c, s->fb_.Error(r->request_id, proto::ErrorCode::SeqGap,
                              "seqs " + std::to_string(r->gap_from) + ".." + std::to_string(r->gap_to) +
                                  " do not exist: a salvage retired them; the log goes on at seq " +
                                  std::to_string(r->gap_to + 1),
                              r->gap_to + 1));
    }
  }
  r->in_flight = false;
  if (r->conn == nullptr) {  // the Send closed the connection
    delete r;
    return;
  }
  if (r->trimmed || !r->error.ok() || r->gap_to != 0 || r->done) {
    s->EndRead(r);
    return;
  }
  s->ContinueRead(r);
}

void Server::EndRead(ReadCursor* r) {
  if (r->conn != nullptr) EraseValue(r->conn->cursors, r);
  if (r->parked) EraseValue(parked_, r);
  if (r->in_flight) {
    r->conn = nullptr;  // OnReadDone deletes it
  } else {
    delete r;
  }
}

// ---- Staging and hand-off ----

void Server::Recycle() {
  while (Chunk* c = writer_->TakeFree()) {
    staged_bytes_ -= c->used;
    c->Reset();
    free_chunks_.push_back(c);
    ++recycled_chunks_;
  }
}

void Server::Submit(Chunk* c) {
  writer_->Submit(c);
  ++submitted_chunks_;
  writer_->Wake();
}

Chunk* Server::TakeChunk() {
  Recycle();
  if (free_chunks_.empty()) return nullptr;
  Chunk* c = free_chunks_.back();
  free_chunks_.pop_back();
  return c;
}

uint64_t Server::HandOff() {
  if (current_ == nullptr || current_->empty()) return 0;
  const uint64_t n = current_->last_seq - current_->first_seq + 1;
  Submit(current_);
  current_ = nullptr;
  return n;
}

void Server::OnCheck(uv_check_t* h) {
  // Once per loop iteration: whatever arrived in this iteration is one batch.
  Server* s = Of(reinterpret_cast<uv_handle_t*>(h));
  const uint64_t n = s->HandOff();
  // Spin only for a small batch that the writer will take at once: with an
  // earlier batch still syncing, the wait would span two fdatasyncs while
  // other clients' records wait unread (at W4, 16x1, spinning then cost 37 us
  // of CPU per record and a quarter of the throughput).
  if (n > 0 && n <= kAckSpinMaxBatch && s->state_ == State::kRunning &&
      s->writer_->durable_seq() + n + 1 >= s->next_seq_) {
    s->AwaitDurable(s->next_seq_ - 1);
  }
}

// At low load a batch is one record and its ack is one fdatasync away. The
// writer would wake this thread with uv_async (an eventfd write, then an
// epoll wake-up and a context switch: ~30-50 us on this VM). Waiting for the
// durable seq here instead, with a pause-spin on the atomic, sends the ack as
// soon as the fdatasync returns. Only small batches qualify (under load the
// loop has reading to do), and only up to ack_spin_us: a slow sync falls back
// to the uv_async path. Costs a core while it waits, at a load where cores
// are idle.
void Server::AwaitDurable(uint64_t target) {
  if (options_.ack_spin_us == 0) return;
  const uint64_t deadline = uv_hrtime() + uint64_t{options_.ack_spin_us} * 1000;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (writer_->durable_seq() >= target || writer_->failed()) {
        OnWriterProgress();
        return;
      }
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (uv_hrtime() > deadline) return;
  }
}

void Server::OnAsync(uv_async_t* h) { Of(reinterpret_cast<uv_handle_t*>(h))->OnWriterProgress(); }

void Server::OnWriterProgress() {
  if (state_ == State::kStopped) return;
  const uint64_t durable = writer_->durable_seq();
  const uint64_t now = uv_hrtime();
  if (durable > acked_seq_) {
    acked_seq_ = durable;
    // Tricky. AckUpTo can close the connection it acks (the write fails: the
    // client reset), and Close takes it off ack_list_. So the walk is over
    // the list swapped out into ack_walk_, and callees edit only ack_list_.
    // A connection closed during the walk has in_ack_list cleared by Close
    // and is dropped here; it is not deleted before OnClose, which libuv runs
    // after this callback.
    assert(ack_walk_.empty());  // not re-entered from a callee
    ack_walk_.swap(ack_list_);
    for (Connection* c : ack_walk_) {
      if (!c->in_ack_list) continue;  // closed earlier in this walk
      AckUpTo(c, durable, now);
      if (!c->in_ack_list) continue;  // closed by its own ack write
      if (c->pending.empty()) {
        c->in_ack_list = false;
      } else {
        ack_list_.push_back(c);
      }
    }
    ack_walk_.clear();  // keeps its capacity: no allocation per batch
  }
  if (writer_->failed()) {
    FailStop();
    return;
  }
  // Followers waiting at the durable end go on. The ready ones are taken out
  // before any is continued; ContinueRead closes nothing (server.h).
  if (!parked_.empty()) {
    std::vector<ReadCursor*> ready;
    size_t keep = 0;
    for (ReadCursor* r : parked_) {
      if (r->next_seq <= durable) {
        r->parked = false;
        ready.push_back(r);
      } else {
        parked_[keep++] = r;
      }
    }
    parked_.resize(keep);
    for (ReadCursor* r : ready) ContinueRead(r);
  }
  // Finished trims are taken out of trims_ before any is answered: a failed
  // Send closes its connection, and Close drops that connection's entries
  // from trims_. A later entry for a connection closed meanwhile is not sent
  // (Send ignores a closed connection).
  if (!trims_.empty()) {
    const uint64_t done = writer_->trims_done();
    std::vector<PendingTrim> finished;
    size_t keep = 0;
    for (const PendingTrim& t : trims_) {
      if (t.number <= done) {
        finished.push_back(t);
      } else {
        trims_[keep++] = t;
      }
    }
    trims_.resize(keep);
    for (const PendingTrim& t : finished) Send(t.conn, fb_.TrimAck(t.request_id, writer_->trim_seq()));
  }
  // Recycle chunks, then let stalled and paused connections go on.
  Recycle();
  RetryStalled(now);
  if (global_paused_ && !GlobalPaused()) UpdateAllReading();
  if (state_ == State::kDraining) CheckDrained();
}

void Server::AckUpTo(Connection* c, uint64_t durable, uint64_t now_ns) {
  ack_scratch_.clear();
  while (!c->pending.empty() && c->pending.front().seq <= durable) {
    const PendingAck& p = c->pending.front();
    ack_scratch_.emplace_back(p.request_id, p.seq);
    stats_.ack_latency_us.Add((now_ns - p.recv_ns) / 1000);
    c->pending_bytes -= p.bytes;
    c->pending.pop();
    if (ack_scratch_.size() == kMaxAcksPerFrame) {
      Send(c, fb_.Acks(ack_scratch_));
      ack_scratch_.clear();
    }
  }
  if (!ack_scratch_.empty()) Send(c, fb_.Acks(ack_scratch_));
  if (c->state == Connection::State::kOpen) UpdateReading(c);
}

void Server::RetryStalled(uint64_t now_ns) {
  if (stalled_.empty() || free_chunks_.empty()) return;
  std::vector<Connection*> retry;
  retry.swap(stalled_);
  for (Connection* c : retry) {
    c->stalled = false;
    if (c->state == Connection::State::kClosing) continue;
    const size_t len = c->partial_len;
    c->partial_len = 0;
    recv_time_ns_ = c->stalled_time_ns;  // their receipt time, not another socket's
    Consume(c, c->partial.data(), len, now_ns);
    if (c->state != Connection::State::kClosing) UpdateReading(c);
  }
}

// ---- Backpressure ----

bool Server::GlobalPaused() const {
  if (global_paused_) {
    // Hysteresis: resume below half the cap, with a chunk to fill.
    return staged_bytes_ > options_.max_unsynced_bytes / 2 || (free_chunks_.empty() && current_ == nullptr);
  }
  return staged_bytes_ > options_.max_unsynced_bytes || !stalled_.empty();
}

void Server::UpdateAllReading() {
  for (Connection* c : all_) UpdateReading(c);
}

void Server::UpdateReading(Connection* c) {
  const bool was = global_paused_;
  global_paused_ = GlobalPaused();
  if (global_paused_ && !was) {
    ++stats_.backpressure_events;
    spdlog::debug("pausing all reads: {} bytes not yet durable", staged_bytes_);
    for (Connection* o : all_) {
      if (o->reading) {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&o->pipe));
        o->reading = false;
      }
    }
  }
  const bool want = state_ == State::kRunning && c->state != Connection::State::kClosing && !global_paused_ &&
                    !c->stalled && c->pending.size() < options_.max_inflight &&
                    c->pending_bytes + c->out.size() + c->writing.size() <= options_.max_connection_bytes;
  if (want && !c->reading) {
    if (uv_read_start(reinterpret_cast<uv_stream_t*>(&c->pipe), OnAlloc, OnRead) == 0) c->reading = true;
  } else if (!want && c->reading) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->pipe));
    c->reading = false;
  }
  if (was && !global_paused_) {
    for (Connection* o : all_) {
      if (o != c && !o->reading) UpdateReading(o);
    }
  }
}

// ---- Writing ----

void Server::Send(Connection* c, std::span<const uint8_t> frame) {
  // A closing connection still gets the frame that close_after_write waits
  // for; a closed one (uv_close called, maybe earlier in the caller's walk)
  // gets nothing.
  if (c->state == Connection::State::kClosing &&
      (!c->close_after_write || uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->pipe)))) {
    return;
  }
  size_t off = 0;
  if (!c->write_in_flight && c->out.empty()) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(frame.data())),
                             static_cast<unsigned>(frame.size()));
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&c->pipe), &b, 1);
    if (n == static_cast<int>(frame.size())) return;
    if (n < 0 && n != UV_EAGAIN) {
      spdlog::debug("connection {}: write: {}", c->id, uv_strerror(n));
      c->close_after_write = false;
      Close(c);
      return;
    }
    off = n > 0 ? static_cast<size_t>(n) : 0;
  }
  c->out.insert(c->out.end(), frame.begin() + static_cast<ptrdiff_t>(off), frame.end());
  if (!c->write_in_flight) StartWrite(c);
}

void Server::StartWrite(Connection* c) {
  c->writing.swap(c->out);
  c->out.clear();
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(c->writing.data()), static_cast<unsigned>(c->writing.size()));
  if (int rc = uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(&c->pipe), &b, 1, OnWrite); rc != 0) {
    spdlog::debug("connection {}: write: {}", c->id, uv_strerror(rc));
    c->close_after_write = false;
    Close(c);
    return;
  }
  c->write_in_flight = true;
}

void Server::OnWrite(uv_write_t* req, int status) {
  Connection* c = static_cast<Connection*>(req->data);
  Server* s = c->server;
  c->write_in_flight = false;
  c->writing.clear();
  if (status < 0) {
    if (status != UV_ECANCELED) spdlog::debug("connection {}: write: {}", c->id, uv_strerror(status));
    c->close_after_write = false;
    s->Close(c);
    return;
  }
  if (!c->out.empty()) {
    s->StartWrite(c);
    return;
  }
  if (c->close_after_write) {
    c->close_after_write = false;
    s->Close(c);
    return;
  }
  if (c->state == Connection::State::kOpen) {
    s->UpdateReading(c);
    std::vector<ReadCursor*> blocked;
    for (ReadCursor* r : c->cursors) {
      if (r->blocked) blocked.push_back(r);
    }
    for (ReadCursor* r : blocked) {
      r->blocked = false;
      s->ContinueRead(r);
    }
  }
  if (s->state_ == State::kDraining) s->CheckDrained();
}

void Server::SendErrorAndClose(Connection* c, uint64_t request_id, proto::ErrorCode code, std::string_view msg) {
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->pipe))) return;  // already closed (FailStop's Sends)
  spdlog::info("connection {}: {} ({}), closing", c->id, msg, proto::ErrorCodeName(code));
  if (c->reading) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->pipe));
    c->reading = false;
  }
  c->state = Connection::State::kClosing;
  c->close_after_write = true;
  Send(c, fb_.Error(request_id, code, msg));
  if (c->close_after_write && !c->write_in_flight) {
    c->close_after_write = false;
    Close(c);
  }
}

void Server::Close(Connection* c) {
  uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&c->pipe);
  if (uv_is_closing(h)) return;
  c->state = Connection::State::kClosing;
  if (c->close_after_write && c->write_in_flight) return;  // OnWrite closes
  if (c->in_ack_list) {
    EraseValue(ack_list_, c);
    c->in_ack_list = false;
  }
  if (c->stalled) {
    EraseValue(stalled_, c);
    c->stalled = false;
  }
  for (ReadCursor* r : std::vector<ReadCursor*>(c->cursors)) EndRead(r);
  std::erase_if(trims_, [c](const PendingTrim& t) { return t.conn == c; });
  // Swap-remove from all_.
  all_[c->all_index] = all_.back();
  all_[c->all_index]->all_index = c->all_index;
  all_.pop_back();
  spdlog::debug("connection {} closed ({} appends unacked)", c->id, c->pending.size());
  uv_close(h, OnClose);
}

void Server::OnClose(uv_handle_t* h) {
  Connection* c = ConnOf(h);
  Server* s = c->server;
  delete c;  // only here: libuv is done with the handle
  if (s->state_ == State::kDraining) s->CheckDrained();
}

// ---- Stats ----

void Server::OnStatsTimer(uv_timer_t* h) {
  Server* s = Of(reinterpret_cast<uv_handle_t*>(h));
  const uint64_t now = uv_hrtime();
  if (s->stats_.records == s->last_logged_records_) return;
  const double secs = static_cast<double>(now - s->last_logged_ns_) / 1e9;
  const WriterStats& ws = s->writer_->stats();
  const uint64_t syncs = ws.syncs.load(std::memory_order_relaxed);
  spdlog::info(
      "{:.0f} records/s, durable seq {}, {} connections, {:.1f} records/sync, sync p50 {} us p99 {} us, "
      "ack p50 {} us p99 {} us",
      static_cast<double>(s->stats_.records - s->last_logged_records_) / (s->last_logged_ns_ ? secs : 1e9),
      s->writer_->durable_seq(), s->all_.size(),
      syncs ? static_cast<double>(ws.records_per_sync.sum()) / static_cast<double>(syncs) : 0.0,
      ws.sync_latency_us.Percentile(0.5), ws.sync_latency_us.Percentile(0.99), s->stats_.ack_latency_us.Percentile(0.5),
      s->stats_.ack_latency_us.Percentile(0.99));
  systemd::Notify(
      fmt::format("STATUS={:.0f} records/s, durable seq {}, {} connections",
                  static_cast<double>(s->stats_.records - s->last_logged_records_) / (s->last_logged_ns_ ? secs : 1e9),
                  s->writer_->durable_seq(), s->all_.size()));
  s->last_logged_records_ = s->stats_.records;
  s->last_logged_ns_ = now;
}

// ---- Shutdown ----

void Server::OnSignal(uv_poll_t* h, int status, int /*events*/) {
  Server* s = Of(reinterpret_cast<uv_handle_t*>(h));
  if (status < 0) {
    // libuv stops the handle after an error: no stop signal would be heard
    // again, so stop now, the way SIGTERM would.
    spdlog::error("reading SIGTERM/SIGINT from the signalfd failed: {}", uv_strerror(status));
    if (s->state_ == State::kRunning) s->BeginDrain("signalfd error");
    return;
  }
  signalfd_siginfo si;
  while (::read(s->signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    const int signum = static_cast<int>(si.ssi_signo);
    if (s->state_ != State::kRunning) {
      spdlog::warn("{} again: still draining", strsignal(signum));
      continue;
    }
    s->BeginDrain(signum == SIGTERM ? "SIGTERM" : "SIGINT");
  }
}

void Server::OnWatchdogTimer(uv_timer_t* h) {
  Server* s = Of(reinterpret_cast<uv_handle_t*>(h));
  // WATCHDOG=1 only while both threads are healthy: this loop is running (we
  // are here), and the writer is either idle or has finished a batch since
  // the last ping. A stuck fdatasync stops the pings, and systemd restarts us.
  const uint64_t syncs = s->writer_->stats().syncs.load(std::memory_order_relaxed);
  s->Recycle();
  const bool idle = s->submitted_chunks_ == s->recycled_chunks_;
  const bool healthy = !s->writer_->failed() && (idle || syncs != s->watchdog_syncs_);
  s->watchdog_syncs_ = syncs;
  if (healthy) {
    systemd::Notify("WATCHDOG=1");
  } else {
    spdlog::warn("watchdog: the writer made no progress for half a watchdog interval; not pinging systemd");
  }
}

void Server::BeginDrain(const char* why) {
  systemd::Notify("STOPPING=1\nSTATUS=draining: making everything received durable");
  spdlog::info("{}: draining: no new connections or appends; making {} staged records durable", why,
               next_seq_ - 1 - writer_->durable_seq());
  state_ = State::kDraining;
  CloseHandle(&listener_, &listener_state_);
  for (Connection* c : all_) UpdateReading(c);  // stops every read
  HandOff();
  if (options_.drain_timeout_ms > 0) {
    uv_timer_start(&drain_timer_, OnDrainTimer, options_.drain_timeout_ms, options_.drain_timeout_ms);
  }
  CheckDrained();
}

// The drain's deadline: a peer that never reads its acks must not hold a stop
// until systemd's TimeoutStopSec kills wald. Once every record received is
// durable and its ack produced, connections whose output is still unsent are
// closed. Nothing is lost: the records are in the log; only those peers miss
// the acks (an unknown outcome to them, as after any broken connection).
void Server::OnDrainTimer(uv_timer_t* h) {
  Server* s = static_cast<Server*>(h->data);
  if (s->state_ != State::kDraining) return;
  if (s->acked_seq_ < s->next_seq_ - 1) {
    spdlog::warn("drain: {} ms passed and {} received records are not durable yet; still waiting for the writer",
                 s->options_.drain_timeout_ms, s->next_seq_ - 1 - s->acked_seq_);
    return;  // the watchdog covers a writer that is stuck
  }
  std::vector<Connection*> slow;
  for (Connection* c : s->all_) {
    if (c->write_in_flight || !c->out.empty()) slow.push_back(c);
  }
  if (slow.empty()) return;
  spdlog::warn(
      "drain: after {} ms, closing {} connection(s) that did not read their acks; every record they sent "
      "is durable (up to seq {}), they just will not hear it",
      s->options_.drain_timeout_ms, slow.size(), s->acked_seq_);
  for (Connection* c : slow) {
    c->out.clear();
    c->close_after_write = false;  // its write will never complete: close now (libuv cancels it)
    s->Close(c);
  }
  s->CheckDrained();
}

void Server::CheckDrained() {
  if (state_ != State::kDraining) return;
  // acked_seq_, not the writer's durable seq: records can be durable with
  // their acks not yet sent (the uv_async callback has not run yet).
  if (acked_seq_ < next_seq_ - 1) {
    HandOff();
    return;
  }
  for (Connection* c : all_) {
    if (c->write_in_flight || !c->out.empty()) return;  // acks still going out
  }
  // Everything received is durable and acked. Close the connections (a copy:
  // Close edits all_).
  std::vector<Connection*> conns = all_;
  for (Connection* c : conns) Close(c);
  spdlog::info("drained: durable seq {}", writer_->durable_seq());
  Shutdown(0);
}

void Server::FailStop() {
  const std::string why = writer_->failure();
  spdlog::critical(
      "the log writer failed: {}. Nothing more will be acked; failing every pending append and "
      "exiting so that recovery runs on restart",
      why);
  state_ = State::kFailed;
  systemd::Notify("STATUS=failed: " + why);
  CloseHandle(&listener_, &listener_state_);
  size_t failed = 0;
  std::vector<Connection*> conns = all_;
  for (Connection* c : conns) {
    while (!c->pending.empty()) {
      Send(c, fb_.Error(c->pending.front().request_id, proto::ErrorCode::ServerFailed, "server failed: " + why));
      c->pending.pop();
      ++failed;
    }
    SendErrorAndClose(c, 0, proto::ErrorCode::ServerFailed, "server failed: " + why);
  }
  spdlog::critical("failed {} pending appends", failed);
  Shutdown(1);
}

void Server::Shutdown(int exit_code) {
  exit_code_ = exit_code;
  state_ = State::kStopped;
  writer_->Stop();  // before closing async_: the writer may still send on it
  if (!writer_->close_status().ok()) {
    // Every record is durable and acked; only the clean-stop marker that
    // proves it to a later recovery is missing. Still an I/O error: fail-stop
    // promises a non-zero exit after one.
    spdlog::error("closing the log: {}", writer_->close_status().ToString());
    exit_code_ = 1;
  }
  CloseOwnHandles();
  if (owns_socket_file_) {
    ::unlink(options_.socket.c_str());
    owns_socket_file_ = false;
  }
}

}  // namespace wald::server

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer builds only. libuv closes descriptors with
// syscall(SYS_close), which TSan does not see (google/sanitizers#1376; libuv
// annotates it only when libuv itself is built with TSan, libuv#3112, and
// Debian's is not). To TSan a closed socket's descriptor then stays open, and
// when a pool thread reuses the number for LogReader::Open's directory scan,
// its closedir is reported as a race with the loop thread's last read,
// write or epoll_ctl on the old socket. (opendir's open happens inside glibc,
// so TSan does not see the descriptor being created anew, as it does for
// open and accept4.) ListDir's DIR is its own, so a report with closedir on
// one side is always this reuse.
extern "C" const char* __tsan_default_suppressions() { return "race:closedir\n"; }
#endif
