// CRC32C (Castagnoli), plus LevelDB's mask for CRCs stored next to the data
// they cover (a CRC of bytes that embed CRCs is otherwise weak). Below 512
// bytes (a record) it runs the crc32 instruction in three interleaved lanes
// where the CPU has it; longer ranges go to ISA-L's crc32_iscsi.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wald::storage::crc32c {

// Extends `crc` (the CRC32C of some earlier bytes, 0 for none) with n bytes.
uint32_t Extend(uint32_t crc, const void* data, size_t n);

inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

inline constexpr uint32_t kMaskDelta = 0xa282ead8u;

inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace wald::storage::crc32c
