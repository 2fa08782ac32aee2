// --verify and --stats: VerifyLog's summary of the whole log, in words.
#include "summary.h"

#include <cstdio>
#include <string>

#include "storage/recovery.h"

namespace wald::tools {

using namespace wald::storage;

namespace {

void PrintSideFiles(const LogSummary& sum) {
  for (const SideFile& f : sum.side_files) {
    std::printf("set aside by recovery: %s (%llu bytes; inspect, then delete)\n", f.path.c_str(),
                static_cast<unsigned long long>(f.bytes));
  }
}

}  // namespace

int OpenError(const Status& st) {
  std::fprintf(stderr, "wal-tail: %s\n", st.ToString().c_str());
  return st.code() == Code::kNotFound || st.code() == Code::kNotALog ? kExitNotALog : kExitDamage;
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

}  // namespace wald::tools
