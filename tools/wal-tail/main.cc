// wal-tail: print, follow, verify and summarize a wald log, reading the
// segment files directly through the storage library's reader. Read-only and
// lock-free: safe while wald runs, and usable when it is down.
#include <flatbuffers/idl.h>
#include <flatbuffers/reflection.h>
#include <flatbuffers/util.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "storage/log_reader.h"
#include "storage/recovery.h"
#include "time_spec.h"

namespace {

using namespace wald::storage;

// Exit codes (also in --help).
constexpr int kExitOk = 0;
constexpr int kExitDamage = 1;  // --verify found a problem, or a read failed
constexpr int kExitUsage = 2;
constexpr int kExitNotALog = 3;  // missing directory, or not a wald log
constexpr int kExitTrimmed = 4;  // --from below the first seq the log still holds

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

std::string Base64(std::span<const std::byte> in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = std::to_integer<uint32_t>(in[i]) << 16 | std::to_integer<uint32_t>(in[i + 1]) << 8 |
                       std::to_integer<uint32_t>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = std::to_integer<uint32_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= std::to_integer<uint32_t>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Decodes payloads as a FlatBuffers table with FlatBuffers' own reflection
// (verification) and text generator (JSON).
class SchemaDecoder {
 public:
  bool Load(const std::string& bfbs_path, const std::string& root_type, std::string* error) {
    if (!flatbuffers::LoadFile(bfbs_path.c_str(), true, &bfbs_)) {
      *error = "cannot read schema " + bfbs_path;
      return false;
    }
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(bfbs_.data()), bfbs_.size());
    if (!reflection::VerifySchemaBuffer(v)) {
      *error = bfbs_path + " is not a binary schema (.bfbs from flatc --binary --schema)";
      return false;
    }
    schema_ = reflection::GetSchema(bfbs_.data());
    root_ = schema_->objects()->LookupByKey(root_type.c_str());
    if (root_ == nullptr) {
      // Also accept the name without its namespace.
      for (const reflection::Object* o : *schema_->objects()) {
        const std::string n = o->name()->str();
        if (n == root_type || n.ends_with("." + root_type)) root_ = o;
      }
    }
    if (root_ == nullptr || root_->is_struct()) {
      *error = "no table " + root_type + " in " + bfbs_path;
      return false;
    }
    if (!parser_.Deserialize(reinterpret_cast<const uint8_t*>(bfbs_.data()), bfbs_.size()) ||
        !parser_.SetRootType(root_->name()->c_str())) {
      *error = "cannot use " + bfbs_path + ": " + parser_.error_;
      return false;
    }
    parser_.opts.strict_json = true;
    parser_.opts.indent_step = -1;  // one line
    return true;
  }

  // JSON for the payload, or empty if it is not a valid buffer of the root
  // type.
  std::string Decode(std::span<const std::byte> payload) const {
    auto* p = reinterpret_cast<const uint8_t*>(payload.data());
    if (payload.size() < 8 || !flatbuffers::Verify(*schema_, *root_, p, payload.size())) return {};
    std::string json;
    if (!GenText(p, &json)) return {};
    while (!json.empty() && (json.back() == '\n' || json.back() == ' ')) json.pop_back();
    return json;
  }

 private:
  bool GenText(const uint8_t* p, std::string* out) const {
    return flatbuffers::GenerateText(parser_, p,
                                     out);  // FlatBuffers 2.0 (Debian 12): bool
  }

  std::string bfbs_;
  const reflection::Schema* schema_ = nullptr;
  const reflection::Object* root_ = nullptr;
  flatbuffers::Parser parser_;
};

struct Printer {
  std::string format = "text";
  const SchemaDecoder* schema = nullptr;

  // False when stdout is gone (a closed pipe): stop quietly.
  bool Print(const RecordView& rec, const std::string& segment, uint64_t offset) {
    const auto payload = rec.payload;
    if (format == "raw") {
      const uint32_t len = static_cast<uint32_t>(payload.size());
      std::fwrite(&len, sizeof len, 1, stdout);
      std::fwrite(payload.data(), 1, payload.size(), stdout);
    } else if (format == "json") {
      nlohmann::ordered_json j = {
          {"seq", rec.seq}, {"size", payload.size()}, {"segment", Basename(segment)}, {"offset", offset}};
      if (rec.meta.flags & kFlagTime) j["time"] = wald::tools::FormatRfc3339(rec.meta.time_ns);
      if (rec.meta.flags & kFlagProducer) {
        j["pid"] = rec.meta.pid;
        j["uid"] = rec.meta.uid;
        j["gid"] = rec.meta.gid;
      }
      if (rec.meta.flags & kFlagProducerSeq) {
        char id[17];  // 64 bits: past what a JSON number holds exactly
        std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(rec.meta.producer_id));
        j["producer_id"] = id;
        j["producer_seq"] = rec.meta.producer_seq;
      }
      j["payload_b64"] = Base64(payload);
      if (schema != nullptr) {
        // FlatBuffers' text can hold what JSON cannot (a float's nan or
        // inf): such a payload goes without "decoded", as one that is not of
        // the root type does.
        auto decoded = nlohmann::ordered_json::parse(schema->Decode(payload), nullptr, false);
        if (!decoded.is_discarded()) j["decoded"] = std::move(decoded);
      }
      std::puts(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    } else if (format == "hex") {
      std::printf("seq %llu size %zu (%s offset %llu)", static_cast<unsigned long long>(rec.seq), payload.size(),
                  Basename(segment).c_str(), static_cast<unsigned long long>(offset));
      if (rec.meta.flags & kFlagTime) std::printf(" time %s", wald::tools::FormatRfc3339(rec.meta.time_ns).c_str());
      if (rec.meta.flags & kFlagProducer) {
        std::printf(" pid %u uid %u gid %u", rec.meta.pid, rec.meta.uid, rec.meta.gid);
      }
      if (rec.meta.flags & kFlagProducerSeq) {
        std::printf(" producer %016llx seq %llu", static_cast<unsigned long long>(rec.meta.producer_id),
                    static_cast<unsigned long long>(rec.meta.producer_seq));
      }
      std::printf("\n");
      for (size_t i = 0; i < payload.size(); i += 16) {
        std::printf("  %08zx ", i);
        for (size_t j = i; j < i + 16; ++j) {
          if (j < payload.size()) {
            std::printf(" %02x", std::to_integer<unsigned>(payload[j]));
          } else {
            std::printf("   ");
          }
        }
        std::printf("  |");
        for (size_t j = i; j < i + 16 && j < payload.size(); ++j) std::putchar(Printable(payload[j]));
        std::printf("|\n");
      }
    } else {
      std::string decoded = schema ? schema->Decode(payload) : std::string();
      std::string preview;
      if (!decoded.empty()) {
        preview = decoded;
      } else {
        for (size_t i = 0; i < payload.size() && i < 64; ++i) preview += Printable(payload[i]);
        if (payload.size() > 64) preview += "...";
      }
      const std::string when =
          (rec.meta.flags & kFlagTime) ? wald::tools::FormatRfc3339(rec.meta.time_ns) : std::string("-");
      const std::string who =
          (rec.meta.flags & kFlagProducer)
              ? std::to_string(rec.meta.pid) + "/" + std::to_string(rec.meta.uid) + "/" + std::to_string(rec.meta.gid)
              : std::string("-");
      std::printf("%llu\t%zu\t%s\t%s\t%s\n", static_cast<unsigned long long>(rec.seq), payload.size(), when.c_str(),
                  who.c_str(), preview.c_str());
    }
    return !std::ferror(stdout);
  }

  static char Printable(std::byte b) {
    const int c = std::to_integer<int>(b);
    return c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.';
  }
  static std::string Basename(const std::string& p) {
    auto slash = p.find_last_of('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
  }
};

int OpenError(const Status& st) {
  std::fprintf(stderr, "wal-tail: %s\n", st.ToString().c_str());
  return st.code() == Code::kNotFound || st.code() == Code::kNotALog ? kExitNotALog : kExitDamage;
}

void PrintSideFiles(const LogSummary& sum) {
  for (const SideFile& f : sum.side_files) {
    std::printf("set aside by recovery: %s (%llu bytes; inspect, then delete)\n", f.path.c_str(),
                static_cast<unsigned long long>(f.bytes));
  }
}

int Verify(const std::string& dir) {
  auto sum = VerifyLog(Env::Posix(), dir);
  if (!sum.ok()) return OpenError(sum.status());
  std::string extra;
  if (sum->gap_seqs) extra += ", " + std::to_string(sum->gap_seqs) + " seqs retired by a salvage (a gap)";
  if (sum->torn_tail_bytes) {
    extra += ", torn tail of " + std::to_string(sum->torn_tail_bytes) +
             " bytes past the proven-durable point (the normal end after a crash)";
  }
  std::printf(
      "ok: %llu records (seq %llu..%llu) in %zu segments, %llu payload "
      "bytes, durable proven up to seq %llu%s\n",
      static_cast<unsigned long long>(sum->records), static_cast<unsigned long long>(sum->first_seq),
      static_cast<unsigned long long>(sum->last_seq), sum->segments,
      static_cast<unsigned long long>(sum->payload_bytes), static_cast<unsigned long long>(sum->proven_durable),
      extra.c_str());
  PrintSideFiles(*sum);
  return kExitOk;
}

int Stats(const std::string& dir) {
  auto sum = VerifyLog(Env::Posix(), dir);
  if (!sum.ok()) return OpenError(sum.status());
  std::printf("log id        %s\n", LogIdToString(sum->meta.log_id).c_str());
  std::printf("segments      %zu\n", sum->segments);
  std::printf("records       %llu\n", static_cast<unsigned long long>(sum->records));
  std::printf("seq range     %llu..%llu\n", static_cast<unsigned long long>(sum->first_seq),
              static_cast<unsigned long long>(sum->last_seq));
  std::printf("payload bytes %llu (%llu on disk as records)\n", static_cast<unsigned long long>(sum->payload_bytes),
              static_cast<unsigned long long>(sum->record_bytes));
  std::printf("disk usage    %llu bytes (segments are preallocated)\n",
              static_cast<unsigned long long>(sum->disk_bytes));
  std::printf("trim point    %llu (records at or below it are released)\n",
              static_cast<unsigned long long>(sum->meta.trim_seq));
  std::printf(
      "durable up to %llu (proven by the log: clean-stop marker, "
      "durability stamps)\n",
      static_cast<unsigned long long>(sum->proven_durable));
  if (sum->gap_seqs) {
    std::printf("salvage gap   %llu seqs retired (never handed out again)\n",
                static_cast<unsigned long long>(sum->gap_seqs));
  }
  PrintSideFiles(*sum);
  return kExitOk;
}

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
      if (printer.format == "json") {
        const nlohmann::ordered_json gap = {
            {"gap", {{"from", gap_from}, {"to", gap_to}, {"reason", "retired by a salvage"}}}};
        std::puts(gap.dump().c_str());
      }
      std::fprintf(stderr,
                   "wal-tail: gap: seqs %llu..%llu do not exist (retired by a "
                   "salvage)\n",
                   gap_from, gap_to);
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
