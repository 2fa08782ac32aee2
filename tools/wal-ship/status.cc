// The shipper's progress: a status line on a terminal, STATUS= and
// WATCHDOG=1 to systemd, and --json lines on stdout.
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

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
    const nlohmann::ordered_json j = {
        {"log_id", log_id_},           {"stream", spec_.name},        {"subject", spec_.subject},
        {"shipped", shipped_},         {"first_seq", first_shipped_}, {"last_seq", acked_wald_},
        {"stream_seq", acked_stream_}, {"durable_seq", durable_},     {"lag_records", lag},
        {"lag_seconds", lag_s},        {"records_per_second", rate_}, {"hold_seq", hold_seq_},
        {"resumes", resumes_},
    };
    std::puts(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
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
