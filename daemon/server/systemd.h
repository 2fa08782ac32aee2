// systemd integration, wrapped once (sd_notify(3), sd_listen_fds(3),
// sd_watchdog_enabled(3)). Every function is a no-op or "none" outside
// systemd, so the daemon runs the same by hand.
#pragma once

#include <cstdint>
#include <string>

#include "storage/status.h"

namespace wald::server::systemd {

// Sends a notification ("READY=1", "STATUS=...", ...) if NOTIFY_SOCKET is set.
void Notify(const std::string& state);
// The watchdog interval systemd asked for, in µs; 0 if none.
uint64_t WatchdogUsec();
// The listening socket passed by socket activation (LISTEN_FDS), or -1 if
// none. An error if systemd passed more than one, or one that is not a
// listening Unix stream socket.
storage::Result<int> ListenFd();
// True if stderr is connected to the journal (JOURNAL_STREAM matches it).
bool StderrIsJournal();

}  // namespace wald::server::systemd
