// Named holds (issue #15): durable (name, seq) pairs, each saying "I still
// need every record above seq". Trim and retention release nothing above the
// lowest hold. A follower, a backup or wal-ship keeps one and advances it as
// it goes, like a PostgreSQL replication slot.
//
// Holds live in `wald.holds` beside wald.meta and are replaced the same way
// (write a temp file, fdatasync, rename, sync the directory: ReplaceFile), so
// a crash leaves the old set or the new one, never a mix. The format is in
// FORMAT.md ("wald.holds"); a missing file is no holds.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/env.h"

namespace wald::storage {

struct Hold {
  std::string name;
  uint64_t seq = 0;  // records above it are kept
  bool operator==(const Hold&) const = default;
};

inline constexpr std::string_view kHoldsFileName = "wald.holds";
inline constexpr size_t kMaxHoldName = 64;
inline constexpr size_t kMaxHolds = 256;

// Empty if `name` may name a hold (1 to 64 of A-Z a-z 0-9 . _ - : @), else
// why not, in words for the client.
std::string CheckHoldName(std::string_view name);

std::vector<std::byte> EncodeHolds(const std::vector<Hold>& holds);
// Empty on success, else what is wrong (for a Corruption status).
std::string DecodeHolds(std::span<const std::byte> bytes, std::vector<Hold>* out);

Status WriteHolds(Env* env, const std::string& dir, const std::vector<Hold>& holds);
Result<std::vector<Hold>> ReadHolds(Env* env, const std::string& dir);

// The hold with the lowest seq (the first such), or nullptr; H has a seq.
template <class H>
const H* LowestHold(const std::vector<H>& holds) {
  const H* low = nullptr;
  for (const H& h : holds) {
    if (low == nullptr || h.seq < low->seq) low = &h;
  }
  return low;
}

}  // namespace wald::storage
