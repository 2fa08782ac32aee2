// The shipper's progress: a status line on a terminal, STATUS= and
// WATCHDOG=1 to systemd, and --json lines on stdout.
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>

#include "shipper.h"

namespace wald::ship {
namespace {

constexpr auto kJsonEvery = std::chrono::seconds(10);

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

void Shipper::Report(Client* control, bool force) {
  const auto now = Clock::now();
  if (!force && now - last_report_ < std::chrono::milliseconds(options_.status_interval_ms)) return;
  if (auto st = control->stats(2000); st.ok()) durable_ = st->durable_seq;  // a failure ends the session elsewhere
  if (acked_wald_ >= durable_) caught_up_at_ = now;
  if (last_report_ != Clock::time_point{} && now > last_report_) {
    rate_ = static_cast<double>(shipped_ - shipped_at_last_report_) / Seconds(now - last_report_);
  }
  shipped_at_last_report_ = shipped_;
  last_report_ = now;
  const uint64_t lag = durable_ > acked_wald_ ? durable_ - acked_wald_ : 0;
  const double lag_s = lag > 0 ? Seconds(now - caught_up_at_) : 0.0;
  char line[320];
  std::snprintf(line, sizeof line,
                "shipped %llu records; stream %s at message %llu (wald seq %llu); lag %llu records, %.1f s; "
                "%.0f records/s; hold at %llu",
                static_cast<unsigned long long>(shipped_), spec_.name.c_str(),
                static_cast<unsigned long long>(acked_stream_), static_cast<unsigned long long>(acked_wald_),
                static_cast<unsigned long long>(lag), lag_s, rate_, static_cast<unsigned long long>(hold_seq_));
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\r\033[K%s", line);
  (void)sd_notifyf(0, "STATUS=%s\nWATCHDOG=1", line);
  if (options_.json && !options_.once && now - last_json_ >= kJsonEvery) {
    last_json_ = now;
    Summary();
  }
}

void Shipper::Summary() {
  const uint64_t lag = durable_ > acked_wald_ ? durable_ - acked_wald_ : 0;
  const double lag_s = lag > 0 ? Seconds(Clock::now() - caught_up_at_) : 0.0;
  const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  if (options_.json) {
    std::printf(
        "{\"log_id\":\"%s\",\"stream\":\"%s\",\"subject\":\"%s\",\"shipped\":%llu,\"first_seq\":%llu,"
        "\"last_seq\":%llu,\"stream_seq\":%llu,\"durable_seq\":%llu,\"lag_records\":%llu,\"lag_seconds\":%.3f,"
        "\"records_per_second\":%.1f,\"hold_seq\":%llu,\"resumes\":%llu}\n",
        log_id_.c_str(), spec_.name.c_str(), spec_.subject.c_str(), u(shipped_), u(first_shipped_), u(acked_wald_),
        u(acked_stream_), u(durable_), u(lag), lag_s, rate_, u(hold_seq_), u(resumes_));
    std::fflush(stdout);
    return;
  }
  if (isatty(STDERR_FILENO)) std::fputs("\r\033[K", stderr);
  std::fprintf(stderr,
               "wal-ship: shipped %llu records this run; stream %s ends at message %llu (wald seq %llu); "
               "hold '%s' at %llu; %llu resumes\n",
               u(shipped_), spec_.name.c_str(), u(acked_stream_), u(acked_wald_), options_.hold.c_str(), u(hold_seq_),
               u(resumes_));
}

}  // namespace wald::ship
