// wal-ship: ships wald's durable log into a NATS JetStream stream, exactly
// once (README, "Past one host"; the design is in shipper.h).
//
//   wal-ship --socket /run/wald/wald.sock --nats nats://a:4222,nats://b:4222
//   wal-ship --socket ... --nats ... --once --json   # ship what is durable now, then exit
//
// Exit codes: 0 done (or stopped by SIGTERM/SIGINT), 1 a fatal error (a
// stream of another log, records wald no longer has), 2 a bad option,
// 3 JetStream lost records it had acked (wald still has them).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <sstream>

#include "shipper.h"
#include "time_spec.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

constexpr int kExitUsage = 2;

const char* kFooter = R"(Exactly once: each record becomes one message carrying its wald seq (header Wald-Seq), the
log id (Wald-Log-Id), Nats-Msg-Id <log id>:<seq> and Nats-Expected-Last-Sequence, so JetStream stores
it only as the message right after the last one: never twice, never out of order, across crashes,
outages longer than the duplicate window, and a second wal-ship. wal-ship resumes from the stream's
last message. Its hold in wald (--hold) moves only past records JetStream acked more than
--release-delay ago (nats-server's file store syncs every 60 s): wald keeps whatever NATS could lose.)";

bool ParseSpan(const std::string& text, uint64_t* ns, std::string* error, const char* flag) {
  auto v = wald::tools::ParseTimeSpan(text);
  if (!v) {
    *error = std::string(flag) + ": '" + text + "' is not a time span (e.g. 90s, 5min, 1h 30min)";
    return false;
  }
  *ns = *v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  wald::ship::ShipOptions o;
  std::string nats_urls, release_delay = "90s", dup_window;
  CLI::App app{"Ships wald's durable log into a NATS JetStream stream, exactly once.", "wal-ship"};
  app.footer(kFooter);
  app.set_version_flag("--version", std::string(WALD_VERSION));
  app.add_option("--socket", o.socket, "wald's socket")->required();
  app.add_option("--nats", nats_urls, "NATS server URL(s), comma-separated")->required();
  app.add_option("--stream", o.stream, "JetStream stream (default: wald-<log id>)");
  app.add_option("--subject", o.subject, "Subject of the messages (default: wald.<log id>)");
  app.add_option("--replicas", o.replicas, "Replicas of the stream, when wal-ship creates it")
      ->capture_default_str()
      ->check(CLI::Range(1, 5));
  app.add_option("--max-inflight", o.nats.max_pending, "Publishes awaiting their JetStream ack")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--release-delay", release_delay,
                 "Hold wald's copy this long after JetStream's ack (a time span: 90s, 5min)")
      ->capture_default_str();
  app.add_option("--hold", o.hold, "Name of wal-ship's hold in wald")->capture_default_str();
  app.add_option("--creds", o.nats.creds_file, "NATS credentials file (.creds)")->check(CLI::ExistingFile);
  app.add_option("--tls-ca", o.nats.tls_ca, "CA certificates to verify the NATS servers by (implies TLS)")
      ->check(CLI::ExistingFile);
  app.add_option("--duplicate-window", dup_window,
                 "Nats-Msg-Id de-duplication window of a stream wal-ship creates (default: the server's, 2min)");
  app.add_option("--ack-timeout", o.nats.ack_timeout_ms, "Milliseconds to wait for a publish's ack")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  app.add_flag("--once", o.once, "Ship what is durable now, wait for its acks, print a summary and exit");
  app.add_flag("--json", o.json, "Summary and periodic stats as JSON lines on stdout");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  std::string error;
  if (!ParseSpan(release_delay, &o.release_delay_ns, &error, "--release-delay")) {
    std::fprintf(stderr, "wal-ship: %s\n", error.c_str());
    return kExitUsage;
  }
  if (!dup_window.empty()) {
    uint64_t ns = 0;
    if (!ParseSpan(dup_window, &ns, &error, "--duplicate-window") || ns < 100'000'000) {
      std::fprintf(stderr, "wal-ship: --duplicate-window: '%s' is not a time span of at least 100ms\n",
                   dup_window.c_str());
      return kExitUsage;
    }
    o.duplicate_window_ns = static_cast<int64_t>(ns);
  }
  std::stringstream urls(nats_urls);
  for (std::string u; std::getline(urls, u, ',');) {
    if (!u.empty()) o.nats.urls.push_back(u);
  }
  if (o.nats.urls.empty()) {
    std::fprintf(stderr, "wal-ship: --nats: no URL in '%s'\n", nats_urls.c_str());
    return kExitUsage;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  wald::ship::Shipper shipper(std::move(o), &g_stop);
  return shipper.Run();
}
