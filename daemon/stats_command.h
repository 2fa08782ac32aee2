// `wald stats`: asks a running daemon for its counters over the socket.
#pragma once

#include <string>

namespace wald {

// Prints the daemon's stats: "text", "json" (one object) or "openmetrics"
// (Prometheus' text format, see openmetrics.h). The command's own connection
// is not counted. Returns an exit code.
int RunStatsCommand(const std::string& socket_path, const std::string& format);

}  // namespace wald
