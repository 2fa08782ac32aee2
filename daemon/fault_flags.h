// Test builds only (the wald-faulty binary, never installed): the --fault-*
// options, which put a storage::FaultEnv under the daemon so that the crash
// and fault tests can make fdatasync, writes and preallocation fail, or cut
// the power, at a chosen file operation. The release `wald` has none of it.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>

#include "storage/env.h"

namespace wald {

struct FaultFlags {
  int64_t sync_eio_after = -1;     // fdatasync fails with EIO after N succeed
  int64_t write_error_after = -1;  // a write stops half-way and fails after N succeed
  int write_errno = 28;            // ...with this errno (ENOSPC)
  bool alloc_enospc = false;       // preallocating a segment fails with ENOSPC
  int64_t power_cut_after = -1;    // power loss (unsynced data dropped, _exit) after N ops
  uint64_t nofile = 0;             // RLIMIT_NOFILE (soft and hard) for the daemon; 0: as it is
  int64_t emfile_opens = 0;        // once started, the next N storage opens fail with EMFILE

  void AddTo(CLI::App& app);
  // A FaultEnv over `base` when any fault was asked for, else nullptr.
  std::unique_ptr<storage::Env> MakeEnv(storage::Env* base) const;
  // Applies the limits asked for (before the Server starts). False on error.
  bool ApplyLimits() const;
  // Arms the faults meant for a running server, on MakeEnv's Env.
  void AfterStart(storage::Env* env) const;
};

}  // namespace wald
