// The Append fast path of ParseFrame: an Append frame, the one a loaded
// daemon reads most, checked in straight code instead of through the
// general FlatBuffers verifier (whose calls were about a fifth of the loop
// thread's CPU at W3, 8 x 64 in flight).
//
// The contract: IsVerifiedAppend(buf, size) is true only if
// VerifySizePrefixedMessageBuffer accepts the same bytes with the same
// Verifier defaults, the body type is Append and the body is present. It
// makes each of that verifier's checks in the same terms (bounds, alignment
// relative to the buffer's start, offset signs, the vector length limit).
// It may say false for a frame the verifier accepts (any other body type; an
// Append laid out some other way that it does not follow): such a frame goes
// to the general verifier, so false never means invalid.
// append_check_test and frame_fuzz hold it to that: whatever it accepts,
// the verifier must accept.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wald::proto {

// `buf` is a whole size-prefixed frame of `size` bytes (prefix included),
// 8-aligned as ParseFrame requires.
bool IsVerifiedAppend(const uint8_t* buf, size_t size);

}  // namespace wald::proto
