// `wald stats`: asks a running daemon for its counters over the socket.
#pragma once

#include <string>

namespace wald {

// Prints the daemon's stats (text, or one JSON object). Returns an exit code.
int RunStatsCommand(const std::string& socket_path, bool json);

}  // namespace wald
