// Backpressure: when the loop stops reading sockets. Pure policy, no state
// of its own: the Server asks after every change that could flip an answer.
//
// - Every socket stops while more than max_unsynced_bytes are staged but not
//   yet durable, or while some connection waits for a free staging chunk
//   (stalled): the writer is behind, and reading more would only buffer it.
//   Reading resumes below half the cap with a chunk to fill and no
//   connection waiting (hysteresis, so that a busy log does not toggle
//   every socket at every batch). Whatever starts a pause also keeps it:
//   a pause that lifted on a load that starts one again would flap.
// - One socket stops while its peer has max_inflight Appends unacked, or its
//   unacked payload plus its unsent output exceed max_connection_bytes: a
//   client that sends without reading its acks is held back alone.
#pragma once

#include <cstdint>

namespace wald::server {

struct BackpressureLimits {
  uint64_t max_unsynced_bytes;
  uint32_t max_inflight;
  uint64_t max_connection_bytes;
};

// The staging side, as the global rule sees it.
struct StagingLoad {
  uint64_t staged_bytes;  // handed out and not yet recycled
  bool no_chunk;          // nothing to fill: no free chunk and no current one
  bool any_stalled;       // some connection waits for a chunk
};

// One connection, as the per-socket rule sees it.
struct ConnectionLoad {
  uint64_t pending_acks;
  uint64_t pending_bytes;  // payload of the unacked Appends
  uint64_t unsent_bytes;   // output not yet written to the socket
};

inline bool GlobalPause(bool paused_now, const StagingLoad& s, const BackpressureLimits& l) {
  if (paused_now) return s.staged_bytes > l.max_unsynced_bytes / 2 || s.no_chunk || s.any_stalled;
  return s.staged_bytes > l.max_unsynced_bytes || s.any_stalled;
}

inline bool ConnectionMayRead(const ConnectionLoad& c, const BackpressureLimits& l) {
  return c.pending_acks < l.max_inflight && c.pending_bytes + c.unsent_bytes <= l.max_connection_bytes;
}

}  // namespace wald::server
