// The bucket layout of wald's histograms (StatsReply and wal-bench): exact
// below 16, then 8 buckets per power of two (at most 12.5% relative error),
// up to 2^40. Part of the protocol: a StatsReply histogram lists bucket lower
// bounds from this layout.
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace wald::proto::buckets {

inline constexpr int kSubBits = 3;
inline constexpr int kLinear = 16;
inline constexpr int kMaxExp = 40;
inline constexpr int kCount = kLinear + (kMaxExp - 4) * (1 << kSubBits);

constexpr int Index(uint64_t v) {
  if (v < kLinear) return static_cast<int>(v);
  const int e = std::bit_width(v) - 1;  // >= 4
  if (e >= kMaxExp) return kCount - 1;
  const int sub = static_cast<int>((v >> (e - kSubBits)) & ((1 << kSubBits) - 1));
  return kLinear + (e - 4) * (1 << kSubBits) + sub;
}

// The smallest value that falls in bucket i.
constexpr uint64_t Lower(int i) {
  if (i < kLinear) return static_cast<uint64_t>(i);
  const int e = (i - kLinear) / (1 << kSubBits) + 4;
  const int sub = (i - kLinear) % (1 << kSubBits);
  return (uint64_t{1} << e) + (static_cast<uint64_t>(sub) << (e - kSubBits));
}

static_assert(Index(Lower(100)) == 100 && Index(Lower(100) - 1) == 99);

// The lower bound of the bucket holding the p-quantile (0 <= p <= 1) of
// `total` samples, where count_at(i) is the count of bucket i; 0 when there
// are none. The last bucket's bound if the counts add up to less than total
// (a histogram another thread is still adding to).
template <typename CountAt>
uint64_t PercentileBy(CountAt count_at, uint64_t total, double p) {
  if (total == 0) return 0;
  const uint64_t rank = static_cast<uint64_t>(p * static_cast<double>(total - 1)) + 1;
  uint64_t seen = 0;
  for (int i = 0; i < kCount; ++i) {
    seen += count_at(i);
    if (seen >= rank) return Lower(i);
  }
  return Lower(kCount - 1);
}

// The same over plain counts, one per bucket (counts.size() == kCount).
inline uint64_t Percentile(std::span<const uint64_t> counts, uint64_t total, double p) {
  return PercentileBy([&](int i) { return counts[static_cast<size_t>(i)]; }, total, p);
}

// The cumulative distribution of plain counts (counts.size() == kCount):
// for each non-empty bucket, its upper bound and the fraction of all samples
// below that bound. For plots (bench/compare).
inline std::vector<std::pair<uint64_t, double>> Cdf(std::span<const uint64_t> counts) {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  std::vector<std::pair<uint64_t, double>> points;
  uint64_t seen = 0;
  for (int i = 0; i < kCount && total > 0; ++i) {
    const uint64_t c = counts[static_cast<size_t>(i)];
    if (c == 0) continue;
    seen += c;
    const uint64_t upper = i + 1 < kCount ? Lower(i + 1) : Lower(i) * 2;
    points.emplace_back(upper, static_cast<double>(seen) / static_cast<double>(total));
  }
  return points;
}

}  // namespace wald::proto::buckets
