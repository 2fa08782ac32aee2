// ProducerTable: what the daemon knows of its idempotent producers, to
// append each of their records exactly once (PROTOCOL.md, "Idempotent
// producers"). Per producer id: the highest producer seq appended, and the
// log seqs of its latest appends, so that a resent append is answered with
// the seq its first copy got instead of being written again.
//
// Bounds (the contract PROTOCOL.md states):
//   - window: a producer whose last record is more than `window` records
//     behind the log's next seq is forgotten (expired), and so is any one
//     of its records that far back. The daemon rebuilds the table at start
//     by reading exactly those last `window` records (RebuildProducers), so
//     the table after a restart holds what it held before, less what was
//     not durable.
//   - depth: a duplicate is answered only among the producer's latest
//     `depth` appends (the daemon's --max-inflight: a client resends at most
//     that many). Older: kStale.
//   - max_producers: beyond it, the producer idle longest is forgotten
//     (counted in evicted()).
// Memory: one entry per live producer and 8 bytes per remembered append
// (each within the window when it was noted; a ring keeps up to 4x slack
// before it shrinks, and at least 4 slots): bounded by a small multiple of
// window * 8 bytes plus max_producers entries.
//
// A producer unknown to the table (new, expired, evicted) may start at any
// producer seq: nothing can be checked for it.
//
// Not thread-safe: the loop thread owns it (seqs are assigned there).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/env.h"
#include "storage/status.h"

namespace wald::server {

class ProducerTable {
 public:
  struct Limits {
    uint64_t window = 1'000'000;  // records
    uint32_t depth = 4096;        // appends per producer
    size_t max_producers = 65536;
  };
  explicit ProducerTable(Limits limits);
  ProducerTable(const ProducerTable&) = delete;
  ProducerTable& operator=(const ProducerTable&) = delete;

  enum class Verdict {
    kNew,        // append it
    kDuplicate,  // already in the log at seq (and the rest densely after it)
    kGap,        // producer seq past last + 1
    kStale,      // at or below last, but not answerable: too old, or a batch that
                 // overlaps what is known only in part or not densely
  };
  struct Check {
    Verdict verdict = Verdict::kNew;
    uint64_t seq = 0;   // kDuplicate: the log seq of the first of them
    uint64_t last = 0;  // the producer's highest producer seq (0: unknown)
  };
  // What to do with `count` appends of producer `id` numbered pseq,
  // pseq + 1, ..., when the log's next seq is `next_seq`. pseq >= 1.
  Check Classify(uint64_t id, uint64_t pseq, uint32_t count, uint64_t next_seq);
  // `count` appends of `id` numbered from pseq got log seqs from log_seq on
  // (consecutive; the log's next seq is now log_seq + count). Either they
  // follow the producer's last (Classify said kNew), or the producer starts
  // afresh at pseq (what it knew is dropped).
  void Note(uint64_t id, uint64_t pseq, uint64_t log_seq, uint32_t count);
  // `count` appends of `id` numbered from pseq, which Classify called new,
  // were refused (nothing appended): the numbers are used all the same, as
  // the client used them, so that its next ones are not a gap. A repeat of
  // one is kStale. An unknown producer stays unknown.
  void Refuse(uint64_t id, uint64_t pseq, uint32_t count, uint64_t next_seq);
  // The producer's highest producer seq, 0 if unknown or expired.
  uint64_t Last(uint64_t id, uint64_t next_seq);
  // Forgets every producer.
  void Clear();

  // The largest producer seq a request may carry (a batch's last included):
  // far from wrapping.
  static constexpr uint64_t kMaxProducerSeq = uint64_t{1} << 62;

  size_t size() const { return by_id_.size(); }
  uint64_t evicted() const { return evicted_; }
  const Limits& limits() const { return limits_; }

 private:
  struct Producer {
    uint64_t id = 0;
    uint64_t last = 0;      // highest producer seq
    uint64_t low = 0;       // lowest producer seq whose log seq is in ring
    uint64_t last_log = 0;  // log seq of `last`
    // Log seq of producer seq p at p & (ring.size() - 1); 0: refused.
    std::vector<uint64_t> ring;
    Producer* older = nullptr;  // the idle order: by last_log, oldest first
    Producer* newer = nullptr;
    uint64_t LogSeq(uint64_t p) const { return ring[p & (ring.size() - 1)]; }
  };
  bool Expired(const Producer& p, uint64_t next_seq) const;
  uint64_t Floor(uint64_t next_seq) const;  // the oldest log seq the window keeps
  Producer* Find(uint64_t id, uint64_t next_seq);
  void Forget(Producer* p);
  void Unlink(Producer* p);
  void LinkNewest(Producer* p);
  // Moves p's entries for producer seqs [from, to] into a ring of cap.
  void Resize(Producer* p, uint64_t from, uint64_t to, size_t cap);
  // Note's and Refuse's work on p: entries pseq.. get log seqs log_seq..,
  // or refusal markers (0) when log_seq is 0.
  void Record(Producer* p, bool fresh, uint64_t pseq, uint64_t log_seq, uint32_t count, uint64_t next_seq);
  void Expire(uint64_t next_seq);

  const Limits limits_;
  const size_t max_ring_;  // depth, to a power of two
  std::unordered_map<uint64_t, Producer> by_id_;
  Producer* oldest_ = nullptr;
  Producer* newest_ = nullptr;
  uint64_t evicted_ = 0;
};

// Fills `table` from the last table->limits().window records of the log at
// `dir` (whose next seq is `next_seq`), as a daemon does at start. Returns
// the number of records read.
storage::Result<uint64_t> RebuildProducers(storage::Env* env, const std::string& dir, uint64_t next_seq,
                                           ProducerTable* table);

}  // namespace wald::server
