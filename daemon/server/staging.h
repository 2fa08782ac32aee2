// Staging: records encoded in their on-disk form (checksums included) by the
// loop thread, written by the writer thread. Chunks are allocated once and
// recycled through a free list, so nothing is allocated per record.
//
// Ownership moves with the pointer: a chunk belongs to the loop thread while
// it fills it, to the writer from the hand-off until the writer hands it
// back. StagingPool is the loop thread's side: it assigns seqs, fills the
// current chunk, hands chunks over, and takes them back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "storage/format.h"

namespace wald::server {

struct Chunk {
  explicit Chunk(size_t cap) : data(new std::byte[cap]), capacity(cap) {}

  bool empty() const { return used == 0; }
  size_t room() const { return capacity - used; }
  // Encodes one record at the end; the caller checked room() against
  // storage::EncodedSize(payload.size(), storage::MetaSize(meta.flags)).
  void Add(uint64_t seq, const storage::RecordMeta& meta, std::span<const std::byte> payload) {
    if (used == 0) first_seq = seq;
    used += storage::EncodeRecord(seq, meta, payload, data.get() + used, salt);
    last_seq = seq;
  }
  void Reset() {
    used = 0;
    first_seq = last_seq = 0;
    salt = 0;
  }

  std::unique_ptr<std::byte[]> data;
  size_t capacity;
  size_t used = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint32_t salt = 0;  // the records' (set before the first is added)
};

class WriterPort;

// Loop thread only.
class StagingPool {
 public:
  // `n_chunks` of `chunk_size` bytes each (a chunk must hold the largest
  // record); the next record gets `next_seq`. `writer` must outlive the pool.
  StagingPool(size_t chunk_size, size_t n_chunks, uint64_t next_seq, WriterPort* writer);
  StagingPool(const StagingPool&) = delete;
  StagingPool& operator=(const StagingPool&) = delete;

  // Assigns the next seq to a record and encodes it into the current chunk,
  // handing a full chunk to the writer first. The first record of every
  // chunk also carries the writer's durable seq (kFlagDurable): the proof
  // recovery uses to tell damage from a torn tail (FORMAT.md). Returns the
  // seq, or 0 when no chunk is free: the record must wait (no seq is used).
  // Inline: it runs once per record (HandleAppend).
  uint64_t Stage(const storage::RecordMeta& meta, std::span<const std::byte> payload) {
    const size_t need = storage::EncodedSize(payload.size(), storage::MetaSize(meta.flags | storage::kFlagDurable));
    if ((current_ == nullptr || current_->room() < need) && !NextChunk()) return 0;
    const uint64_t seq = next_seq_++;
    const size_t before = current_->used;
    if (current_->empty()) {
      current_->salt = WriterSegmentSalt();
      storage::RecordMeta first = meta;
      first.flags |= storage::kFlagDurable;
      first.durable_seq = WriterDurableSeq();
      current_->Add(seq, first, payload);
    } else {
      current_->Add(seq, meta, payload);
    }
    staged_bytes_ += current_->used - before;
    total_ += current_->used - before;
    return seq;
  }

  // Whether a record would keep the bytes staged since the start (as
  // encoded: what the writer counts) within `limit` (WriterPort::
  // append_limit), counting it as the most it can take (with the durable
  // stamp the first record of a chunk carries).
  bool Fits(const storage::RecordMeta& meta, size_t payload_size, uint64_t limit) const {
    const size_t need = storage::EncodedSize(payload_size, storage::MetaSize(meta.flags | storage::kFlagDurable));
    return total_ + need <= limit;
  }
  // The same for a batch whose records take `encoded` bytes, each counted
  // as Fits counts one (EncodedSize with the durable stamp's meta size).
  bool FitsEncoded(uint64_t encoded, uint64_t limit) const { return total_ + encoded <= limit; }

  // Whether records of these payload sizes, staged one after another with
  // `meta`, find chunks enough now (recycling first): a batch gets
  // consecutive seqs, so it is staged whole or waits whole. kNever: not even
  // every chunk of the pool, all free, would hold it.
  enum class Room { kNow, kWait, kNever };
  Room RoomFor(const storage::RecordMeta& meta, std::span<const uint32_t> sizes);

  // Hands the current chunk to the writer and wakes it. Returns the number
  // of records handed over (0: the chunk was empty or there was none).
  uint64_t HandOff();
  // HandOff, but only if the writer has made durable everything handed over
  // before: it is idle, or about to be, and records kept for the end of the
  // loop iteration would only wait (Server::OnData). Otherwise the current
  // chunk stays for the HandOff at the end of the iteration.
  uint64_t HandOffIfWriterIdle() {
    if (current_ == nullptr || current_->empty() || WriterDurableSeq() < handed_last_) return 0;
    return HandOff();
  }
  // Takes back every chunk the writer is done with.
  void Recycle();

  uint64_t next_seq() const { return next_seq_; }
  uint64_t staged_bytes() const { return staged_bytes_; }  // handed out, not yet recycled
  // Some chunk is free (after a Recycle).
  bool has_free() const { return !free_.empty(); }
  // No chunk to fill: none free and none current.
  bool exhausted() const { return free_.empty() && current_ == nullptr; }
  // The writer holds no chunk of ours (the watchdog: an idle writer is healthy).
  bool writer_idle() const { return submitted_ == recycled_; }
  size_t size() const { return chunks_.size(); }

 private:
  // Hands a non-empty current chunk over and takes a free one; false when
  // none is free (current_ is then null).
  bool NextChunk();
  uint64_t WriterDurableSeq() const;
  uint32_t WriterSegmentSalt() const;
  void Submit(Chunk* c);

  WriterPort* const writer_;
  std::vector<std::unique_ptr<Chunk>> chunks_;  // every chunk there is
  std::vector<Chunk*> free_;
  Chunk* current_ = nullptr;   // being filled
  uint64_t next_seq_;          // seq of the next staged record
  uint64_t staged_bytes_ = 0;  // encoded bytes handed out but not yet recycled
  uint64_t total_ = 0;         // encoded bytes staged since the start (for Fits)
  uint64_t handed_last_ = 0;   // seq of the last record handed to the writer
  uint64_t submitted_ = 0;     // chunks handed to the writer
  uint64_t recycled_ = 0;      // ...and handed back
};

}  // namespace wald::server
