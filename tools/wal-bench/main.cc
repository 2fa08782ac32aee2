// wal-bench: a load generator for wald on the client library.
//
// By default every connection is driven from ONE event-loop thread through
// the client's fd() and poll() (epoll), the client model of redis-benchmark,
// so that comparisons with peers measured that way are fair; --threads
// spreads the connections over more loops. Each connection keeps --inflight
// appends outstanding. Latency is measured per record from append_async to
// its callback, into a full log-linear histogram (no sampling).
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "histogram_buckets.h"
#include "wald/client.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace buckets = wald::proto::buckets;

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

// [[µs, fraction of appends acked within it], ...]: the latency CDF, for
// bench/compare's plots.
nlohmann::ordered_json LatencyCdf(const std::vector<uint64_t>& hist_ns) {
  auto points = nlohmann::ordered_json::array();
  for (const auto& [ns, fraction] : buckets::Cdf(hist_ns)) points.push_back({static_cast<double>(ns) / 1e3, fraction});
  return points;
}

struct Options {
  std::string socket = "./wald.sock";
  int clients = 1;
  int inflight = 1;
  size_t size = 128;
  double duration = 0;
  uint64_t count = 0;
  int threads = 1;
  int followers = 0;
  bool json = false;
  bool coalesce = false;
  bool producer = false;
};

struct Shared {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> budget{INT64_MAX};  // appends still to start (--count)
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> errors{0};
};

struct Loop;

struct Conn {
  Loop* loop = nullptr;
  wald::Client client;
  explicit Conn(wald::Client c) : client(std::move(c)) {}
};

// One event-loop thread and its connections. Only its thread touches it
// while running; main reads the histogram after join.
struct Loop {
  const Options* opt = nullptr;
  Shared* shared = nullptr;
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<uint64_t> hist = std::vector<uint64_t>(buckets::kCount);  // ns
  uint64_t max_ns = 0;
  // One clock read per event round, as bench/bare.cc's client does: an
  // append queued in a round was sent at its start, an ack read in a round
  // arrived at its start. So the load costs no clock reads per record.
  uint64_t now_ns = 0;
  uint64_t done = 0;  // acked since the last round: added to shared->done once a round
  std::string payload;
  std::string error;

  bool Start(Conn* c) {
    if (shared->stop.load(std::memory_order_relaxed)) return false;
    if (opt->count > 0 && shared->budget.fetch_sub(1, std::memory_order_relaxed) <= 0) return false;
    const uint64_t t0 = now_ns;
    // The callback captures 16 bytes, which std::function stores inline: no
    // allocation per append.
    wald::Error e = c->client.append_async(payload, [c, t0](wald::Result<wald::Seq> r) {
      Loop* l = c->loop;
      const uint64_t ns = l->now_ns - t0;
      if (r.ok()) {
        ++l->hist[static_cast<size_t>(buckets::Index(ns))];
        if (ns > l->max_ns) l->max_ns = ns;
        ++l->done;
      } else {
        l->shared->errors.fetch_add(1, std::memory_order_relaxed);
      }
      l->Start(c);
    });
    if (!e.ok()) {
      shared->errors.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  void Run() {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (auto& c : conns) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c.get();
      epoll_ctl(ep, EPOLL_CTL_ADD, c->client.fd(), &ev);
      now_ns = NowNs();
      for (int i = 0; i < opt->inflight; ++i) Start(c.get());
      (void)c->client.flush();
    }
    std::vector<epoll_event> ready(conns.size());
    for (;;) {
      size_t live = 0;
      for (auto& c : conns) live += c->client.inflight();
      if (live == 0) break;
      int n = epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), 100);
      now_ns = NowNs();
      for (int i = 0; i < n; ++i) {
        Conn* c = static_cast<Conn*>(ready[i].data.ptr);
        const bool wanted_out = c->client.wants_write();
        if (wald::Error e = c->client.poll(0); !e.ok()) {
          error = e.message;
          shared->done.fetch_add(done, std::memory_order_relaxed);
          shared->stop = true;
          close(ep);
          return;
        }
        (void)c->client.flush();  // new appends from the callbacks: one write
        if (c->client.wants_write() != wanted_out) {
          epoll_event ev{};
          ev.events = c->client.wants_write() ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
          ev.data.ptr = c;
          epoll_ctl(ep, EPOLL_CTL_MOD, c->client.fd(), &ev);
        }
      }
      shared->done.fetch_add(done, std::memory_order_relaxed);
      done = 0;
    }
    close(ep);
  }
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"wal-bench: append load against a wald daemon"};
  app.set_version_flag("--version", std::string(WALD_VERSION));
  app.footer(R"(
Examples:
  wal-bench --clients 1 --inflight 1 --duration 10          # W1 serial
  wal-bench --clients 64 --inflight 1 --duration 10         # W2 fan-in
  wal-bench --clients 8 --inflight 64 --duration 10 --json  # W3 pipelined
  wal-bench --clients 8 --inflight 64 --duration 10 --coalesce  # W5: the same in AppendBatch frames
  wal-bench --clients 16 --size 4096 --count 200000         # W4 large)");
  app.add_option("--socket", o.socket, "wald's socket")->capture_default_str();
  app.add_option("--clients", o.clients, "Connections")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--inflight", o.inflight, "Appends outstanding per connection")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--size", o.size, "Payload bytes")->capture_default_str();
  auto* dur = app.add_option("--duration", o.duration, "Seconds to run (default 10)");
  auto* cnt = app.add_option("--count", o.count, "Total records, instead of a duration");
  dur->excludes(cnt);
  app.add_option("--threads", o.threads, "Event-loop threads the connections are spread over")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--followers", o.followers, "Extra connections that follow the log (subscribe) during the run")
      ->capture_default_str();
  app.add_flag("--json", o.json, "Print one JSON object");
  app.add_flag("--coalesce", o.coalesce,
               "Send the appends queued between two writes as AppendBatch frames (the client's batch_appends; "
               "off here so that W1-W4 measure one Append frame per record)");
  app.add_flag("--producer", o.producer,
               "Each connection is an idempotent producer (random id, numbered appends): what de-duplication "
               "costs");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // bad usage: 2, as wald and wal-tail
  }
  if (o.duration <= 0 && o.count == 0) o.duration = 10;

  auto stats_client = wald::connect(o.socket, {"wal-bench stats"});
  if (!stats_client.ok()) {
    std::fprintf(stderr, "wal-bench: %s\n", stats_client.error().message.c_str());
    return 1;
  }
  auto before = stats_client->stats();

  Shared shared;
  if (o.count > 0) shared.budget = static_cast<int64_t>(o.count);
  std::vector<Loop> loops(static_cast<size_t>(std::min(o.threads, o.clients)));
  std::string payload(o.size, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  for (auto& l : loops) {
    l.opt = &o;
    l.shared = &shared;
    l.payload = payload;
  }
  for (int i = 0; i < o.clients; ++i) {
    wald::ClientOptions copts{"wal-bench"};
    copts.batch_appends = o.coalesce;
    copts.producer = o.producer;
    copts.reconnect_timeout_ms = 0;  // a benchmark fails loudly instead
    auto c = wald::connect(o.socket, copts);
    if (!c.ok()) {
      std::fprintf(stderr, "wal-bench: connection %d: %s\n", i, c.error().message.c_str());
      return 1;
    }
    Loop& l = loops[static_cast<size_t>(i) % loops.size()];
    l.conns.push_back(std::make_unique<Conn>(std::move(c.value())));
    l.conns.back()->loop = &l;
  }

  // Followers: each subscribes from the end and counts what it receives.
  std::atomic<uint64_t> followed{0};
  std::vector<int> follower_fds;
  std::vector<std::thread> follower_threads;
  for (int i = 0; i < o.followers; ++i) {
    auto f = wald::connect(o.socket, {"wal-bench follower"});
    if (!f.ok()) {
      std::fprintf(stderr, "wal-bench: follower: %s\n", f.error().message.c_str());
      return 1;
    }
    follower_fds.push_back(f->fd());
    const wald::Seq from = f->durable_seq() + 1;
    follower_threads.emplace_back([&followed, from, c = std::move(f.value())]() mutable {
      (void)c.subscribe(from, [&followed](wald::Seq, std::span<const std::byte>) {
        followed.fetch_add(1, std::memory_order_relaxed);
        return true;
      });
    });
  }

  rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  const uint64_t t0 = NowNs();
  std::vector<std::thread> threads;
  for (auto& l : loops) threads.emplace_back([&l] { l.Run(); });
  const bool tty = isatty(STDERR_FILENO);
  uint64_t last_done = 0, last_ns = t0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const uint64_t now = NowNs();
    const double el = static_cast<double>(now - t0) / 1e9;
    if (o.duration > 0 && el >= o.duration) shared.stop = true;
    const bool finished = o.count > 0 && shared.done + shared.errors >= o.count;
    if (tty && now - last_ns >= 1000000000ull) {
      const uint64_t d = shared.done;
      std::fprintf(stderr, "\r%6.1f s  %12" PRIu64 " records  %10.0f records/s ", el, d,
                   static_cast<double>(d - last_done) / (static_cast<double>(now - last_ns) / 1e9));
      last_done = d;
      last_ns = now;
    }
    if (shared.stop || finished) break;
  }
  for (auto& t : threads) t.join();
  const double secs = static_cast<double>(NowNs() - t0) / 1e9;
  rusage ru1;
  getrusage(RUSAGE_SELF, &ru1);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec); };
  const double client_cpu_us = tv(ru1.ru_utime) - tv(ru0.ru_utime) + tv(ru1.ru_stime) - tv(ru0.ru_stime);
  // Let followers catch up with what was acked, then cut their connections
  // (a subscription ends with its connection).
  for (int i = 0; i < 100 && o.followers > 0 && followed.load() < shared.done.load() * o.followers; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int fd : follower_fds) ::shutdown(fd, SHUT_RDWR);
  for (auto& t : follower_threads) t.join();
  if (tty) std::fprintf(stderr, "\r%70s\r", "");
  for (auto& l : loops) {
    if (!l.error.empty()) std::fprintf(stderr, "wal-bench: %s\n", l.error.c_str());
  }

  std::vector<uint64_t> hist(buckets::kCount);
  uint64_t max_ns = 0;
  for (auto& l : loops) {
    for (size_t i = 0; i < hist.size(); ++i) hist[i] += l.hist[i];
    max_ns = std::max(max_ns, l.max_ns);
  }
  const uint64_t records = shared.done;
  double rps_sync = 0;
  auto after = stats_client->stats();
  if (before.ok() && after.ok() && after->syncs > before->syncs) {
    rps_sync =
        static_cast<double>(after->records - before->records) / static_cast<double>(after->syncs - before->syncs);
  }
  const double rate = static_cast<double>(records) / secs;
  const double mbs = rate * static_cast<double>(o.size) / 1e6;
  const double p50 = buckets::Percentile(hist, records, 0.5) / 1e3,
               p99 = buckets::Percentile(hist, records, 0.99) / 1e3,
               p999 = buckets::Percentile(hist, records, 0.999) / 1e3, mx = static_cast<double>(max_ns) / 1e3;
  if (o.json) {
    const nlohmann::ordered_json j = {
        {"records", records},
        {"seconds", secs},
        {"records_per_sec", rate},
        {"mb_per_sec", mbs},
        {"p50_us", p50},
        {"p99_us", p99},
        {"p999_us", p999},
        {"max_us", mx},
        {"errors", shared.errors.load()},
        {"records_per_sync", rps_sync},
        {"clients", o.clients},
        {"inflight", o.inflight},
        {"size", o.size},
        {"threads", loops.size()},
        {"followers", o.followers},
        {"followed_records", followed.load()},
        {"coalesce", o.coalesce},
        {"producer", o.producer},
        {"client_cpu_us_per_record", client_cpu_us / static_cast<double>(std::max<uint64_t>(1, records))},
        {"latency_cdf", LatencyCdf(hist)},
    };
    std::puts(j.dump().c_str());
  } else {
    std::printf("clients %d x inflight %d, %zu-byte records, %zu thread(s)\n", o.clients, o.inflight, o.size,
                loops.size());
    std::printf("records        %" PRIu64 " in %.2f s (%" PRIu64 " errors)\n", records, secs, shared.errors.load());
    std::printf("throughput     %.0f records/s, %.2f MB/s\n", rate, mbs);
    std::printf("latency        p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n", p50, p99, p999, mx);
    std::printf("per fdatasync  %.2f records\n", rps_sync);
    if (o.followers > 0) std::printf("followers      %d received %" PRIu64 " records\n", o.followers, followed.load());
  }
  return shared.errors.load() == 0 ? 0 : 1;
}
