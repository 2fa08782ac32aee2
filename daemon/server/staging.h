// Staging chunks: records encoded in their on-disk form (checksums included)
// by the loop thread, written by the writer thread. Chunks are allocated once
// and recycled through free lists, so nothing is allocated per record.
//
// Ownership moves with the pointer: a chunk belongs to the loop thread while
// it fills it, to the writer thread from the hand-off until it hands it back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

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
    used += storage::EncodeRecord(seq, meta, payload, data.get() + used);
    last_seq = seq;
  }
  void Reset() {
    used = 0;
    first_seq = last_seq = 0;
  }

  std::unique_ptr<std::byte[]> data;
  size_t capacity;
  size_t used = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
};

}  // namespace wald::server
