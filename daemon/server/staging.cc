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

uint64_t StagingPool::WriterDurableSeq() const { return writer_->durable_seq(); }

uint64_t StagingPool::HandOff() {
  if (current_ == nullptr || current_->empty()) return 0;
  const uint64_t n = current_->last_seq - current_->first_seq + 1;
  Submit(current_);
  current_ = nullptr;
  return n;
}

void StagingPool::Submit(Chunk* c) {
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
