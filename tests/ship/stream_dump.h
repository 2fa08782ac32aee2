// Test helper: read back what is stored in a JetStream stream, with libnats.
//
// Each call opens its own connection to `urls` (comma-separated
// nats://host:port), retries while the cluster is unavailable (a leader
// election, a node restarting), and closes and frees everything it created.
// The retry budget is ~20 s without progress: it starts again after every
// message read, so long streams do not run out of it. nats_Close() is left to
// the end of the process. Throws std::runtime_error once the budget is spent.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace wald::test {

struct ShippedMessage {
  uint64_t stream_seq = 0;
  std::string subject;
  std::map<std::string, std::string> headers;  // every header, first value
  std::string data;                            // payload bytes
};

// Every message of `stream` from its first to its last sequence, in order
// (js_GetMsg one by one; sequences that were deleted are absent).
std::vector<ShippedMessage> DumpStream(const std::string& urls, const std::string& stream);

// The stream's last sequence (State.LastSeq; 0 if nothing was ever stored).
uint64_t StreamLastSeq(const std::string& urls, const std::string& stream);

}  // namespace wald::test
