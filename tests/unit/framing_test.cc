// Framing: what ParseFrame accepts and rejects, including inputs found by the
// fuzzers (tests/fuzz/regressions).
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "framing.h"
#include "histogram_buckets.h"

using namespace wald::proto;

namespace {
std::vector<uint8_t> Load(const std::string& name) {
  std::ifstream f(std::string(WALD_SOURCE_DIR) + "/tests/fuzz/regressions/" + name, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
}  // namespace

TEST_CASE("frames round-trip through the builder and the parser") {
  FrameBuilder fb;
  uint8_t p[3] = {7, 8, 9};
  auto f = fb.Append(42, p);
  std::vector<uint8_t> buf(f.begin(), f.end());
  ParsedFrame r = ParseFrame(buf, 1024);
  REQUIRE(r.kind == ParsedFrame::kFrame);
  CHECK(r.consumed == buf.size());
  CHECK(r.msg->body_as_Append()->request_id() == 42);
  CHECK(ParseFrame(std::span(buf).first(buf.size() - 1), 1024).kind == ParsedFrame::kNeedMore);
  CHECK(ParseFrame(buf, 8).kind == ParsedFrame::kTooLarge);
}

TEST_CASE("a frame at a misaligned address is copied, not read in place") {
  FrameBuilder fb;
  std::vector<AckEntry> acks = {{1, 2}};
  auto f = fb.Acks(acks);
  std::vector<uint8_t> buf(f.size() + 4);
  std::copy(f.begin(), f.end(), buf.begin() + 4);
  std::vector<uint8_t> scratch;
  ParsedFrame r = ParseFrame(std::span(buf).subspan(4), 1024, &scratch);
  REQUIRE(r.kind == ParsedFrame::kFrame);
  CHECK(r.msg->body_as_Acks()->acks()->Get(0)->seq() == 2);
  CHECK(ParseFrame(std::span(buf).subspan(4), 1024, nullptr).kind == ParsedFrame::kInvalid);
}

TEST_CASE("fuzz regression: an Acks vector whose 8-byte structs are misaligned is rejected") {
  auto buf = Load("frame-misaligned-acks");
  REQUIRE(!buf.empty());
  std::vector<uint8_t> scratch;
  CHECK(ParseFrame(buf, 1 << 20, &scratch).kind == ParsedFrame::kInvalid);
}

TEST_CASE("histogram percentiles over the shared bucket layout") {
  namespace b = wald::proto::buckets;
  std::vector<uint64_t> counts(b::kCount, 0);
  CHECK(b::Percentile(counts, 0, 0.5) == 0);
  counts[b::Index(10)] = 100;
  counts[b::Index(1000)] = 1;
  CHECK(b::Percentile(counts, 101, 0.5) == 10);
  CHECK(b::Percentile(counts, 101, 0.99) == 10);
  CHECK(b::Percentile(counts, 101, 1.0) == b::Lower(b::Index(1000)));
  CHECK(b::Lower(b::Index(1000)) <= 1000);
  CHECK(b::Lower(b::Index(1000)) > 1000 - 1000 / 8);  // within the 12.5% bucket width
  // Counts short of the total (another thread still adding): the last bucket.
  CHECK(b::Percentile(counts, 200, 1.0) == b::Lower(b::kCount - 1));
}
