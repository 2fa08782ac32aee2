// wal-tail's exit codes (also in --help), and the commands that look at the
// whole log rather than print records: --verify and --stats. Both read the
// segment files directly and write their report to stdout.
#pragma once

#include <string>

#include "storage/status.h"

namespace wald::tools {

constexpr int kExitOk = 0;
constexpr int kExitDamage = 1;  // --verify found a problem, or a read failed
constexpr int kExitUsage = 2;
constexpr int kExitNotALog = 3;  // missing directory, or not a wald log
constexpr int kExitTrimmed = 4;  // --from below the first seq the log still holds

// Says `st` (a log that could not be opened or read) on stderr; returns the
// exit code for it: kExitNotALog for a missing directory or not a log, else
// kExitDamage.
int OpenError(const storage::Status& st);

// --verify: checks every record with recovery's rule; kExitOk, or OpenError's
// code naming the first problem.
int Verify(const std::string& dir);

// --stats: segments, records, bytes, seq range, disk usage, trim point.
int Stats(const std::string& dir);

}  // namespace wald::tools
