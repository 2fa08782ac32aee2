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

uint64_t StagingPool::Stage(storage::RecordMeta meta, std::span<const std::byte> payload) {
  const size_t need = storage::EncodedSize(payload.size(), storage::MetaSize(meta.flags | storage::kFlagDurable));
  if (current_ == nullptr || current_->room() < need) {
    if (current_ != nullptr && !current_->empty()) {
      Submit(current_);
      current_ = nullptr;
    }
    if (current_ == nullptr) {
      Recycle();
      if (free_.empty()) return 0;
      current_ = free_.back();
      free_.pop_back();
    }
  }
  if (current_->empty()) {
    meta.flags |= storage::kFlagDurable;
    meta.durable_seq = writer_->durable_seq();
  }
  const uint64_t seq = next_seq_++;
  const size_t before = current_->used;
  current_->Add(seq, meta, payload);
  staged_bytes_ += current_->used - before;
  return seq;
}

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
