// ReadCursor: one Read request being served. Reading segments happens on
// libuv's thread pool (uv_queue_work), never on the loop thread; one chunk of
// at most kReadChunkBytes is read per work item, and the next is queued only
// when the connection's unsent output is under its cap (per-reader
// backpressure). A following cursor parks at the durable end and is queued
// again when the writer publishes a larger durable seq, so a follower never
// receives a record before its writer could have had the ack.
//
// Threads: `reader`, `frame`, `error` and the Fill outputs belong to the
// pool thread from QueueRead until OnReadDone runs; everything else to the
// loop thread.
//
// Memory: a cursor holds its reader's buffer (64 KiB) and its frame only
// while it works; ReadService frees both when it parks or waits, so that a
// parked follower costs its struct and a share of its segment's descriptor. The frame builder
// is the pool thread's, not the cursor's.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framing.h"
#include "storage/log_reader.h"

namespace wald::server {

class Connection;
class ReadService;

inline constexpr size_t kReadChunkBytes = proto::kRecordsChunk - 4096;  // headroom for the tables

struct ReadCursor {
  ReadCursor() { work.data = this; }

  // Pool thread: reads records from next_seq up to durable_cap (and at most
  // kReadChunkBytes of payload, and `remaining` records if non-zero) into one
  // Records frame in `frame`.
  void Fill(const std::string& log_dir);

  uv_work_t work;
  Connection* conn = nullptr;  // null once the connection closed
  uint64_t request_id = 0;
  uint64_t next_seq = 1;
  uint64_t remaining = 0;  // records still allowed; 0: unlimited
  bool limited = false;    // max_records was given
  bool follow = false;
  bool in_flight = false;                 // queued on the pool, or in OnReadDone: EndRead only detaches it
  bool parked = false;                    // following, waiting for a larger durable seq
  bool blocked = false;                   // waiting for the connection's output to drain
  bool cancelled = false;                 // CancelRead arrived while in flight: OnReadDone ends it
  uint64_t durable_cap = 0;               // set by the loop before queueing
  const std::string* dir = nullptr;       // the log directory (the server's options)
  storage::Env* env = nullptr;            // the server's: faults and power cuts reach reads too
  storage::SharedFiles* files = nullptr;  // the service's: one descriptor per segment
  ReadService* service = nullptr;         // the one that queued it

  // Pool thread's.
  std::unique_ptr<storage::LogReader> reader;
  std::vector<uint8_t> frame;  // the Records frame, if any
  bool done = false;           // nothing more to send
  bool trimmed = false;        // next_seq was trimmed away
  uint64_t first_held = 0;     // ...and this is the first seq held
  uint64_t gap_from = 0;       // non-zero: the read reached seqs gap_from..gap_to
  uint64_t gap_to = 0;         // that a salvage retired, and ends there
  storage::Status error;
};

}  // namespace wald::server
