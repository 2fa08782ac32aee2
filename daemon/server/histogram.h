// A histogram of non-negative integers (microseconds, counts) in the
// protocol's log-linear buckets (protocol/histogram_buckets.h).
//
// One thread adds (its owner: the loop for ack latency, the writer for its
// own), any thread reads. So Add is a relaxed load and store per field, not
// a locked read-modify-write: it runs once per acked record. A reader may
// see a count without its sum; the stats tolerate that.
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

  void Add(uint64_t v, uint64_t n = 1) {  // the owning thread only
    Bump(counts_[static_cast<size_t>(proto::buckets::Index(v))], n);
    Bump(count_, n);
    Bump(sum_, v * n);
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t bucket(int i) const { return counts_[static_cast<size_t>(i)].load(std::memory_order_relaxed); }

  // The lower bound of the bucket holding the p-th quantile (0 <= p <= 1).
  uint64_t Percentile(double p) const {
    return proto::buckets::PercentileBy([this](int i) { return bucket(i); }, count(), p);
  }

 private:
  static void Bump(std::atomic<uint64_t>& a, uint64_t n) {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

}  // namespace wald::server
