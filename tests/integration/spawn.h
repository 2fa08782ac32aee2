// Test helper: start a program as systemd would, its output in files.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace wald::test {

// Starts argv (argv[0] looked up in PATH) with no blocked signals and default
// dispositions, so that whatever the program blocks or handles is its own
// doing, not the test runner's; stdin is /dev/null, and stdout and stderr are
// appended to `out` and `err` ("" for /dev/null; the same path for both
// shares one file); no other descriptor is inherited. Throws
// std::runtime_error if it cannot be started.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err);

}  // namespace wald::test
