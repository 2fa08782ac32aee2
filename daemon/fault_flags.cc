#include "fault_flags.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include "storage/fault_env.h"

namespace wald {

void FaultFlags::AddTo(CLI::App& app) {
  app.add_option("--fault-sync-eio-after", sync_eio_after,
                 "TEST BUILDS: fdatasync fails with EIO after this many succeed")
      ->group("");
  app.add_option("--fault-write-error-after", write_error_after,
                 "TEST BUILDS: a write stops half-way and fails after this many succeed")
      ->group("");
  app.add_option("--fault-write-errno", write_errno, "TEST BUILDS: errno of that write failure")->group("");
  app.add_flag("--fault-alloc-enospc", alloc_enospc, "TEST BUILDS: preallocation fails with ENOSPC")->group("");
  app.add_option("--fault-power-cut-after", power_cut_after,
                 "TEST BUILDS: lose unsynced data and exit 137 at the N-th file operation")
      ->group("");
  app.add_option("--fault-emfile-opens", emfile_opens,
                 "TEST BUILDS: once started, the next N storage opens fail with EMFILE")
      ->group("");
  app.add_option("--fault-nofile", nofile, "TEST BUILDS: the daemon's file descriptor limit (soft and hard)")
      ->group("");
}

bool FaultFlags::ApplyLimits() const {
  if (nofile == 0) return true;
  const rlimit rl{nofile, nofile};
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    spdlog::critical("--fault-nofile {}: setrlimit: {}", nofile, std::strerror(errno));
    return false;
  }
  spdlog::warn("fault injection on: descriptor limit {}", nofile);
  return true;
}

std::unique_ptr<storage::Env> FaultFlags::MakeEnv(storage::Env* base) const {
  if (sync_eio_after < 0 && write_error_after < 0 && !alloc_enospc && power_cut_after < 0 && emfile_opens == 0) {
    return nullptr;
  }
  auto f = std::make_unique<storage::FaultEnv>(base);
  if (sync_eio_after >= 0) f->FailSyncAfter(sync_eio_after, EIO);
  if (write_error_after >= 0) f->FailWriteAfter(write_error_after, write_errno);
  if (alloc_enospc) f->FailAllocate(ENOSPC);
  // An injected fault also loses what no fdatasync covered, as the machine
  // would: a record acked before its sync then shows as missing.
  f->DropUnsyncedAtFault();
  if (power_cut_after >= 0) f->PowerCutAfterOps(power_cut_after);
  spdlog::warn(
      "fault injection on: sync-eio-after {}, write-error-after {} (errno {}), alloc-enospc {}, power-cut-after {}",
      sync_eio_after, write_error_after, write_errno, alloc_enospc, power_cut_after);
  return f;
}

void FaultFlags::AfterStart(storage::Env* env) const {
  if (emfile_opens <= 0 || env == nullptr) return;
  static_cast<storage::FaultEnv*>(env)->FailOpens(emfile_opens, EMFILE);
  spdlog::warn("fault injection on: the next {} storage opens fail with EMFILE", emfile_opens);
}

}  // namespace wald
