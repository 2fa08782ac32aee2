// Times on wal-tail's command line, in journalctl's syntax (systemd.time(7)),
// and times in its output (RFC 3339, UTC, microseconds).
//
//   absolute: "2026-11-30 13:05:00", "2026-11-30T13:05:00.5", "2026-11-30"
//             (local time; a trailing "Z" or " UTC" means UTC), "@1764500000"
//             (seconds since the epoch)
//   named:    "now", "today", "yesterday", "tomorrow" (local midnight)
//   relative: "-5min", "+1h", "-1h 30min", "5min ago", "-2d"; units us, ms,
//             s/sec/second(s), m/min/minute(s), h/hr/hour(s), d/day(s),
//             w/week(s)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wald::tools {

// ns since the Unix epoch, or nullopt (the caller says what was wrong).
// `now_ns` anchors the relative and named forms.
std::optional<uint64_t> ParseTimeSpec(std::string_view spec, uint64_t now_ns);

// A time span alone ("30d", "12h 30min", "90s"; the units above), in ns, or
// nullopt. For durations on the daemon's command line (--retain-age).
std::optional<uint64_t> ParseTimeSpan(std::string_view spec);

// "2026-11-30T13:05:00.123456Z".
std::string FormatRfc3339(uint64_t ns);

}  // namespace wald::tools
