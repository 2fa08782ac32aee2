#include "server/producer_table.h"

#include <algorithm>
#include <bit>
#include <cassert>

#include "storage/log_dir.h"
#include "storage/log_reader.h"

namespace wald::server {
namespace {
constexpr size_t kMinRing = 4;
}  // namespace

ProducerTable::ProducerTable(Limits limits)
    : limits_(limits), max_ring_(std::bit_ceil(std::max<size_t>(kMinRing, limits.depth))) {}

uint64_t ProducerTable::Floor(uint64_t next_seq) const {
  return next_seq > limits_.window ? next_seq - limits_.window : 1;
}

bool ProducerTable::Expired(const Producer& p, uint64_t next_seq) const { return p.last_log < Floor(next_seq); }

ProducerTable::Producer* ProducerTable::Find(uint64_t id, uint64_t next_seq) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  if (Expired(it->second, next_seq)) {
    Forget(&it->second);
    return nullptr;
  }
  return &it->second;
}

ProducerTable::Check ProducerTable::Classify(uint64_t id, uint64_t pseq, uint32_t count, uint64_t next_seq) {
  assert(pseq >= 1 && count >= 1);
  Check c;
  Producer* p = Find(id, next_seq);
  if (p == nullptr) return c;  // unknown: it starts where it says
  c.last = p->last;
  if (pseq == p->last + 1) return c;
  if (pseq > p->last + 1) {
    c.verdict = Verdict::kGap;
    return c;
  }
  // At or below last: a duplicate if every one of them is remembered, within
  // the window, and (for a batch) densely placed, so that one range acks it.
  c.verdict = Verdict::kStale;
  const uint64_t end = pseq + count - 1;
  const uint64_t floor = Floor(next_seq);
  if (pseq < p->low || end > p->last || p->LogSeq(pseq) < floor) return c;
  const uint64_t first = p->LogSeq(pseq);
  for (uint64_t q = pseq + 1; q <= end; ++q) {
    if (p->LogSeq(q) != first + (q - pseq)) return c;
  }
  c.verdict = Verdict::kDuplicate;
  c.seq = first;
  return c;
}

uint64_t ProducerTable::Last(uint64_t id, uint64_t next_seq) {
  const Producer* p = Find(id, next_seq);
  return p != nullptr ? p->last : 0;
}

void ProducerTable::Note(uint64_t id, uint64_t pseq, uint64_t log_seq, uint32_t count) {
  assert(pseq >= 1 && count >= 1 && log_seq >= 1);
  const uint64_t next_seq = log_seq + count;
  Expire(next_seq);
  auto [it, fresh] = by_id_.try_emplace(id);
  Producer* p = &it->second;
  if (fresh) {
    p->id = id;
    if (by_id_.size() > limits_.max_producers && oldest_ != nullptr) {
      ++evicted_;
      Forget(oldest_);  // never p: it is not linked yet
    }
  } else {
    Unlink(p);
  }
  Record(p, fresh, pseq, log_seq, count, next_seq);
  p->last_log = log_seq + count - 1;
  LinkNewest(p);  // the idle order is by last_log: this is the newest
}

void ProducerTable::Refuse(uint64_t id, uint64_t pseq, uint32_t count, uint64_t next_seq) {
  assert(pseq >= 1 && count >= 1);
  Producer* p = Find(id, next_seq);
  if (p == nullptr || pseq != p->last + 1) return;
  Record(p, /*fresh=*/false, pseq, 0, count, next_seq);  // last_log and the idle order stay
}

void ProducerTable::Record(Producer* p, bool fresh, uint64_t pseq, uint64_t log_seq, uint32_t count,
                           uint64_t next_seq) {
  if (!fresh && pseq > p->last + 1 && pseq - p->last - 1 < max_ring_) {
    // Numbers the log skips (the rebuild: refused ones leave no record):
    // what came before them still counts, and they stay refused.
    Record(p, false, p->last + 1, 0, static_cast<uint32_t>(pseq - p->last - 1), next_seq);
  }
  if (fresh || pseq != p->last + 1) {
    // A new producer, or one that starts afresh (an expired one's entry not
    // yet swept, a number below its last, or far past it): nothing before
    // counts.
    p->low = pseq;
    if (p->ring.empty()) p->ring.resize(kMinRing);
  }
  const uint64_t end = pseq + count - 1;
  // Keep at most `depth` appends, and none older than the window (nor a
  // refusal marker at the front).
  const uint64_t depth_low = end >= max_ring_ ? end - max_ring_ + 1 : 1;
  uint64_t low = std::max(p->low, depth_low);
  const uint64_t floor = Floor(next_seq);
  while (low < pseq && p->LogSeq(low) < floor) ++low;
  const uint64_t live = end - low + 1;
  size_t cap = p->ring.size();
  while (cap < live) cap *= 2;
  while (cap > kMinRing && live <= cap / 4) cap /= 2;
  // The old entries kept are those in [low, pseq); move them if the size
  // changes, before the new ones may overwrite their slots.
  if (cap != p->ring.size()) Resize(p, low, std::min(p->last, pseq - 1), cap);
  p->low = low;
  const size_t mask = p->ring.size() - 1;
  const uint64_t first = std::max(pseq, low);
  for (uint64_t q = first; q <= end; ++q) p->ring[q & mask] = log_seq == 0 ? 0 : log_seq + (q - pseq);
  p->last = end;
}

void ProducerTable::Clear() {
  by_id_.clear();
  oldest_ = newest_ = nullptr;
}

void ProducerTable::Resize(Producer* p, uint64_t from, uint64_t to, size_t cap) {
  std::vector<uint64_t> ring(cap);
  for (uint64_t q = from; q <= to; ++q) ring[q & (cap - 1)] = p->LogSeq(q);
  p->ring.swap(ring);
}

void ProducerTable::Expire(uint64_t next_seq) {
  while (oldest_ != nullptr && Expired(*oldest_, next_seq)) Forget(oldest_);
}

void ProducerTable::Forget(Producer* p) {
  Unlink(p);
  const uint64_t id = p->id;  // not a reference into the node being erased
  by_id_.erase(id);
}

void ProducerTable::Unlink(Producer* p) {
  if (p->older != nullptr) {
    p->older->newer = p->newer;
  } else if (oldest_ == p) {
    oldest_ = p->newer;
  }
  if (p->newer != nullptr) {
    p->newer->older = p->older;
  } else if (newest_ == p) {
    newest_ = p->older;
  }
  p->older = p->newer = nullptr;
}

void ProducerTable::LinkNewest(Producer* p) {
  p->older = newest_;
  p->newer = nullptr;
  if (newest_ != nullptr) newest_->newer = p;
  newest_ = p;
  if (oldest_ == nullptr) oldest_ = p;
}

storage::Result<uint64_t> RebuildProducers(storage::Env* env, const std::string& dir, uint64_t next_seq,
                                           ProducerTable* table) {
  const uint64_t window = table->limits().window;
  uint64_t from = next_seq > window ? next_seq - window : 1;
  auto segs = storage::ListSegments(env, dir);
  if (!segs.ok()) return segs.take_status();
  if (segs->empty() || from >= next_seq) return uint64_t{0};
  from = std::max(from, segs->front().first_seq);
  auto reader = storage::LogReader::Open(env, dir, from, nullptr, 1 << 20);
  if (!reader.ok()) return reader.take_status();
  uint64_t n = 0;
  storage::RecordView rec;
  for (;;) {
    switch ((*reader)->Next(&rec)) {
      case storage::LogReader::Step::kRecord:
        if (rec.seq >= next_seq) return n;
        ++n;
        if (rec.meta.flags & storage::kFlagProducerSeq && rec.meta.producer_seq != 0) {
          table->Note(rec.meta.producer_id, rec.meta.producer_seq, rec.seq, 1);
        }
        break;
      case storage::LogReader::Step::kGap: break;
      case storage::LogReader::Step::kEnd: return n;
      case storage::LogReader::Step::kError: return (*reader)->status();
    }
  }
}

}  // namespace wald::server
