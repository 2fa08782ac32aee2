#include "append_check.h"

#include <cstring>

#include "wald_generated.h"

namespace wald::proto {

namespace {

// flatbuffers::Verifier's primitives, each with its semantics (verifier.h,
// FlatBuffers 2.0): offsets count from the buffer's start.
class Bounds {
 public:
  Bounds(const uint8_t* buf, size_t size) : buf_(buf), size_(size) {}

  // Verify(elem, len)
  bool In(size_t elem, size_t len) const { return len < size_ && elem <= size_ - len; }
  // Verify<T>(elem): aligned to its size, and in bounds.
  template <class T>
  bool At(size_t elem) const {
    return (elem & (sizeof(T) - 1)) == 0 && In(elem, sizeof(T));
  }
  template <class T>
  T Read(size_t elem) const {
    T v;
    std::memcpy(&v, buf_ + elem, sizeof v);
    return v;
  }
  // VerifyOffset(start): the offset, or 0 if it fails.
  uint32_t Offset(size_t start) const {
    if (!At<uint32_t>(start)) return 0;
    const uint32_t o = Read<uint32_t>(start);
    if (o == 0 || static_cast<int32_t>(o) < 0 || !In(start + o, 1)) return 0;
    return o;
  }
  // VerifyTableStart(table): *vt is its vtable's position, *vt_size its size.
  bool Table(size_t table, size_t* vt, uint16_t* vt_size) const {
    if (!At<int32_t>(table)) return false;
    const size_t v = table - static_cast<size_t>(Read<int32_t>(table));  // wraps as the verifier's does
    if (!At<uint16_t>(v)) return false;
    const uint16_t n = Read<uint16_t>(v);
    if ((n & 1) != 0 || !In(v, n)) return false;
    *vt = v;
    *vt_size = n;
    return true;
  }
  // Table::GetOptionalFieldOffset: 0 for a field the vtable does not have.
  uint16_t Field(size_t vt, uint16_t vt_size, uint16_t field) const {
    return field < vt_size ? Read<uint16_t>(vt + field) : 0;
  }
  // Table::VerifyField<T>(verifier, field, align), given the field's offset.
  bool Scalar(size_t table, uint16_t off, size_t len, size_t align) const {
    return off == 0 || (((table + off) & (align - 1)) == 0 && In(table + off, len));
  }

 private:
  const uint8_t* const buf_;
  const size_t size_;
};

}  // namespace

bool IsVerifiedAppend(const uint8_t* buf, size_t size) {
  const Bounds b(buf, size);
  // VerifySizePrefixedBuffer, then VerifyBufferFromStart at 4.
  if (!b.At<uint32_t>(0) || b.Read<uint32_t>(0) != size - sizeof(uint32_t)) return false;
  using flatbuffers::soffset_t, flatbuffers::uoffset_t;  // for the macros below
  if (size < FLATBUFFERS_MIN_BUFFER_SIZE) return false;
  const uint32_t root = b.Offset(sizeof(uint32_t));
  if (root == 0) return false;
  // Message::Verify.
  const size_t msg = sizeof(uint32_t) + root;
  size_t vt = 0;
  uint16_t vt_size = 0;
  if (!b.Table(msg, &vt, &vt_size)) return false;
  const uint16_t type_at = b.Field(vt, vt_size, Message::VT_BODY_TYPE);
  if (type_at == 0 || !b.Scalar(msg, type_at, 1, 1)) return false;  // no type: NONE
  if (b.Read<uint8_t>(msg + type_at) != static_cast<uint8_t>(Body::Append)) return false;
  const uint16_t body_at = b.Field(vt, vt_size, Message::VT_BODY);
  if (body_at == 0) return false;  // no body: the general path refuses it
  const uint32_t body = b.Offset(msg + body_at);
  if (body == 0) return false;
  // Append::Verify.
  const size_t append = msg + body_at + body;
  if (!b.Table(append, &vt, &vt_size)) return false;
  if (!b.Scalar(append, b.Field(vt, vt_size, Append::VT_REQUEST_ID), 8, 8)) return false;
  if (!b.Scalar(append, b.Field(vt, vt_size, Append::VT_PRODUCER_SEQ), 8, 8)) return false;
  const uint16_t payload_at = b.Field(vt, vt_size, Append::VT_PAYLOAD);
  if (payload_at == 0) return true;  // no payload: an empty record
  const uint32_t payload = b.Offset(append + payload_at);
  if (payload == 0) return false;
  // VerifyVector for 1-byte elements.
  const size_t vec = append + payload_at + payload;
  if (!b.At<uint32_t>(vec)) return false;
  const uint32_t n = b.Read<uint32_t>(vec);
  return n < FLATBUFFERS_MAX_BUFFER_SIZE && b.In(vec, sizeof(uint32_t) + size_t{n});
}

}  // namespace wald::proto
