// A bounded single-producer/single-consumer ring of trivially copyable values
// (pointers here). Lock-free: one release store per push and per pop. Each
// side caches the other's index, so a push or pop touches the other side's
// cache line only when the cached view says full or empty.
#pragma once

#include <atomic>
#include <cstddef>
#include <vector>

namespace wald::server {

template <typename T>
class SpscQueue {
 public:
  // capacity is rounded up to a power of two.
  explicit SpscQueue(size_t capacity) {
    size_t n = 2;
    while (n < capacity) n *= 2;
    slots_.resize(n);
    mask_ = n - 1;
  }
  SpscQueue(const SpscQueue&) = delete;
  SpscQueue& operator=(const SpscQueue&) = delete;

  // Producer only. False if full.
  bool Push(T v) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ > mask_) return false;
    }
    slots_[tail & mask_] = v;
    // seq_cst, not just release: CommitWriter's park/wake handshake needs
    // this store ordered before the producer's later load of `parked_`.
    tail_.store(tail + 1, std::memory_order_seq_cst);
    return true;
  }

  // Consumer only. False if empty.
  bool Pop(T* out) {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return false;
    }
    *out = slots_[head & mask_];
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

  // Either side; a snapshot (seq_cst loads: see Push).
  bool Empty() const { return head_.load() == tail_.load(); }

 private:
  std::vector<T> slots_;
  size_t mask_ = 0;
  alignas(64) std::atomic<size_t> head_{0};  // next slot to pop; written by the consumer
  size_t tail_cache_ = 0;                    // consumer's view of tail_
  alignas(64) std::atomic<size_t> tail_{0};  // next slot to push; written by the producer
  size_t head_cache_ = 0;                    // producer's view of head_
};

}  // namespace wald::server
