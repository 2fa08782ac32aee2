#include "server/staging.h"

#include "server/writer_port.h"

namespace wald::server {

StagingPool::StagingPool(size_t chunk_size, size_t n_chunks, uint64_t next_seq, WriterPort* writer)
    : writer_(writer), next_seq_(next_seq) {
  chunks_.reserve(n_chunks);
  free_.reserve(n_chunks);
  for (size_t i = 0; i < n_chunks; ++i) {
    chunks_.push_back(std::make_unique<Chunk>(chunk_size));
    free_.push_back(chunks_.back().get());
  }
}

bool StagingPool::NextChunk() {
  if (current_ != nullptr && !current_->empty()) {
    Submit(current_);
    current_ = nullptr;
  }
  if (current_ != nullptr) return true;  // empty: every chunk holds the largest record
  Recycle();
  if (free_.empty()) return false;
  current_ = free_.back();
  free_.pop_back();
  return true;
}

namespace {

// Chunks of `capacity` bytes that records of these sizes take beyond
// `room` bytes left in the current one, placed as Stage places them.
size_t FreshChunks(std::span<const uint32_t> sizes, size_t meta_size, size_t capacity, size_t room) {
  size_t fresh = 0;
  for (uint32_t size : sizes) {
    const size_t need = storage::EncodedSize(size, meta_size);
    if (room < need) {
      ++fresh;
      room = capacity;
    }
    room -= need;
  }
  return fresh;
}

}  // namespace

StagingPool::Room StagingPool::RoomFor(const storage::RecordMeta& meta, std::span<const uint32_t> sizes) {
  const size_t meta_size = storage::MetaSize(meta.flags | storage::kFlagDurable);
  const size_t capacity = chunks_.front()->capacity;
  const size_t fresh = FreshChunks(sizes, meta_size, capacity, current_ != nullptr ? current_->room() : 0);
  if (fresh == 0) return Room::kNow;
  if (free_.size() < fresh) Recycle();
  if (free_.size() >= fresh) return Room::kNow;
  // Waiting helps if the batch fits the pool once every chunk is back
  // (the current one is handed off by the end of this loop iteration).
  return FreshChunks(sizes, meta_size, capacity, 0) <= chunks_.size() ? Room::kWait : Room::kNever;
}

uint64_t StagingPool::WriterDurableSeq() const { return writer_->durable_seq(); }
uint32_t StagingPool::WriterSegmentSalt() const { return writer_->segment_salt(); }

uint64_t StagingPool::HandOff() {
  if (current_ == nullptr || current_->empty()) return 0;
  const uint64_t n = current_->last_seq - current_->first_seq + 1;
  Submit(current_);
  current_ = nullptr;
  return n;
}

void StagingPool::Submit(Chunk* c) {
  handed_last_ = c->last_seq;
  writer_->Submit(c);
  ++submitted_;
  writer_->Wake();
}

void StagingPool::Recycle() {
  while (Chunk* c = writer_->TakeFree()) {
    staged_bytes_ -= c->used;
    c->Reset();
    free_.push_back(c);
    ++recycled_;
  }
}

}  // namespace wald::server
