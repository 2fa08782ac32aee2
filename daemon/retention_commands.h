// `wald trim`, `wald hold`, `wald release`, `wald holds`: retention of a
// running daemon, over its socket, like `wald stats`. Each prints one line
// (or one JSON object with --json) and returns an exit code: 0 done, 1 the
// daemon refused or could not be reached (the reason on stderr).
#pragma once

#include <cstdint>
#include <string>

namespace wald {

int RunTrimCommand(const std::string& socket_path, uint64_t up_to, bool json);
int RunHoldCommand(const std::string& socket_path, const std::string& name, uint64_t seq, bool json);
int RunReleaseCommand(const std::string& socket_path, const std::string& name, bool json);
int RunHoldsCommand(const std::string& socket_path, bool json);

}  // namespace wald
