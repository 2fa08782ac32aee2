#include "time_spec.h"

#include <cctype>
#include <cstdio>
#include <ctime>

namespace wald::tools {
namespace {

constexpr uint64_t kSec = 1000000000ull;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> UnitNs(std::string_view u) {
  if (u == "us" || u == "usec") return 1000ull;
  if (u == "ms" || u == "msec") return 1000000ull;
  if (u.empty() || u == "s" || u == "sec" || u == "second" || u == "seconds") return kSec;
  if (u == "m" || u == "min" || u == "minute" || u == "minutes") return 60 * kSec;
  if (u == "h" || u == "hr" || u == "hour" || u == "hours") return 3600 * kSec;
  if (u == "d" || u == "day" || u == "days") return 86400 * kSec;
  if (u == "w" || u == "week" || u == "weeks") return 7 * 86400 * kSec;
  return std::nullopt;
}

// "1h 30min", "5min": a sum of number-unit terms.
std::optional<uint64_t> Span(std::string_view s) {
  uint64_t total = 0;
  bool any = false;
  s = Trim(s);
  while (!s.empty()) {
    size_t i = 0;
    uint64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, static_cast<uint64_t>(s[i++] - '0'), &n)) {
        return std::nullopt;
      }
    }
    if (i == 0) return std::nullopt;
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
    auto unit = UnitNs(s.substr(i, j - i));
    if (!unit) return std::nullopt;
    uint64_t term = 0;
    if (__builtin_mul_overflow(n, *unit, &term) || __builtin_add_overflow(total, term, &total)) return std::nullopt;
    any = true;
    s = Trim(s.substr(j));
  }
  return any ? std::optional<uint64_t>(total) : std::nullopt;
}

}  // namespace

std::optional<uint64_t> ParseTimeSpan(std::string_view spec) { return Span(spec); }

namespace {

uint64_t LocalMidnight(uint64_t now_ns, int day_offset) {
  time_t t = static_cast<time_t>(now_ns / kSec);
  tm parts;
  localtime_r(&t, &parts);
  parts.tm_hour = parts.tm_min = parts.tm_sec = 0;
  parts.tm_mday += day_offset;
  parts.tm_isdst = -1;
  return static_cast<uint64_t>(mktime(&parts)) * kSec;
}

std::optional<uint64_t> Absolute(std::string_view s) {
  bool utc = false;
  if (s.ends_with("Z")) {
    utc = true;
    s.remove_suffix(1);
  } else if (s.ends_with(" UTC")) {
    utc = true;
    s.remove_suffix(4);
  }
  tm parts{};
  int y, mo, d, h = 0, mi = 0, consumed = 0;
  double sec = 0;
  const std::string str(s);
  if (std::sscanf(str.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3) return std::nullopt;
  std::string_view rest = std::string_view(str).substr(static_cast<size_t>(consumed));
  if (!rest.empty()) {
    if (rest[0] != ' ' && rest[0] != 'T') return std::nullopt;
    const std::string r(rest.substr(1));
    int n = 0;
    if (std::sscanf(r.c_str(), "%2d:%2d:%lf%n", &h, &mi, &sec, &n) == 3 && static_cast<size_t>(n) == r.size()) {
    } else if (std::sscanf(r.c_str(), "%2d:%2d%n", &h, &mi, &n) == 2 && static_cast<size_t>(n) == r.size()) {
      sec = 0;
    } else {
      return std::nullopt;
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61) return std::nullopt;
  parts.tm_year = y - 1900;
  parts.tm_mon = mo - 1;
  parts.tm_mday = d;
  parts.tm_hour = h;
  parts.tm_min = mi;
  parts.tm_sec = 0;
  parts.tm_isdst = -1;
  const time_t t = utc ? timegm(&parts) : mktime(&parts);
  if (t < 0) return std::nullopt;
  return static_cast<uint64_t>(t) * kSec + static_cast<uint64_t>(sec * 1e9 + 0.5);
}

}  // namespace

std::optional<uint64_t> ParseTimeSpec(std::string_view spec, uint64_t now_ns) {
  std::string_view s = Trim(spec);
  if (s.empty()) return std::nullopt;
  if (s == "now") return now_ns;
  if (s == "today") return LocalMidnight(now_ns, 0);
  if (s == "yesterday") return LocalMidnight(now_ns, -1);
  if (s == "tomorrow") return LocalMidnight(now_ns, 1);
  if (s[0] == '@') {
    auto v = Span(s.substr(1));
    return v;
  }
  if (s[0] == '-' || s[0] == '+') {
    auto v = Span(s.substr(1));
    if (!v) return std::nullopt;
    if (s[0] == '-') return *v > now_ns ? std::nullopt : std::optional<uint64_t>(now_ns - *v);
    return now_ns + *v;
  }
  if (s.ends_with(" ago")) {
    auto v = Span(s.substr(0, s.size() - 4));
    if (!v || *v > now_ns) return std::nullopt;
    return now_ns - *v;
  }
  return Absolute(s);
}

std::string FormatRfc3339(uint64_t ns) {
  const time_t t = static_cast<time_t>(ns / kSec);
  tm parts;
  gmtime_r(&t, &parts);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", parts.tm_year + 1900, parts.tm_mon + 1,
                parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, static_cast<unsigned>((ns % kSec) / 1000));
  return buf;
}

}  // namespace wald::tools
