// A log-linear histogram of non-negative integers (microseconds, counts):
// exact below 16, then 8 buckets per power of two (at most 12.5% relative
// error), up to 2^40. Add() is a relaxed atomic increment: one thread may add
// while others read a snapshot.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace wald::server {

class Histogram {
 public:
  static constexpr int kSubBits = 3;
  static constexpr int kLinear = 16;
  static constexpr int kMaxExp = 40;
  static constexpr int kBuckets = kLinear + (kMaxExp - 4) * (1 << kSubBits);

  static int Index(uint64_t v) {
    if (v < kLinear) return static_cast<int>(v);
    int e = std::bit_width(v) - 1;  // >= 4
    if (e >= kMaxExp) return kBuckets - 1;
    int sub = static_cast<int>((v >> (e - kSubBits)) & ((1 << kSubBits) - 1));
    return kLinear + (e - 4) * (1 << kSubBits) + sub;
  }
  // Lower bound of bucket i.
  static uint64_t Lower(int i) {
    if (i < kLinear) return static_cast<uint64_t>(i);
    int e = (i - kLinear) / (1 << kSubBits) + 4;
    int sub = (i - kLinear) % (1 << kSubBits);
    return (uint64_t{1} << e) + (static_cast<uint64_t>(sub) << (e - kSubBits));
  }

  void Add(uint64_t v, uint64_t n = 1) {
    counts_[static_cast<size_t>(Index(v))].fetch_add(n, std::memory_order_relaxed);
    count_.fetch_add(n, std::memory_order_relaxed);
    sum_.fetch_add(v * n, std::memory_order_relaxed);
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t bucket(int i) const { return counts_[static_cast<size_t>(i)].load(std::memory_order_relaxed); }

  // The lower bound of the bucket holding the p-th quantile (0 <= p <= 1).
  uint64_t Percentile(double p) const {
    uint64_t total = count();
    if (total == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(p * static_cast<double>(total - 1)) + 1, seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += bucket(i);
      if (seen >= rank) return Lower(i);
    }
    return Lower(kBuckets - 1);
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

}  // namespace wald::server
