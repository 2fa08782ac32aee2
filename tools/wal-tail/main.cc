// wal-tail: print, follow, verify and summarize a wald log, reading the
// segment files directly through the storage library's reader. Read-only and
// lock-free: safe while wald runs, and usable when it is down.
//
// This file: the command line, the range and filters, and the loop that
// prints (and with -f follows) the records. Formats are in printer.cc,
// --verify and --stats in summary.cc.
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <tuple>

#include "printer.h"
#include "storage/log_reader.h"
#include "storage/recovery.h"
#include "summary.h"
#include "time_spec.h"

namespace {

using namespace wald::storage;
using namespace wald::tools;

constexpr const char* kFooter = R"(
Examples:
  wal-tail /var/lib/wald                 # the last 10 records
  wal-tail -n 100 --format json ./wald-data
  wal-tail --from 5000 --to 5100 ./wald-data
  wal-tail -n 20 --to 5100 ./wald-data    # the last 20 records up to seq 5100
  wal-tail -f ./wald-data                # follow new records (inotify) until Ctrl-C
  wal-tail --format raw --from 1 ./wald-data | consumer   # u32 LE length + payload
  wal-tail --verify ./wald-data          # check every record; non-zero exit on damage
  wal-tail --stats ./wald-data
  wal-tail --schema order.bfbs --root-type Order ./wald-data   # payloads as JSON

  wal-tail --since "-5min" --pid 4242 ./wald-data   # journalctl's time syntax
  wal-tail --since "2026-11-30 13:00" --until "2026-11-30 14:00" --uid 1000 ./wald-data

Formats: text (seq, size, time, pid/uid/gid, printable preview), json (one
object per line: seq, size, segment, offset, time, pid, uid, gid,
producer_id, producer_seq, payload_b64; plus "decoded" with --schema), hex,
raw. time is RFC 3339 in UTC with microseconds: when wald received the
record; pid, uid, gid are the sender's (wald --stamp decides what is stored;
"-" or absent: not stored); producer_id (16 hex digits) and producer_seq
are an idempotent producer's id and number for the record (absent: not a
producer's).
Records may be shown before they are durable: wal-tail reads what is
written, and wald acks only after fdatasync. Seqs that a salvage retired are
never skipped silently: wal-tail says "gap" (a JSON line {"gap":{...}}).

--verify applies recovery's rule: damage to a record the log proves durable
(a clean-stop marker, a later record's durability stamp) exits 1 naming the
file, offset and seqs; a torn tail past the proven-durable point is the
normal end after a crash and exits 0. Bytes recovery set aside
(*.broken) are listed; delete them once inspected.

Ranges combine as journalctl's do: --from and --to bound the seqs (either
alone: from the first, or to the end), the time and sender filters narrow
them, and -n N then keeps the last N records of what is left.

Exit codes: 0 success; 1 damage found by --verify, or a read error;
2 bad usage; 3 missing directory, or not a wald log; 4 --from is below the
first seq the log still holds (trimmed; the message names the first).)";

volatile std::sig_atomic_t g_stop = 0;

// The seq `n` records before the end (for -n).
Result<uint64_t> StartForLast(const std::string& dir, uint64_t n) {
  auto segs = ListSegments(Env::Posix(), dir);
  if (!segs.ok()) return segs.take_status();
  if (segs->empty()) return uint64_t{1};
  // Count the newest segment's records; sealed ones hold (next first - first).
  auto r = LogReader::Open(Env::Posix(), dir, segs->back().first_seq);
  if (!r.ok()) return r.take_status();
  RecordView rec;
  LogReader::Step step;
  while ((step = (*r)->Next(&rec)) == LogReader::Step::kRecord || step == LogReader::Step::kGap) {
  }
  if (step == LogReader::Step::kError) return (*r)->status();
  const uint64_t end = (*r)->next_seq();  // one past the last record
  const uint64_t first = segs->front().first_seq;
  return end - first > n ? end - n : first;
}

// --since/--until/--pid/--uid. A record without the field a filter asks
// about does not match it.
struct Filter {
  std::optional<uint64_t> since, until;  // ns since the epoch
  std::optional<uint32_t> pid, uid;
  bool any() const { return since || until || pid || uid; }
  bool Match(const RecordView& r) const {
    const bool timed = (r.meta.flags & kFlagTime) != 0;
    const bool who = (r.meta.flags & kFlagProducer) != 0;
    if (since && !(timed && r.meta.time_ns >= *since)) return false;
    if (until && !(timed && r.meta.time_ns <= *until)) return false;
    if (pid && !(who && r.meta.pid == *pid)) return false;
    if (uid && !(who && r.meta.uid == *uid)) return false;
    return true;
  }
};

// How many records from `from` up to `to` (0: the end) match (for -n with a
// range or filters).
Result<uint64_t> CountMatches(const std::string& dir, uint64_t from, uint64_t to, const Filter& filter) {
  auto r = LogReader::Open(Env::Posix(), dir, from);
  if (!r.ok()) return r.take_status();
  RecordView rec;
  LogReader::Step step;
  uint64_t n = 0;
  while ((step = (*r)->Next(&rec)) == LogReader::Step::kRecord || step == LogReader::Step::kGap) {
    if (step == LogReader::Step::kRecord && to != 0 && rec.seq > to) break;
    if (step == LogReader::Step::kRecord && filter.Match(rec)) ++n;
  }
  if (step == LogReader::Step::kError) return (*r)->status();
  return n;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE,
              SIG_IGN);  // a closed pipe shows as a write error: stop quietly
  std::string dir = "./wald-data";
  uint64_t lines = 10, from = 0, to = 0;
  bool follow = false, verify = false, stats = false;
  std::string schema_path, root_type;
  Printer printer;

  CLI::App app{
      "wal-tail: print, follow, verify and summarize a wald log "
      "(read-only, safe while wald runs)"};
  app.footer(kFooter);
  app.set_version_flag("--version", std::string(WALD_VERSION));
  app.add_option("dir", dir, "Log directory")->capture_default_str();
  // NonNegativeNumber: CLI11 reads "-5" into an unsigned as 2^64-5.
  auto* n_opt = app.add_option("-n,--lines", lines, "Print the last N records (of the range and filters)")
                    ->check(CLI::NonNegativeNumber)
                    ->capture_default_str();
  auto* from_opt = app.add_option("--from", from, "Print from this seq on")->check(CLI::PositiveNumber);
  auto* to_opt = app.add_option("--to", to, "...up to this seq (inclusive)")->check(CLI::PositiveNumber);
  app.add_flag("-f,--follow", follow, "Keep printing new records as they are written (until interrupted)");
  app.add_option("--format", printer.format, "text, json, hex or raw")
      ->check(CLI::IsMember({"text", "json", "hex", "raw"}))
      ->capture_default_str();
  auto* v_opt = app.add_flag("--verify", verify, "Check every record; exit 1 naming the first problem");
  auto* s_opt = app.add_flag("--stats", stats, "Segments, records, bytes, seq range, disk usage, trim point");
  auto* schema_opt = app.add_option("--schema", schema_path, "FlatBuffers binary schema (.bfbs) of the payloads");
  app.add_option("--root-type", root_type, "Table of --schema that each payload holds")->needs(schema_opt);
  schema_opt->needs("--root-type");
  std::string since_text, until_text;
  uint32_t pid = 0, uid = 0;
  auto* since_opt = app.add_option("--since", since_text,
                                   "Only records received at or after this time (journalctl syntax: "
                                   "\"2026-11-30 13:00:00\", \"today\", \"-5min\", \"1h ago\")");
  auto* until_opt = app.add_option("--until", until_text, "Only records received at or before this time");
  auto* pid_opt = app.add_option("--pid", pid, "Only records sent by this process id");
  auto* uid_opt = app.add_option("--uid", uid, "Only records sent by this user id");
  v_opt->excludes(s_opt)->excludes(n_opt)->excludes(from_opt)->excludes(to_opt);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  // The directory must exist and be a wald log, whatever was asked.
  if (Env::Posix()->Kind(dir) == FileKind::kMissing) {
    return OpenError(Status::NotFound("log directory " + dir + " does not exist"));
  }
  if (auto meta = ReadMeta(Env::Posix(), dir); !meta.ok()) {
    if (meta.status().code() == Code::kCorruption) return OpenError(meta.status());
    return OpenError(
        Status::NotALog(dir + " is not a wald log directory (no readable " + std::string(kMetaFileName) + ")"));
  }
  if (verify) return Verify(dir);
  if (stats) return Stats(dir);
  if (from_opt->count() > 0 && to_opt->count() > 0 && from > to) {
    std::fprintf(stderr, "wal-tail: --from %llu is after --to %llu\n", static_cast<unsigned long long>(from),
                 static_cast<unsigned long long>(to));
    return kExitUsage;
  }

  Filter filter;
  const uint64_t now = NowNs();
  for (auto [opt, text, out] :
       {std::tuple{since_opt, &since_text, &filter.since}, std::tuple{until_opt, &until_text, &filter.until}}) {
    if (opt->count() == 0) continue;
    *out = wald::tools::ParseTimeSpec(*text, now);
    if (!*out) {
      std::fprintf(stderr,
                   "wal-tail: %s: cannot parse time '%s' (e.g. \"2026-11-30 "
                   "13:00:00\", \"-5min\", "
                   "\"yesterday\")\n",
                   opt->get_name().c_str(), text->c_str());
      return kExitUsage;
    }
  }
  if (pid_opt->count() > 0) filter.pid = pid;
  if (uid_opt->count() > 0) filter.uid = uid;
  if (filter.since && filter.until && *filter.since > *filter.until) {
    std::fprintf(stderr, "wal-tail: --since is later than --until\n");
    return kExitUsage;
  }

  SchemaDecoder decoder;
  if (!schema_path.empty()) {
    std::string error;
    if (!decoder.Load(schema_path, root_type, &error)) {
      std::fprintf(stderr, "wal-tail: %s\n", error.c_str());
      return kExitUsage;
    }
    printer.schema = &decoder;
  }

  uint64_t start = from;
  uint64_t skip = 0;  // matches to pass over before printing (-n with a range or filters)
  const bool ranged = from_opt->count() > 0 || to_opt->count() > 0 || filter.any();
  if (ranged) {
    // journalctl's way: the range and filters pick the records; -n, if
    // given, keeps the last N of them; without it, all are printed.
    auto segs = ListSegments(Env::Posix(), dir);
    if (!segs.ok()) return OpenError(segs.status());
    const uint64_t first = segs->empty() ? 1 : segs->front().first_seq;
    if (from_opt->count() > 0 && from < first && !segs->empty()) {
      std::fprintf(stderr, "wal-tail: seq %llu is trimmed: the log holds seqs from %llu on\n",
                   static_cast<unsigned long long>(from), static_cast<unsigned long long>(first));
      return kExitTrimmed;
    }
    if (from_opt->count() == 0) start = first;
    if (n_opt->count() > 0) {
      auto total = CountMatches(dir, start, to, filter);
      if (!total.ok()) return OpenError(total.status());
      skip = *total > lines ? *total - lines : 0;
    }
  } else {
    auto s = StartForLast(dir, lines);
    if (!s.ok()) return OpenError(s.status());
    start = *s;
  }
  auto reader = LogReader::Open(Env::Posix(), dir, start);
  if (!reader.ok()) return OpenError(reader.status());

  int inotify_fd = -1;
  if (follow) {
    std::signal(SIGINT, [](int) { g_stop = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    // Writes to segments, new segments (rolls: rename into place), removals
    // (trims).
    if (inotify_fd < 0 ||
        inotify_add_watch(inotify_fd, dir.c_str(), IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0) {
      std::fprintf(stderr, "wal-tail: inotify on %s: %s\n", dir.c_str(), std::strerror(errno));
      return kExitDamage;
    }
  }
  RecordView rec;
  while (!g_stop) {
    LogReader::Step step = (*reader)->Next(&rec);
    if (step == LogReader::Step::kRecord) {
      if (to != 0 && rec.seq > to) break;
      if (!filter.Match(rec)) continue;
      if (skip > 0) {
        --skip;
        continue;
      }
      if (!printer.Print(rec, (*reader)->segment_path(), (*reader)->record_offset())) return kExitOk;
      continue;
    }
    if (step == LogReader::Step::kGap) {
      const auto gap_from = static_cast<unsigned long long>((*reader)->gap_from());
      const auto gap_to = static_cast<unsigned long long>((*reader)->gap_to());
      if (to != 0 && gap_from > to) break;
      printer.PrintGap(gap_from, gap_to);
      continue;
    }
    if (step == LogReader::Step::kError) {
      std::fprintf(stderr, "wal-tail: %s\n", (*reader)->status().ToString().c_str());
      return kExitDamage;
    }
    if (!follow) break;
    std::fflush(stdout);
    if (std::ferror(stdout)) return kExitOk;
    // Wait for the directory to change; the timeout only bounds how late a
    // Ctrl-C is noticed.
    pollfd p{inotify_fd, POLLIN, 0};
    if (::poll(&p, 1, 500) > 0) {
      char buf[4096];
      while (::read(inotify_fd, buf, sizeof buf) > 0) {
      }
    }
  }
  std::fflush(stdout);
  return kExitOk;
}
