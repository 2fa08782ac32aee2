// IsVerifiedAppend, ParseFrame's fast path for Append frames: it must take
// every Append the builder makes, no other message, and nothing that the
// FlatBuffers verifier refuses.
#include "append_check.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "framing.h"

using namespace wald::proto;

namespace {

std::vector<uint8_t> Frame(std::span<const uint8_t> f) { return {f.begin(), f.end()}; }

std::vector<uint8_t> AppendFrame(size_t payload_size, uint64_t request_id = 7, uint64_t producer_seq = 0) {
  FrameBuilder fb;
  std::vector<uint8_t> payload(payload_size, 0xab);
  return Frame(fb.Append(request_id, payload, producer_seq));
}

// What the general path decides: VerifySizePrefixedMessageBuffer, then an
// Append with a body.
bool VerifierTakesAppend(const std::vector<uint8_t>& f) {
  flatbuffers::Verifier v(f.data(), f.size());
  if (!VerifySizePrefixedMessageBuffer(v)) return false;
  const Message* m = GetSizePrefixedMessage(f.data());
  return m->body_type() == Body::Append && m->body() != nullptr;
}

}  // namespace

TEST_CASE("append check: every Append the builder makes takes the fast path") {
  for (size_t size = 0; size <= 300; ++size) {
    for (uint64_t pseq : {uint64_t{0}, uint64_t{1}, ~uint64_t{0}}) {
      const std::vector<uint8_t> f = AppendFrame(size, size * 31 + 1, pseq);
      INFO("payload " << size << " producer_seq " << pseq);
      REQUIRE(IsVerifiedAppend(f.data(), f.size()));
      ParsedFrame r = ParseFrame(f, 1 << 20);
      REQUIRE(r.kind == ParsedFrame::kFrame);
      CHECK(r.msg->body_as_Append()->request_id() == size * 31 + 1);
      CHECK(r.msg->body_as_Append()->payload()->size() == size);
      CHECK(r.msg->body_as_Append()->producer_seq() == pseq);
    }
  }
}

TEST_CASE("append check: other messages go to the general verifier") {
  FrameBuilder fb;
  const std::vector<AckEntry> acks = {{1, 2}};
  const uint32_t sizes[] = {1, 2};
  const uint8_t data[] = {1, 2, 3};
  for (const std::vector<uint8_t>& f : {Frame(fb.Hello("x")), Frame(fb.Acks(acks)), Frame(fb.Read(1, 2, 3, true)),
                                        Frame(fb.AppendBatch(1, sizes, data))}) {
    CHECK_FALSE(IsVerifiedAppend(f.data(), f.size()));
    CHECK(ParseFrame(f, 1 << 20).kind == ParsedFrame::kFrame);
  }
}

TEST_CASE("append check: a damaged Append it takes, the verifier takes too") {
  // Every byte of a few Appends set to telling values, then random damage
  // of several bytes at once; the size prefix kept (a wrong one fails both
  // at once, which tests nothing).
  size_t taken = 0, refused = 0;
  auto probe = [&](const std::vector<uint8_t>& f) {
    if (IsVerifiedAppend(f.data(), f.size())) {
      ++taken;
      REQUIRE(VerifierTakesAppend(f));
    } else {
      ++refused;
    }
  };
  for (size_t size : {0, 1, 7, 8, 128}) {
    for (uint64_t pseq : {uint64_t{0}, uint64_t{5}}) {
      const std::vector<uint8_t> base = AppendFrame(size, 9, pseq);
      for (size_t i = 4; i < base.size(); ++i) {
        for (int v : {0x00, 0xff, 0x7f, 0x80, base[i] ^ 1, base[i] ^ 2, base[i] ^ 4, base[i] ^ 8, base[i] + 4,
                      base[i] - 4, base[i] + 16}) {
          std::vector<uint8_t> f = base;
          f[i] = static_cast<uint8_t>(v);
          probe(f);
        }
      }
    }
  }
  std::mt19937_64 rng(20261202);
  for (int n = 0; n < 200000; ++n) {
    std::vector<uint8_t> f = AppendFrame(rng() % 40, rng(), rng() % 2);
    const int hits = 1 + static_cast<int>(rng() % 4);
    for (int h = 0; h < hits; ++h) {
      const size_t i = 4 + rng() % (f.size() - 4);
      f[i] = (rng() % 2) ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>(f[i] + (rng() % 9) - 4);
    }
    probe(f);
  }
  MESSAGE(taken << " damaged frames taken by the fast path, " << refused << " left to the verifier");
  CHECK(taken > 1000);
  CHECK(refused > 1000);
}
