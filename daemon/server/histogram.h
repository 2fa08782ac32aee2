// A histogram of non-negative integers (microseconds, counts) in the
// protocol's log-linear buckets (protocol/histogram_buckets.h). Add() is a
// relaxed atomic increment: one thread may add while others read.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "histogram_buckets.h"

namespace wald::server {

class Histogram {
 public:
  static constexpr int kBuckets = proto::buckets::kCount;
  static uint64_t Lower(int i) { return proto::buckets::Lower(i); }

  void Add(uint64_t v, uint64_t n = 1) {
    counts_[static_cast<size_t>(proto::buckets::Index(v))].fetch_add(n, std::memory_order_relaxed);
    count_.fetch_add(n, std::memory_order_relaxed);
    sum_.fetch_add(v * n, std::memory_order_relaxed);
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t bucket(int i) const { return counts_[static_cast<size_t>(i)].load(std::memory_order_relaxed); }

  // The lower bound of the bucket holding the p-th quantile (0 <= p <= 1).
  uint64_t Percentile(double p) const {
    return proto::buckets::PercentileBy([this](int i) { return bucket(i); }, count(), p);
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

}  // namespace wald::server
