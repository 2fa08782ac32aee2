// wald: the daemon's entry point. Parses the command line (CLI11, with an
// optional config file), sets up logging, and runs the Server; `wald stats`
// queries a running daemon.
#include <malloc.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "retention_commands.h"
#include "server/metrics_listener.h"
#include "server/server.h"
#include "server/systemd.h"
#include "stats_command.h"
#include "time_spec.h"
#ifdef WALD_FAULT_INJECTION
#include "fault_flags.h"
#endif

namespace {

constexpr const char* kExamples = R"(
Examples:
  wald                                  # ./wald-data, ./wald.sock
  wald --dir /var/lib/wald --socket /run/wald/wald.sock
  wald --config /etc/wald/wald.toml
  wald stats --socket ./wald.sock
  wald hold backup 1200 --socket ./wald.sock   # keep every record above 1200
  wald trim 5000 --socket ./wald.sock          # release up to 5000, never past a hold
  wald holds --socket ./wald.sock
  wald release backup --socket ./wald.sock

Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT drain), 1 after a fatal
error (the log writer failed, or start-up failed), 2 for bad options.)";

// A daemon serving many clients needs many descriptors: lift the soft limit
// to the hard one.
void RaiseFileLimit() {
  rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena (glibc). The append path allocates nothing; the read
  // pool's threads allocate a buffer per chunk, and with an arena per thread
  // the freed buffers stayed resident: 3,008 followers woken by one record
  // cost the daemon +15 to +27 MB RSS with the default arenas, +3.5 MB with
  // one (bounds_test).
  mallopt(M_ARENA_MAX, 1);
  std::signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit();
  wald::server::ServerOptions o;
  std::string log_level = "info";
  std::string verify = "last";

  CLI::App app{"wald: a local write-ahead-log daemon (group commit over a Unix socket)"};
  app.footer(kExamples);
  app.set_version_flag("--version", std::string(WALD_VERSION));
  app.set_config("--config", "", "Read options from this TOML or INI file");
  // A key that names no option (a typo, segment_size for segment-size) is
  // an error naming it, never silently ignored.
  app.allow_config_extras(CLI::config_extras_mode::error);
  auto* dir_opt = app.add_option("--dir", o.dir,
                                 "Log directory (created if missing; default under systemd: "
                                 "$STATE_DIRECTORY)")
                      ->capture_default_str();
  app.add_option("--socket", o.socket, "Unix socket path to listen on")->capture_default_str();
  app.add_option("--socket-mode", o.socket_mode, "Permissions of the socket file (octal, e.g. 0660)")
      ->transform([](std::string s) {
        // Octal, at most 0777, and the owner may read and write: the mode is
        // applied as a umask around bind, which must not strip the owner's
        // bits from a segment another thread creates meanwhile.
        if (s.empty() || s.size() > 4 || s.find_first_not_of("01234567") != std::string::npos) {
          throw CLI::ValidationError("--socket-mode", "'" + s + "' is not an octal mode such as 0660");
        }
        const unsigned long mode = std::stoul(s, nullptr, 8);
        if (mode > 0777 || (mode & 0600) != 0600) {
          throw CLI::ValidationError("--socket-mode",
                                     "'" + s + "' must be at most 0777 and let the owner read and write (0600)");
        }
        return std::to_string(mode);
      });
  app.add_option("--segment-size", o.segment_size, "Bytes per segment file (e.g. 64MiB)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--max-record", o.max_record, "Largest Append payload accepted (e.g. 1MiB)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--max-unsynced-bytes", o.max_unsynced_bytes,
                 "Bytes received but not yet durable before every socket stops being read")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--max-inflight", o.max_inflight, "Unacked appends per connection before it stops being read")
      ->capture_default_str();
  app.add_option("--max-reads-per-connection", o.max_reads_per_connection,
                 "Open Reads one connection may have; more get Error TooManyReads")
      ->check(CLI::Range(1u, 1u << 20))
      ->capture_default_str();
  app.add_option("--max-partial-bytes", o.max_partial_bytes,
                 "Incomplete frames held across all connections; a connection whose frame would pass it is closed")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--max-connection-bytes", o.max_connection_bytes,
                 "Unacked payload plus unsent output per connection before it stops being read")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--spin-min-us", o.spin.spin_min_us, "Writer: shortest spin before parking when idle")
      ->capture_default_str();
  app.add_option("--spin-max-us", o.spin.spin_max_us, "Writer: longest spin before parking when idle")
      ->capture_default_str();
  app.add_option("--ack-spin-us", o.ack_spin_us,
                 "Loop: wait this long for a lone record's fdatasync instead of sleeping (0: never)")
      ->capture_default_str();
  app.add_option("--allow-uid", o.allow_uids, "Only these peer uids may connect (repeatable)");
  app.add_option("--allow-gid", o.allow_gids,
                 "Only peers in these groups (primary or supplementary) may connect (repeatable)");
  app.add_option("--allow-trim-uid", o.allow_trim_uids,
                 "Only these peer uids may Trim (repeatable; with --allow-trim-gid; default: any peer)");
  app.add_option("--allow-trim-gid", o.allow_trim_gids,
                 "Only peers in these groups may Trim (repeatable; with --allow-trim-uid)");
  app.add_option("--verify-on-open", verify, "Records scanned at open: last (segment) or all")
      ->check(CLI::IsMember({"last", "all"}))
      ->capture_default_str();
  app.add_flag("--salvage", o.salvage,
               "Cut the log at damage found at open instead of refusing to start (the cut bytes go to a "
               ".broken file; seqs that may have been acked are never handed out again)");
  app.add_option("--producer-window", o.producer_window,
                 "Records an idempotent producer's appends are de-duplicated over: a producer whose last record is "
                 "further behind the end of the log is forgotten; read back at start to rebuild the table")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--max-producers", o.max_producers,
                 "Idempotent producers remembered at once; beyond it the one idle longest is forgotten")
      ->check(CLI::Range(size_t{1}, size_t{1} << 24))
      ->capture_default_str();
  std::string stamp = "all";
  app.add_option("--stamp", stamp, "Metadata stored with each record: all (time, pid, uid, gid), time, none")
      ->check(CLI::IsMember({"all", "time", "none"}))
      ->capture_default_str();
  double drain_timeout_s = 10;
  app.add_option("--max-connections", o.max_connections,
                 "Connections at once; more (or more than the descriptor limit allows, less 64 kept for storage) "
                 "get Error TooManyConnections")
      ->check(CLI::Range(1u, 1u << 20))
      ->capture_default_str();
  double hello_timeout_s = static_cast<double>(o.hello_timeout_ms) / 1000;
  app.add_option("--hello-timeout", hello_timeout_s,
                 "Seconds a new connection has to send its Hello before it is closed (0: no limit)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("--retain-bytes", o.retain_bytes,
                 "Keep at most this much in sealed segments (e.g. 10GiB); older ones are released, never past a "
                 "hold (0: keep everything)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  std::string retain_age;
  app.add_option("--retain-age", retain_age,
                 "Release sealed segments whose newest record is older than this (a systemd time span: 30d, "
                 "12h 30min), never past a hold (0: keep everything)");
  app.add_option("--max-disk", o.max_disk,
                 "Disk budget for the segment files (e.g. 50GiB): an append that would need more gets Error "
                 "DiskBudget (the connection stays; nothing is released for it) until a trim, the retention policy "
                 "or a hold's move frees space (0: no budget; at least 3 segments)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_flag("--recycle", o.recycle,
               "Reuse released segments' files as the next segments instead of deleting them and zero-filling "
               "new ones (faster rolls; see FORMAT.md, Recycling, for why it is not the default)");
  app.add_option("--max-hold-lag", o.max_hold_lag,
                 "A hold further behind the end of the log than this (e.g. 20GiB) is invalidated and logged, so "
                 "that a dead consumer cannot fill the disk (0: never)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  double frame_timeout_s = static_cast<double>(o.frame_timeout_ms) / 1000;
  app.add_option("--frame-timeout", frame_timeout_s,
                 "Seconds a frame begun after Hello may take to arrive whole, counted while wald reads the "
                 "connection, before the connection is closed (0: no limit)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("--drain-timeout", drain_timeout_s,
                 "Seconds a stop waits for peers to read their acks before closing them (their records are "
                 "durable; 0: wait forever)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("--metrics-listen", o.metrics_listen,
                 "Answer GET /metrics (Prometheus text format) on this TCP ADDR:PORT, e.g. 127.0.0.1:9464 "
                 "(off by default)")
      ->check([](const std::string& v) {
        sockaddr_storage addr;
        std::string error;
        return wald::server::ParseListenAddress(v, &addr, &error) ? std::string() : error;
      });
  app.add_option("--stats-interval", o.stats_interval_s, "Seconds between summary log lines (0: none)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
#ifdef WALD_FAULT_INJECTION
  wald::FaultFlags faults;
  faults.AddTo(app);
#endif

  bool stats_json = false;
  std::string stats_format = "text";
  CLI::App* stats = app.add_subcommand("stats", "Print the counters of a running wald");
  // Not the daemon's examples and exit codes (CLI11 copies the footer).
  stats->footer("Exit codes: 0 printed; 1 the daemon could not be reached or did not answer; 2 bad usage.");
  stats->add_option("--socket", o.socket, "Socket of the daemon")->capture_default_str();
  auto* stats_json_opt = stats->add_flag("--json", stats_json, "One JSON object (--format json)");
  stats->add_option("--format", stats_format, "text, json, or openmetrics (Prometheus' text exposition)")
      ->check(CLI::IsMember({"text", "json", "openmetrics"}))
      ->excludes(stats_json_opt)
      ->capture_default_str();

  // Retention: subcommands that talk to the running daemon like `stats`.
  bool ret_json = false;
  uint64_t ret_seq = 0;
  std::string hold_name;
  auto retention = [&](const char* name, const char* what) {
    CLI::App* sub = app.add_subcommand(name, what);
    sub->footer(
        "Exit codes: 0 done; 1 the daemon could not be reached or refused (the message says why); 2 bad "
        "usage.");
    sub->add_option("--socket", o.socket, "Socket of the daemon")->capture_default_str();
    sub->add_flag("--json", ret_json, "One JSON object");
    return sub;
  };
  CLI::App* trim = retention("trim", "Release whole segments at or below SEQ, never past a hold");
  trim->add_option("SEQ", ret_seq, "Release records up to this seq")->required();
  CLI::App* hold = retention("hold", "Create or move a named hold: nothing above SEQ is released");
  hold->add_option("NAME", hold_name, "1 to 64 of A-Z a-z 0-9 . _ - : @")->required();
  hold->add_option("SEQ", ret_seq, "Keep every record above this seq")->required();
  CLI::App* release = retention("release", "Drop a named hold");
  release->add_option("NAME", hold_name, "The hold's name")->required();
  CLI::App* holds = retention("holds", "List the named holds: name, seq, lag behind the durable seq");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (stats->parsed()) return wald::RunStatsCommand(o.socket, stats_json ? "json" : stats_format);
  if (trim->parsed()) return wald::RunTrimCommand(o.socket, ret_seq, ret_json);
  if (hold->parsed()) return wald::RunHoldCommand(o.socket, hold_name, ret_seq, ret_json);
  if (release->parsed()) return wald::RunReleaseCommand(o.socket, hold_name, ret_json);
  if (holds->parsed()) return wald::RunHoldsCommand(o.socket, ret_json);
  // Retention counts whole segments: below these, it would release every
  // sealed segment at each roll, or drop holds that are up to date.
  if (o.retain_bytes != 0 && o.retain_bytes < o.segment_size) {
    std::fprintf(stderr, "--retain-bytes %llu is below one segment (--segment-size %llu)\n",
                 static_cast<unsigned long long>(o.retain_bytes), static_cast<unsigned long long>(o.segment_size));
    return 2;
  }
  if (o.max_hold_lag != 0 && o.max_hold_lag < 2 * o.segment_size) {
    std::fprintf(stderr,
                 "--max-hold-lag %llu is below two segments (--segment-size %llu): holds are measured in whole "
                 "segments, so an up-to-date consumer could be dropped\n",
                 static_cast<unsigned long long>(o.max_hold_lag), static_cast<unsigned long long>(o.segment_size));
    return 2;
  }
  if (!retain_age.empty() && retain_age != "0") {
    auto ns = wald::tools::ParseTimeSpan(retain_age);
    if (!ns || *ns < 1000000000ull) {
      std::fprintf(stderr, "--retain-age %s is not a time span of a second or more (e.g. 30d, 12h 30min)\n",
                   retain_age.c_str());
      return 2;
    }
    o.retain_age_ms = *ns / 1000000;
  }
  // A budget below three segments could never roll: the segment being
  // written, the next one and the spare prepared for it.
  if (o.max_disk != 0 && o.segment_size != 0 && o.max_disk / o.segment_size < 3) {
    std::fprintf(stderr,
                 "--max-disk %llu is below three segments (--segment-size %llu): the segment being written, the "
                 "next and a spare\n",
                 static_cast<unsigned long long>(o.max_disk), static_cast<unsigned long long>(o.segment_size));
    return 2;
  }
  // The bytes policy releases only after a roll: it must leave the budget
  // room for one (its sealed segments, the one written, the next, a spare).
  if (o.max_disk != 0 && o.retain_bytes != 0 && o.segment_size != 0 &&
      o.retain_bytes / o.segment_size + 3 > o.max_disk / o.segment_size) {
    std::fprintf(
        stderr,
        "--retain-bytes %llu leaves --max-disk %llu no room to roll: keep at least three segments (--segment-size "
        "%llu) of the budget free of it\n",
        static_cast<unsigned long long>(o.retain_bytes), static_cast<unsigned long long>(o.max_disk),
        static_cast<unsigned long long>(o.segment_size));
    return 2;
  }
  if (o.max_partial_bytes < uint64_t{o.max_record} + wald::proto::kAppendOverhead) {
    std::fprintf(stderr,
                 "--max-partial-bytes %llu is below one frame (--max-record %u + 128): every large append would be "
                 "refused\n",
                 static_cast<unsigned long long>(o.max_partial_bytes), static_cast<unsigned>(o.max_record));
    return 2;
  }
  o.drain_timeout_ms = static_cast<uint64_t>(drain_timeout_s * 1000);
  o.hello_timeout_ms = static_cast<uint64_t>(hello_timeout_s * 1000);
  o.frame_timeout_ms = static_cast<uint64_t>(frame_timeout_s * 1000);
  o.verify = verify == "all" ? wald::storage::VerifyMode::kAll : wald::storage::VerifyMode::kLastSegment;
  o.stamp = stamp == "all"    ? wald::storage::kFlagTime | wald::storage::kFlagProducer
            : stamp == "time" ? wald::storage::kFlagTime
                              : 0u;

  // Under journald, log through its native protocol (priorities, fields);
  // otherwise to stderr with timestamps.
  if (wald::server::systemd::StderrIsJournal()) {
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("wald", std::make_shared<spdlog::sinks::systemd_sink_mt>("wald")));
    spdlog::set_pattern("%v");
  } else {
    spdlog::set_default_logger(spdlog::stderr_color_mt("wald"));
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
  spdlog::set_level(spdlog::level::from_str(log_level));

  // Socket activation first: a socket from systemd is used as it is (and
  // never unlinked); --socket then only names it in messages.
  auto listen_fd = wald::server::systemd::ListenFd();
  if (!listen_fd.ok()) {
    spdlog::critical("cannot start: {}", listen_fd.status().ToString());
    return 1;
  }
  o.listen_fd = listen_fd.value();
  // Every check that needs no disk before the log is opened (which creates
  // --dir and a first segment): a socket whose directory is missing fails
  // here, not after the log exists.
  if (o.listen_fd < 0) {
    const std::string parent = std::filesystem::path(o.socket).parent_path().string();
    std::error_code ec;
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
      spdlog::critical("cannot start: the directory of --socket {} ({}) does not exist", o.socket, parent);
      return 1;
    }
  }
  if (dir_opt->count() == 0) {
    if (const char* state = std::getenv("STATE_DIRECTORY"); state != nullptr && *state != '\0') {
      o.dir = std::string(state).substr(0, std::string(state).find(':'));  // the first of a list
    }
  }

  // nullptr: the server's own Env::PosixAt(--dir).
  const std::unique_ptr<wald::storage::Env> base = wald::storage::Env::PosixAt(o.dir);
  std::unique_ptr<wald::storage::Env> env;
#ifdef WALD_FAULT_INJECTION
  env = faults.MakeEnv(base.get());
  if (!faults.ApplyLimits()) return 1;
#endif
  wald::server::Server server(o, env.get());
  if (wald::storage::Status st = server.Start(); !st.ok()) {
    spdlog::critical("cannot start: {}", st.ToString());
    return 1;
  }
#ifdef WALD_FAULT_INJECTION
  faults.AfterStart(env.get());
#endif
  return server.Run();
}
