// WriterPort: what the loop thread needs of the writer thread. CommitWriter
// is the one implementation in the daemon; the in-process server tests use a
// fake that completes syncs when the test says so.
//
// Threads: every method is the loop thread's. An implementation reaches the
// loop back only through the `notify` callback it was built with (for the
// daemon: Doorbell::Ring), after each batch made durable and on failure.
// Several notifications may merge into one: the loop reads the state, never
// counts notifications.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "server/histogram.h"
#include "server/staging.h"
#include "storage/holds.h"
#include "storage/status.h"

namespace wald::server {

// The answer to one hold change (WriterPort::RequestHold).
struct HoldResult {
  enum class Outcome {
    kDone,        // durable
    kNoSuchHold,  // a release of a hold that does not exist
    kTrimmed,     // a hold below the trim point: what it asks to keep is gone
    kInvalid,     // a bad name, or one hold too many
  };
  uint64_t number = 0;  // RequestHold's
  Outcome outcome = Outcome::kDone;
  std::string why;         // a refusal's reason, for the client
  uint64_t seq = 0;        // kDone: the hold's seq as stored (a Hold clamps to the durable seq)
  uint64_t first_seq = 0;  // kTrimmed: the first seq still held
};

// A named hold as the writer last saw it.
struct HoldState {
  std::string name;
  uint64_t seq = 0;
  uint64_t lag_bytes = 0;  // storage::LogWriter::HoldLagBytes: the disk it keeps
};

struct WriterStats {
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> holds_invalidated{0};  // dropped by --max-hold-lag
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
  // Creates or moves the hold `name` to `seq` (or, with `release`, drops
  // it): storage::LogWriter::SetHold/ReleaseHold, done in request order
  // between batches and before the trims asked for meanwhile. Returns the
  // request's number; its result comes back through TakeHoldResults once the
  // change is durable (or refused).
  virtual uint64_t RequestHold(const std::string& name, uint64_t seq, bool release) = 0;
  // Appends the results that came back since the last call, in number order.
  virtual void TakeHoldResults(std::vector<HoldResult>* out) = 0;
  // Runs the retention policy soon, even if no segment rolls (for an age).
  virtual void RequestRetention() = 0;
  // The holds now (a copy): for stats and for the TrimAck's held_by. Their
  // lag_bytes change with rolls and hold changes.
  virtual std::vector<HoldState> holds() const = 0;

  // The disk budget (storage::LogWriter::AppendLimit): records whose encoded
  // bytes, counted from the start, would pass it must be refused. Only grows.
  virtual uint64_t append_limit() const = 0;

  // Every seq <= durable_seq() is on disk. Never moves after failed().
  virtual uint64_t durable_seq() const = 0;
  // The salt of the segment being written (storage::SegmentSalt): the loop
  // salts the records of a chunk with it as it encodes them, and the writer
  // re-salts a chunk that lands in another segment (a roll came between).
  virtual uint32_t segment_salt() const = 0;
  virtual bool failed() const = 0;
  virtual std::string failure() const = 0;  // the cause, once failed()
  virtual const WriterStats& stats() const = 0;

  // Finishes what was submitted, closes the log cleanly, and stops; blocks
  // until it has. Then close_status() says how the clean close went.
  virtual void Stop() = 0;
  virtual const storage::Status& close_status() const = 0;
};

}  // namespace wald::server
