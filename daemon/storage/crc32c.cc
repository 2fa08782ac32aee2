#include "storage/crc32c.h"

#include <isa-l/crc.h>

#include <array>
#include <climits>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <wmmintrin.h>
#endif

namespace wald::storage::crc32c {

namespace {

// ISA-L's crc32_iscsi neither inverts its input nor its output, so the
// standard CRC32C (init ~0, final ~) is ~crc32_iscsi(buf, n, ~crc).
uint32_t IsalRaw(uint32_t state, const unsigned char* p, size_t n) {
  auto* q = const_cast<unsigned char*>(p);  // ISA-L's API is not const-correct
  while (n > 0) {                           // its length is an int
    const int chunk = n > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
    state = crc32_iscsi(q, chunk, state);
    q += chunk;
    n -= static_cast<size_t>(chunk);
  }
  return state;
}

#if defined(__x86_64__)

// Records are mostly a few hundred bytes, and the loop computes one CRC per
// record over bytes it has just written. ISA-L serves those lengths with a
// folding loop that waits on each 16-byte step (31 ns for 144 bytes just
// copied, on this VM's EPYC), and a plain loop of crc32 instructions waits 3
// cycles on each 8 (24 ns). Below kThreeWayMax, the range is cut into three
// lanes that run side by side and are then joined: 15 ns. Above it ISA-L
// is faster.
constexpr size_t kLaneUnit = 8;      // lane lengths are multiples of 8 bytes
constexpr size_t kThreeWayMin = 48;  // two units per lane
constexpr size_t kThreeWayMax = 512;
constexpr size_t kMaxUnits = kThreeWayMax / (3 * kLaneUnit);

// x^e mod P, bit-reflected as the crc32 instruction keeps its state.
constexpr uint32_t XPow(uint64_t e) {
  uint32_t v = 0x80000000u;  // x^0
  for (uint64_t i = 0; i < e; ++i) v = (v & 1) ? (v >> 1) ^ 0x82f63b78u : v >> 1;
  return v;
}

// kShift[j]: the constant that moves a CRC state past 8*j zero bytes (see
// Shift). A carry-less product of two reflected 32-bit values is the
// product times x, and crc32 of a 64-bit value v is v * x^32 mod P: hence
// x^(64j - 33).
constexpr std::array<uint32_t, 2 * kMaxUnits + 1> kShift = [] {
  std::array<uint32_t, 2 * kMaxUnits + 1> t{};
  for (size_t j = 1; j < t.size(); ++j) t[j] = XPow(64 * j - 33);
  return t;
}();

// The state after feeding 8*j zero bytes to `state`.
__attribute__((target("sse4.2,pclmul"))) uint32_t Shift(uint32_t state, size_t j) {
  const __m128i product = _mm_clmulepi64_si128(_mm_cvtsi32_si128(static_cast<int>(state)),
                                               _mm_cvtsi32_si128(static_cast<int>(kShift[j])), 0);
  return static_cast<uint32_t>(_mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(product))));
}

__attribute__((target("sse4.2"))) uint32_t SerialRaw(uint32_t state, const unsigned char* p, size_t n) {
  uint64_t c = state;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; ++p, --n) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}

// CRC is linear: the state after lanes A, B, C is shift(a, |B|+|C|) ^
// shift(b, |C|) ^ c, where b and c start from zero.
__attribute__((target("sse4.2,pclmul"))) uint32_t ThreeWayRaw(uint32_t state, const unsigned char* p, size_t n) {
  const size_t units = n / (3 * kLaneUnit);
  const size_t lane = units * kLaneUnit;
  uint64_t a = state, b = 0, c = 0;
  for (size_t i = 0; i < lane; i += 8) {
    uint64_t va, vb, vc;
    std::memcpy(&va, p + i, 8);
    std::memcpy(&vb, p + lane + i, 8);
    std::memcpy(&vc, p + 2 * lane + i, 8);
    a = _mm_crc32_u64(a, va);
    b = _mm_crc32_u64(b, vb);
    c = _mm_crc32_u64(c, vc);
  }
  const uint32_t joined =
      Shift(static_cast<uint32_t>(a), 2 * units) ^ Shift(static_cast<uint32_t>(b), units) ^ static_cast<uint32_t>(c);
  return SerialRaw(joined, p + 3 * lane, n - 3 * lane);
}

// Read by Raw; false (ISA-L, which picks its own code) until initialized.
const bool kHaveCrcInstructions = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
}();

uint32_t Raw(uint32_t state, const unsigned char* p, size_t n) {
  if (n >= kThreeWayMax || !kHaveCrcInstructions) return IsalRaw(state, p, n);
  return n >= kThreeWayMin ? ThreeWayRaw(state, p, n) : SerialRaw(state, p, n);
}

#else

uint32_t Raw(uint32_t state, const unsigned char* p, size_t n) { return IsalRaw(state, p, n); }

#endif

}  // namespace

uint32_t Extend(uint32_t crc, const void* data, size_t n) {
  return ~Raw(~crc, static_cast<const unsigned char*>(data), n);
}

}  // namespace wald::storage::crc32c
