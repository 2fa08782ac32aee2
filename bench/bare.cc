// wald-bare: a bare-bones reference WAL server and its load client, to show
// what this machine allows. On a shared VM wald's benchmark numbers mean
// little alone; run wald-bare in the same session to compare wald with the
// least work any WAL server must do: read records from Unix sockets, write
// them to a file with group commit (one pwrite + one fdatasync for everything
// that arrived during the previous sync), ack them. libc/POSIX only.
//
// Deliberately skipped (wald does all of it): a real protocol (FlatBuffers,
// sequence numbers, errors), checksums, segments, padding, recovery, trim,
// reads, peer credentials, backpressure (the clients' --inflight bounds
// memory), acking on shutdown. The file is pre-allocated and pre-zeroed, so
// appends never grow it, and writing wraps to offset 0 when it is full.
//
//   wald-bare server --socket PATH --file PATH [--file-size BYTES (1G)]
//   wald-bare client --socket PATH [--clients N (1)] [--inflight K (1)]
//                    [--size BYTES (128)] [--duration S (10)] [--json]
// Sizes take a K/M/G (binary) suffix. SIGTERM/SIGINT stops the server, which
// then prints records, fdatasyncs and records per fdatasync to stderr.
//
// Wire format, integers little-endian:
//   client -> server  u32 length, then `length` payload bytes: one record.
//                     Length 0xFFFFFFFF (no payload) is a stats request.
//   server -> client  u64: how many of this connection's records are durable
//                     (cumulative), once per fdatasync that made any of them
//                     durable, so one ack may cover many records. A stats
//                     request is answered with two u64s, records made durable
//                     and fdatasyncs since start. Acks and stats replies share
//                     the stream, so stats go on a connection of their own.
//
// The client mirrors tools/wal-bench's default model: one thread, epoll, N
// connections each keeping K records in flight; per-record latency (queued to
// acked) in wal-bench's log-linear histogram, no sampling; the same --json
// fields, records_per_sync from server stats taken before and after (and
// wald's histogram layout, protocol/histogram_buckets.h, header-only). It checks
// that acks never exceed what was sent, never repeat, and cover every record.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "histogram_buckets.h"

namespace {
namespace buckets = wald::proto::buckets;

constexpr uint32_t kStatsFrame = 0xFFFFFFFF;
constexpr uint32_t kMaxRecord = 1 << 20;  // as wald's default --max-record

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "wald-bare: %s: %s\n", what, std::strerror(errno));
  _exit(1);
}

uint64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t GetLE(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

void PutLE(char* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i, v >>= 8) p[i] = static_cast<char>(v & 0xFF);
}

void Watch(int ep, int op, int fd, uint64_t id, bool out) {
  epoll_event ev{};
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
  ev.data.u64 = id;
  if (epoll_ctl(ep, op, fd, &ev) != 0) Die("epoll_ctl");
}

void PwriteAll(int fd, const char* data, size_t len, uint64_t offset) {
  while (len > 0) {
    const ssize_t w = pwrite(fd, data, len, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) Die("pwrite");
    data += w, len -= static_cast<size_t>(w), offset += static_cast<uint64_t>(w);
  }
}

sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "wald-bare: socket path too long: %s\n", path.c_str());
    std::exit(2);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// ---------------------------------------------------------------- server ---

class Server {
 public:
  int Serve(const std::string& socket_path, const std::string& file_path, uint64_t file_size) {
    file_size_ = file_size;
    file_fd_ = open(file_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (file_fd_ < 0) Die(file_path.c_str());
    const std::vector<char> zeros(1 << 20);
    for (uint64_t off = 0; off < file_size; off += zeros.size()) {
      PwriteAll(file_fd_, zeros.data(), std::min<uint64_t>(zeros.size(), file_size - off), off);
    }
    if (fdatasync(file_fd_) != 0) Die("fdatasync");

    sigset_t sigs;  // blocked before the writer starts, so that it inherits the mask
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    const int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || event_fd_ < 0 || lfd < 0 || ep_ < 0) Die("signalfd/eventfd/socket/epoll");
    const sockaddr_un addr = UnixAddress(socket_path);
    unlink(socket_path.c_str());
    if (bind(lfd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) Die(socket_path.c_str());
    if (listen(lfd, SOMAXCONN) != 0) Die("listen");
    Watch(ep_, EPOLL_CTL_ADD, lfd, kListenId, false);
    Watch(ep_, EPOLL_CTL_ADD, event_fd_, kEventId, false);
    Watch(ep_, EPOLL_CTL_ADD, sfd, kSignalId, false);
    std::thread writer([this] { WriterLoop(); });
    std::fprintf(stderr, "wald-bare: listening on %s, file %s (%" PRIu64 " bytes)\n", socket_path.c_str(),
                 file_path.c_str(), file_size);

    std::vector<epoll_event> ready(256);
    for (bool running = true; running;) {
      const int n = epoll_wait(ep_, ready.data(), static_cast<int>(ready.size()), -1);
      if (n < 0 && errno != EINTR) Die("epoll_wait");
      for (int i = 0; i < n; ++i) {
        const auto [events, data] = ready[static_cast<size_t>(i)];
        if (data.u64 == kListenId)
          Accept(lfd);
        else if (data.u64 == kEventId)
          OnDurable();
        else if (data.u64 == kSignalId)
          running = false;
        else if (auto it = conns_.find(data.u64); it != conns_.end()) {  // else closed this round
          bool ok = !(events & EPOLLOUT) || Flush(it->second);
          if (ok && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) ok = Read(it->second);
          if (!ok) Close(it);
        }
      }
    }
    unlink(socket_path.c_str());
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    writer.join();  // writes what is staged; nobody is acked any more
    const uint64_t records = durable_seq_.load(), syncs = syncs_.load();
    std::fprintf(stderr, "wald-bare: %" PRIu64 " records, %" PRIu64 " syncs, %.2f records per sync\n", records, syncs,
                 syncs ? static_cast<double>(records) / static_cast<double>(syncs) : 0.0);
    return 0;
  }

 private:
  static constexpr uint64_t kListenId = 1, kEventId = 2, kSignalId = 3;  // connections: 16 up
  struct Conn {
    uint64_t id = 0;
    int fd = -1;
    std::vector<char> in = std::vector<char>(64 << 10);  // grows for a larger record
    size_t in_len = 0;
    uint64_t durable = 0, acked = 0;  // records made durable; the count announced by the last ack
    std::vector<char> out;            // unsent ack or stats bytes, from out_off
    size_t out_off = 0;
    bool want_out = false;
  };
  using ConnMap = std::unordered_map<uint64_t, Conn>;  // by id, the epoll data
  struct Run {
    uint64_t conn, first, end;
  };  // records [first, end) of the global order, one conn's

  // The writer thread: takes everything staged, one pwrite (two when it wraps),
  // one fdatasync, publishes the durable count and wakes the epoll thread.
  void WriterLoop() {
    std::vector<char> batch;
    uint64_t offset = 0;
    for (;;) {
      uint64_t end_seq = 0;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return !staged_.empty() || stopping_; });
        if (staged_.empty()) return;  // stopping, and everything is written
        batch.swap(staged_);
        end_seq = staged_seq_;
      }
      for (size_t done = 0; done < batch.size();) {
        if (offset == file_size_) offset = 0;  // full: wrap
        const size_t len = std::min<uint64_t>(batch.size() - done, file_size_ - offset);
        PwriteAll(file_fd_, batch.data() + done, len, offset);
        done += len, offset += len;
      }
      if (fdatasync(file_fd_) != 0) Die("fdatasync");
      batch.clear();  // keeps its capacity for the swap back
      syncs_.fetch_add(1, std::memory_order_relaxed);
      durable_seq_.store(end_seq, std::memory_order_release);
      const uint64_t one = 1;
      if (write(event_fd_, &one, sizeof one) != sizeof one) Die("eventfd");
    }
  }

  void Accept(int lfd) {
    for (;;) {
      const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
      if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (fd < 0) Die("accept");
      Conn& c = conns_[next_id_];
      c.id = next_id_++;
      c.fd = fd;
      Watch(ep_, EPOLL_CTL_ADD, fd, c.id, false);
    }
  }

  // One recv per readiness (level-triggered); then every complete record is
  // staged with one copy, as the wire framing is the file format.
  bool Read(Conn& c) {
    const ssize_t n = recv(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len, 0);
    if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EINTR);  // 0: the peer closed
    c.in_len += static_cast<size_t>(n);
    size_t pos = 0, from = 0;
    uint64_t records = 0;
    while (c.in_len - pos >= 4) {
      const uint64_t len = GetLE(&c.in[pos], 4);
      if (len == kStatsFrame) {
        Stage(c, from, pos, records);
        records = 0;
        from = pos += 4;
        c.out.resize(c.out.size() + 16);
        PutLE(c.out.data() + c.out.size() - 16, durable_seq_.load(std::memory_order_acquire), 8);
        PutLE(c.out.data() + c.out.size() - 8, syncs_.load(std::memory_order_relaxed), 8);
        if (!Flush(c)) return false;
      } else if (len > kMaxRecord) {
        std::fprintf(stderr, "wald-bare: a %" PRIu64 "-byte record: closing its connection\n", len);
        return false;
      } else if (c.in_len - pos - 4 >= len) {
        pos += 4 + len;
        ++records;
      } else {
        break;
      }
    }
    Stage(c, from, pos, records);
    std::memmove(c.in.data(), c.in.data() + pos, c.in_len - pos);
    c.in_len -= pos;
    if (c.in_len >= 4) c.in.resize(std::max<size_t>(c.in.size(), 4 + GetLE(c.in.data(), 4)));
    return true;
  }

  void Stage(const Conn& c, size_t from, size_t to, uint64_t records) {
    if (records == 0) return;
    const uint64_t first = next_seq_;
    next_seq_ += records;
    {
      std::lock_guard lock(mu_);
      staged_.insert(staged_.end(), c.in.data() + from, c.in.data() + to);
      staged_seq_ = next_seq_;
    }
    cv_.notify_one();
    if (!runs_.empty() && runs_.back().conn == c.id)
      runs_.back().end = next_seq_;
    else
      runs_.push_back({c.id, first, next_seq_});
  }

  // Sends what is pending and then, if the durable count moved, a new ack.
  bool Flush(Conn& c) {
    for (;;) {
      if (c.out_off == c.out.size()) {
        c.out.clear();
        c.out_off = 0;
        if (c.acked == c.durable) break;
        c.out.resize(8);
        PutLE(c.out.data(), c.durable, 8);
        c.acked = c.durable;
      }
      const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
      if (n < 0) break;
      c.out_off += static_cast<size_t>(n);
    }
    if (const bool want = c.out_off < c.out.size(); want != c.want_out) {
      Watch(ep_, EPOLL_CTL_MOD, c.fd, c.id, want);
      c.want_out = want;
    }
    return true;
  }

  // Credits newly durable records to their connections, then acks each once.
  void OnDurable() {
    uint64_t ignored;
    (void)!read(event_fd_, &ignored, sizeof ignored);
    const uint64_t durable = durable_seq_.load(std::memory_order_acquire);
    while (!runs_.empty() && runs_.front().first < durable) {
      Run& r = runs_.front();
      const uint64_t upto = std::min(r.end, durable);
      if (auto it = conns_.find(r.conn); it != conns_.end()) it->second.durable += upto - r.first;
      r.first = upto;  // (a closed connection's records were written all the same)
      if (r.first == r.end) runs_.pop_front();
    }
    for (auto it = conns_.begin(); it != conns_.end();) {  // few connections in a benchmark
      const bool ok = it->second.durable == it->second.acked || Flush(it->second);
      it = ok ? std::next(it) : Close(it);
    }
  }

  ConnMap::iterator Close(ConnMap::iterator it) {
    close(it->second.fd);  // also leaves the epoll set
    return conns_.erase(it);
  }

  // Shared by the epoll thread and the writer thread.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<char> staged_;  // guarded by mu_: records the writer has not taken yet
  uint64_t staged_seq_ = 0;   // guarded by mu_: records staged since start
  bool stopping_ = false;     // guarded by mu_
  std::atomic<uint64_t> durable_seq_{0}, syncs_{0};
  int file_fd_ = -1, event_fd_ = -1;
  uint64_t file_size_ = 0;
  // The epoll thread's own.
  int ep_ = -1;
  uint64_t next_seq_ = 0, next_id_ = 16;
  ConnMap conns_;
  std::deque<Run> runs_;  // staged records not known durable yet, in order
};

// ---------------------------------------------------------------- client ---

struct ClientConn {
  int fd = -1;
  uint64_t sent = 0, acked = 0;   // records
  uint64_t unsent_bytes = 0;      // queued, not yet written
  size_t frame_pos = 0;           // where the next byte to write sits in its frame
  std::vector<uint64_t> sent_ns;  // ring: record i was queued at sent_ns[i % inflight]
  char partial[8] = {};           // an ack split between two reads
  size_t partial_len = 0;
  bool want_out = false;
};

int Connect(const std::string& path) {
  const sockaddr_un addr = UnixAddress(path);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) Die(path.c_str());
  return fd;
}

// {records made durable, fdatasyncs}, over a blocking connection of its own.
std::pair<uint64_t, uint64_t> ServerStats(int fd) {
  char buf[16];
  PutLE(buf, kStatsFrame, 4);
  if (send(fd, buf, 4, MSG_NOSIGNAL) != 4) Die("stats request");
  errno = ECONNRESET;  // what a short reply means
  if (recv(fd, buf, sizeof buf, MSG_WAITALL) != sizeof buf) Die("stats reply");
  return {GetLE(buf, 8), GetLE(buf + 8, 8)};
}

// One thread drives every connection; epoll data is the connection's index.
class Load {
 public:
  Load(std::vector<ClientConn>& conns, uint64_t inflight, size_t size)
      : conns_(conns), inflight_(inflight), frame_len_(4 + size) {
    const size_t frames = std::clamp<size_t>((256 << 10) / frame_len_, 1, inflight);
    for (size_t f = 0; f < frames; ++f) {  // identical frames back to back: sends copy nothing
      frames_.resize(frames_.size() + 4);
      PutLE(frames_.data() + frames_.size() - 4, size, 4);
      for (size_t i = 0; i < size; ++i) frames_.push_back(static_cast<char>('a' + i % 26));
    }
  }

  std::string error;
  uint64_t total_sent = 0, total_acked = 0, max_ns = 0;
  std::vector<uint64_t> hist = std::vector<uint64_t>(buckets::kCount);  // ns

  // Keeps records in flight until `deadline`, then waits for the last acks.
  // False, with `error` set, on a bad ack or a lost connection.
  bool Run(uint64_t deadline, uint64_t drain_deadline) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < conns_.size(); ++i) {
      Watch(ep_, EPOLL_CTL_ADD, conns_[i].fd, i, false);
      conns_[i].sent_ns.resize(inflight_);
      if (!Refill(i, NowNs(), deadline)) return false;
    }
    std::vector<epoll_event> ready(conns_.size());
    for (;;) {
      const uint64_t now = NowNs();
      if (now >= deadline && total_acked == total_sent) return true;
      if (now >= drain_deadline) return Fail("timed out waiting for acks");
      const uint64_t wait_ns = (now < deadline ? deadline : drain_deadline) - now;
      const int n = epoll_wait(ep_, ready.data(), static_cast<int>(ready.size()),
                               static_cast<int>(std::min<uint64_t>(100, wait_ns / 1000000 + 1)));
      if (n < 0 && errno != EINTR) Die("epoll_wait");
      const uint64_t t = NowNs();  // for the acks read and the records they make room for
      for (int i = 0; i < n; ++i) {
        const auto [events, data] = ready[static_cast<size_t>(i)];
        if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !ReadAcks(conns_[data.u64], t)) return false;
        if (!Refill(data.u64, t, deadline)) return false;
      }
    }
  }

 private:
  bool Fail(const std::string& what) {
    error = what;
    return false;
  }

  // Queues records up to --inflight (before the deadline), then writes.
  bool Refill(size_t index, uint64_t now, uint64_t deadline) {
    ClientConn& c = conns_[index];
    for (; now < deadline && c.sent - c.acked < inflight_; ++c.sent, ++total_sent) {
      c.sent_ns[c.sent % inflight_] = now;
      c.unsent_bytes += frame_len_;
    }
    while (c.unsent_bytes > 0) {
      const size_t len = std::min<uint64_t>(c.unsent_bytes, frames_.size() - c.frame_pos);
      const ssize_t n = send(c.fd, frames_.data() + c.frame_pos, len, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return Fail(std::string("send: ") + std::strerror(errno));
      if (n < 0) break;
      c.unsent_bytes -= static_cast<uint64_t>(n);
      c.frame_pos = (c.frame_pos + static_cast<size_t>(n)) % frame_len_;
    }
    if (const bool want = c.unsent_bytes > 0; want != c.want_out) {
      Watch(ep_, EPOLL_CTL_MOD, c.fd, index, want);
      c.want_out = want;
    }
    return true;
  }

  // Each ack is a cumulative count: it must advance and never pass `sent`.
  bool ReadAcks(ClientConn& c, uint64_t now) {
    char buf[4096];
    std::memcpy(buf, c.partial, c.partial_len);
    const ssize_t n = recv(c.fd, buf + c.partial_len, sizeof buf - c.partial_len, 0);
    if (n == 0) return Fail("the server closed a connection");
    if (n < 0) return errno == EAGAIN || errno == EINTR || Fail(std::string("recv: ") + std::strerror(errno));
    const size_t len = c.partial_len + static_cast<size_t>(n);
    size_t pos = 0;
    for (; len - pos >= 8; pos += 8) {
      const uint64_t count = GetLE(buf + pos, 8);
      if (count <= c.acked || count > c.sent) {
        return Fail("bad ack " + std::to_string(count) + " (acked " + std::to_string(c.acked) + ", sent " +
                    std::to_string(c.sent) + ")");
      }
      total_acked += count - c.acked;
      for (; c.acked < count; ++c.acked) {
        const uint64_t ns = now - c.sent_ns[c.acked % inflight_];
        ++hist[static_cast<size_t>(buckets::Index(ns))];
        max_ns = std::max(max_ns, ns);
      }
    }
    c.partial_len = len - pos;
    std::memcpy(c.partial, buf + pos, c.partial_len);
    return true;
  }

  std::vector<ClientConn>& conns_;
  const uint64_t inflight_;
  const size_t frame_len_;
  std::vector<char> frames_;
  int ep_ = -1;
};

int RunClient(const std::string& socket_path, uint64_t clients, uint64_t inflight, uint64_t size, double duration,
              bool json) {
  const int stats_fd = Connect(socket_path);
  std::vector<ClientConn> conns(clients);
  for (auto& c : conns) {
    c.fd = Connect(socket_path);
    if (fcntl(c.fd, F_SETFL, O_NONBLOCK) != 0) Die("fcntl");
  }
  Load load(conns, inflight, size);
  const auto [records0, syncs0] = ServerStats(stats_fd);
  rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  const uint64_t t0 = NowNs(), deadline = t0 + static_cast<uint64_t>(duration * 1e9);
  const bool ok = load.Run(deadline, deadline + 10000000000ull);  // up to 10 s to drain
  const double secs = static_cast<double>(NowNs() - t0) / 1e9;
  getrusage(RUSAGE_SELF, &ru1);
  if (!ok) {
    std::fprintf(stderr, "wald-bare client: %s\n", load.error.c_str());
    return 1;
  }
  const auto [records1, syncs1] = ServerStats(stats_fd);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec); };
  const double cpu_us = tv(ru1.ru_utime) - tv(ru0.ru_utime) + tv(ru1.ru_stime) - tv(ru0.ru_stime);
  const uint64_t records = load.total_acked;
  const double rps_sync =
      syncs1 > syncs0 ? static_cast<double>(records1 - records0) / static_cast<double>(syncs1 - syncs0) : 0;
  const double rate = static_cast<double>(records) / secs, mbs = rate * static_cast<double>(size) / 1e6;
  auto pct_us = [&](double p) { return static_cast<double>(buckets::Percentile(load.hist, records, p)) / 1e3; };
  const double p50 = pct_us(0.5), p99 = pct_us(0.99), p999 = pct_us(0.999);
  const double mx = static_cast<double>(load.max_ns) / 1e3;
  if (json) {
    auto cdf = nlohmann::ordered_json::array();
    for (const auto& [ns, fraction] : buckets::Cdf(load.hist)) cdf.push_back({static_cast<double>(ns) / 1e3, fraction});
    const nlohmann::ordered_json j = {
        {"records", records},
        {"seconds", secs},
        {"records_per_sec", rate},
        {"mb_per_sec", mbs},
        {"p50_us", p50},
        {"p99_us", p99},
        {"p999_us", p999},
        {"max_us", mx},
        {"errors", 0},
        {"records_per_sync", rps_sync},
        {"clients", clients},
        {"inflight", inflight},
        {"size", size},
        {"threads", 1},
        {"client_cpu_us_per_record", cpu_us / static_cast<double>(std::max<uint64_t>(1, records))},
        {"server", "bare"},
        {"latency_cdf", cdf},
    };
    std::puts(j.dump().c_str());
  } else {
    std::printf("clients %" PRIu64 " x inflight %" PRIu64 ", %" PRIu64 "-byte records, wald-bare\n", clients, inflight,
                size);
    std::printf("records        %" PRIu64 " in %.2f s, each acked once\n", records, secs);
    std::printf("throughput     %.0f records/s, %.2f MB/s\n", rate, mbs);
    std::printf("latency        p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n", p50, p99, p999, mx);
    std::printf("per fdatasync  %.2f records\n", rps_sync);
  }
  return 0;
}

// A number with an optional K, M or G (binary) suffix; false if malformed.
bool ParseNum(const std::string& s, uint64_t* v) {
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  errno = 0;
  *v = std::strtoull(s.c_str(), &end, 10);
  const std::string unit = end;
  const int shift = unit.empty() ? 0 : unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : -1;
  if (shift < 0 || errno != 0) return false;
  *v <<= shift;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  std::map<std::string, std::string> opt = {{"--socket", ""},     {"--file", ""},      {"--file-size", "1G"},
                                            {"--clients", "1"},   {"--inflight", "1"}, {"--size", "128"},
                                            {"--duration", "10"}, {"--json", ""}};
  bool ok = mode == "server" || mode == "client";
  for (int i = 2; ok && i < argc; ++i) {
    const std::string key = argv[i];
    const bool server_only = key == "--file" || key == "--file-size";
    ok =
        opt.count(key) && (key == "--socket" || server_only == (mode == "server")) && (key == "--json" || i + 1 < argc);
    if (ok) opt[key] = key == "--json" ? "1" : argv[++i];
  }
  uint64_t file_size = 0, clients = 0, inflight = 0, size = 0;
  char* end = nullptr;
  const double duration = std::strtod(opt["--duration"].c_str(), &end);
  ok = ok && !opt["--socket"].empty() && ParseNum(opt["--file-size"], &file_size) && file_size > 0 &&
       ParseNum(opt["--clients"], &clients) && clients >= 1 && clients <= 100000 &&
       ParseNum(opt["--inflight"], &inflight) && inflight >= 1 && inflight <= (1 << 20) &&
       ParseNum(opt["--size"], &size) && size <= kMaxRecord && *end == '\0' && duration > 0;
  if (ok && mode == "server" && !opt["--file"].empty()) {
    return Server().Serve(opt["--socket"], opt["--file"], file_size);
  }
  if (ok && mode == "client") {
    return RunClient(opt["--socket"], clients, inflight, size, duration, !opt["--json"].empty());
  }
  std::fprintf(stderr,
               "usage: wald-bare server --socket PATH --file PATH [--file-size BYTES (1G)]\n"
               "       wald-bare client --socket PATH [--clients N (1)] [--inflight K (1)] [--size BYTES (128)]\n"
               "                        [--duration S (10)] [--json]\n");
  return 2;
}
