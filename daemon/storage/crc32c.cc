#include "storage/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace wald::storage::crc32c {

// crc32_iscsi neither inverts its input nor its output, so the standard
// CRC32C (init ~0, final ~) is ~crc32_iscsi(buf, n, ~crc).
uint32_t Extend(uint32_t crc, const void* data, size_t n) {
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));  // ISA-L's API is not const-correct
  uint32_t c = ~crc;
  while (n > 0) {  // its length is an int
    int chunk = n > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
    c = crc32_iscsi(p, chunk, c);
    p += chunk;
    n -= static_cast<size_t>(chunk);
  }
  return ~c;
}

}  // namespace wald::storage::crc32c
