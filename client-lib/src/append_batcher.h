// AppendBatcher: coalesces the appends queued between two writes into
// AppendBatch frames (PROTOCOL.md, AppendBatch). No timer: whatever is
// queued when the client writes goes out in as few frames as the daemon's
// limits allow, and a lone append still goes as a plain Append.
//
// Appends get consecutive request ids, so a batch is (first id, count); its
// BatchAckEntry (first seq, count) completes those ids in order. Used by
// one thread (the client's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "framing.h"

namespace wald {

class AppendBatcher {
 public:
  // From the daemon's HelloAck. max_records 0: it takes no AppendBatch (an
  // older daemon, or batching turned off), and every append is an Append.
  void Configure(uint32_t max_frame, uint32_t max_records);

  // Whether a payload of `size` joins the open batch without going past
  // the daemon's limits (false: Close first).
  bool Fits(size_t size) const;
  // Adds the payload of request `rid`, the open batch's next id (or its
  // first), and its producer seq (0: not a producer's; else the batch's
  // next number). Copies it.
  void Add(uint64_t rid, std::span<const std::byte> payload, uint64_t pseq = 0);
  bool empty() const { return sizes_.empty(); }
  bool full() const { return sizes_.size() >= max_records_; }

  // Closes the open batch into frame(s) at the end of *out (an Append for a
  // lone record). Returns its (first id, record count); count 0 if none was
  // open, 1 for a plain Append.
  struct Closed {
    uint64_t first_id = 0;
    uint32_t count = 0;
  };
  Closed Close(proto::FrameBuilder* fb, std::vector<uint8_t>* out);
  // Drops the open batch (the connection broke; its appends are failed).
  void Clear();

 private:
  uint32_t max_frame_ = 0;
  uint32_t max_records_ = 1;
  uint64_t first_id_ = 0;
  uint64_t first_pseq_ = 0;
  std::vector<uint32_t> sizes_;
  std::vector<uint8_t> data_;
};

}  // namespace wald
