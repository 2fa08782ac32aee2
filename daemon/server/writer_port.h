// WriterPort: what the loop thread needs of the writer thread. CommitWriter
// is the one implementation in the daemon; the in-process server tests use a
// fake that completes syncs when the test says so.
//
// Threads: every method is the loop thread's. An implementation reaches the
// loop back only through the `notify` callback it was built with (for the
// daemon: uv_async_send), after each batch made durable and on failure.
// Several notifications may merge into one: the loop reads the state, never
// counts notifications.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "server/histogram.h"
#include "server/staging.h"
#include "storage/status.h"

namespace wald::server {

struct WriterStats {
  std::atomic<uint64_t> syncs{0};
  Histogram records_per_sync;
  Histogram sync_latency_us;  // Append (pwritev) + Sync (fdatasync) of one batch
};

class WriterPort {
 public:
  virtual ~WriterPort() = default;

  // Hands a full or final chunk to the writer. Ownership moves with it until
  // TakeFree returns it.
  virtual void Submit(Chunk* c) = 0;
  // Once per hand-off: wakes the writer if it sleeps.
  virtual void Wake() = 0;
  // An empty chunk handed back, or nullptr.
  virtual Chunk* TakeFree() = 0;
  // Asks for the release of whole segments at or below `up_to`. Returns the
  // request's number; trims_done() reaches it once the trim is durable (or
  // failed()).
  virtual uint64_t RequestTrim(uint64_t up_to) = 0;
  virtual uint64_t trims_done() const = 0;
  virtual uint64_t trim_seq() const = 0;  // every seq <= trim_seq() is released

  // Every seq <= durable_seq() is on disk. Never moves after failed().
  virtual uint64_t durable_seq() const = 0;
  virtual bool failed() const = 0;
  virtual std::string failure() const = 0;  // the cause, once failed()
  virtual const WriterStats& stats() const = 0;

  // Finishes what was submitted, closes the log cleanly, and stops; blocks
  // until it has. Then close_status() says how the clean close went.
  virtual void Stop() = 0;
  virtual const storage::Status& close_status() const = 0;
};

}  // namespace wald::server
