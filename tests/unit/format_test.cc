// The byte-level format: CRC32C, record and header encoding, file names.
#include "storage/format.h"

#include <doctest/doctest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "storage/crc32c.h"

using namespace wald::storage;

namespace {
std::vector<std::byte> Bytes(std::string_view s) {
  std::vector<std::byte> v(s.size());
  if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());  // an empty vector's data() may be null
  return v;
}
}  // namespace

TEST_CASE("crc32c matches the standard check values") {
  CHECK(crc32c::Value("123456789", 9) == 0xe3069283u);
  std::vector<char> zeros(32, 0);
  CHECK(crc32c::Value(zeros.data(), zeros.size()) == 0x8a9136aau);  // RFC 3720 B.4
  CHECK(crc32c::Extend(crc32c::Value("1234", 4), "56789", 5) == 0xe3069283u);
  uint32_t c = crc32c::Value("abc", 3);
  CHECK(crc32c::Mask(c) != c);
  CHECK(crc32c::Unmask(crc32c::Mask(c)) == c);
}

namespace {
// Bit at a time, from the definition (reflected polynomial 0x82f63b78).
uint32_t ReferenceCrc32c(const unsigned char* p, size_t n) {
  uint32_t c = ~0u;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
  }
  return ~c;
}
}  // namespace

TEST_CASE("crc32c matches the definition at every length and alignment, short or long") {
  std::vector<unsigned char> buf(1100);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(i * 131 + 7);
  for (size_t off = 0; off < 8; ++off) {
    for (size_t n = 0; n + off <= buf.size(); n += (n < 300 ? 1 : 37)) {
      REQUIRE(crc32c::Value(buf.data() + off, n) == ReferenceCrc32c(buf.data() + off, n));
    }
  }
  // Extending across the short/long boundary: 200 bytes, then 900.
  CHECK(crc32c::Extend(crc32c::Value(buf.data(), 200), buf.data() + 200, 900) == ReferenceCrc32c(buf.data(), 1100));
}

TEST_CASE("a record encodes, pads to 8 and decodes back") {
  auto payload = Bytes("hello, wald");
  std::vector<std::byte> buf(EncodedSize(payload.size()));
  CHECK(buf.size() == 32);
  CHECK(EncodeRecord(42, payload, buf.data()) == 32);
  RecordView rec;
  REQUIRE(DecodeRecord(buf, &rec) == DecodeStatus::kOk);
  CHECK(rec.seq == 42);
  CHECK(rec.encoded_size == 32);
  CHECK(std::memcmp(rec.payload.data(), payload.data(), payload.size()) == 0);
  CHECK(PeekSeq(buf) == 42);
  CHECK(PeekEncodedSize(buf) == 32);
}

TEST_CASE("the record CRC covers header and payload in one range, CRC field as zero, format version 5") {
  auto payload = Bytes("abc");
  std::vector<std::byte> buf(EncodedSize(payload.size()));
  EncodeRecord(0x0102030405060708ull, payload, buf.data());
  // The same bytes built by hand: length word 3, four zero bytes, seq, payload.
  const unsigned char expect[] = {3, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 'a', 'b', 'c'};
  uint32_t stored;
  std::memcpy(&stored, buf.data() + 4, 4);
  CHECK(crc32c::Unmask(stored) == crc32c::Value(expect, sizeof expect));
  CHECK(std::memcmp(buf.data(), expect, 4) == 0);
  CHECK(std::memcmp(buf.data() + 8, expect + 8, 11) == 0);
  CHECK(kFormatVersion == 5);
  CHECK(kOldestFormatVersion == 3);
}

TEST_CASE("an empty payload is a valid record") {
  std::vector<std::byte> buf(EncodedSize(0));
  EncodeRecord(1, {}, buf.data());
  RecordView rec;
  CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kOk);
  CHECK(rec.payload.empty());
}

TEST_CASE("decoding rejects damage of every kind") {
  auto payload = Bytes("0123456789abcdef");
  std::vector<std::byte> buf(EncodedSize(payload.size()));
  EncodeRecord(7, payload, buf.data());
  RecordView rec;
  SUBCASE("flipped payload bit") {
    buf[20] ^= std::byte{1};
    CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kBadChecksum);
  }
  SUBCASE("flipped seq bit") {
    buf[8] ^= std::byte{1};
    CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kBadChecksum);
  }
  SUBCASE("shorter length word") {
    buf[0] = std::byte{15};
    CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kBadChecksum);
  }
  SUBCASE("unknown flag") {
    buf[3] = std::byte{0x80};
    CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kBadFlags);
  }
  SUBCASE("cut short") {
    CHECK(DecodeRecord(std::span(buf).first(20), &rec) == DecodeStatus::kTruncated);
    CHECK(DecodeRecord(std::span(buf).first(8), &rec) == DecodeStatus::kTruncated);
  }
  SUBCASE("zero-filled space") {
    std::vector<std::byte> zeros(64);
    CHECK(DecodeRecord(zeros, &rec) == DecodeStatus::kBadChecksum);
  }
}

TEST_CASE("segment header and meta round-trip and detect damage") {
  SegmentHeader h{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 1234};
  std::byte buf[kSegmentHeaderSize];
  EncodeSegmentHeader(h, buf);
  SegmentHeader out;
  CHECK(DecodeSegmentHeader(buf, &out).empty());
  CHECK(out.first_seq == 1234);
  CHECK(out.log_id == h.log_id);
  buf[33] ^= std::byte{4};
  CHECK(DecodeSegmentHeader(buf, &out) == "bad header checksum");
  std::byte zeros[kSegmentHeaderSize] = {};
  CHECK(DecodeSegmentHeader(zeros, &out) == "bad magic");

  Meta m{h.log_id, 99};
  std::byte mb[kMetaSize];
  EncodeMeta(m, mb);
  Meta mo;
  CHECK(DecodeMeta(mb, &mo).empty());
  CHECK(mo.trim_seq == 99);
  CHECK(!DecodeSegmentHeader(mb, &out).empty());  // a meta file is not a segment
}

TEST_CASE("segment file names sort in seq order and parse back") {
  CHECK(SegmentFileName(1) == "00000000000000000001.wal");
  CHECK(SegmentFileName(18446744073709551615ull) == "18446744073709551615.wal");
  uint64_t s = 0;
  CHECK(ParseSegmentFileName("00000000000000000042.wal", &s));
  CHECK(s == 42);
  CHECK_FALSE(ParseSegmentFileName("0000000000000000042.wal", &s));
  CHECK_FALSE(ParseSegmentFileName("00000000000000000042.tmp", &s));
  CHECK_FALSE(ParseSegmentFileName("0000000000000000004x.wal", &s));
  CHECK_FALSE(ParseSegmentFileName("00000000000000000000.wal", &s));
  CHECK_FALSE(ParseSegmentFileName("99999999999999999999.wal", &s));  // overflows u64
}

TEST_CASE("v3 metadata: each field announced by its flag, covered by the CRC, stored before the payload") {
  auto payload = Bytes("hello");
  RecordMeta meta{kFlagDurable | kFlagTime | kFlagProducer, 41, 1764500000123456789ull, 77, 1000, 100};
  std::vector<std::byte> buf(EncodedSize(payload.size(), MetaSize(meta.flags)));
  CHECK(buf.size() == 56);  // 16 header + 8 durable + 8 time + 12 producer + 5 payload, padded
  CHECK(EncodeRecord(42, meta, payload, buf.data()) == buf.size());
  CHECK(PeekEncodedSize(buf) == buf.size());
  RecordView rec;
  REQUIRE(DecodeRecord(buf, &rec) == DecodeStatus::kOk);
  CHECK(rec.meta.flags == meta.flags);
  CHECK(rec.meta.durable_seq == 41);
  CHECK(rec.meta.time_ns == 1764500000123456789ull);
  CHECK(rec.meta.pid == 77);
  CHECK(rec.meta.uid == 1000);
  CHECK(rec.meta.gid == 100);
  CHECK(std::memcmp(rec.payload.data(), "hello", 5) == 0);
  SUBCASE("a flipped metadata bit fails the CRC") {
    buf[16 + 8 + 3] ^= std::byte{1};
    CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kBadChecksum);
  }
  SUBCASE("a flipped padding bit is seen") {
    buf[buf.size() - 1] ^= std::byte{1};
    CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kBadPadding);
  }
  SUBCASE("only the time") {
    RecordMeta t{kFlagTime, 0, 5, 0, 0, 0};
    std::vector<std::byte> b2(EncodedSize(payload.size(), MetaSize(t.flags)));
    EncodeRecord(1, t, payload, b2.data());
    REQUIRE(DecodeRecord(b2, &rec) == DecodeStatus::kOk);
    CHECK(rec.meta.flags == kFlagTime);
    CHECK(rec.meta.time_ns == 5);
    CHECK(rec.payload.size() == 5);
  }
}

TEST_CASE("v3 segment header carries a salvage gap, meta carries the durable and salvage floors") {
  SegmentHeader h{{1}, 500, 100};
  std::byte buf[kSegmentHeaderSize];
  EncodeSegmentHeader(h, buf);
  SegmentHeader out;
  REQUIRE(DecodeSegmentHeader(buf, &out).empty());
  CHECK(out.gap_from == 100);
  Meta m{{2}, 10, 400, 450};
  std::byte mb[kMetaSize];
  EncodeMeta(m, mb);
  Meta mo;
  REQUIRE(DecodeMeta(mb, &mo).empty());
  CHECK(mo.durable_floor == 400);
  CHECK(mo.salvage_floor == 450);
  CHECK(mo.version == kFormatVersion);
  auto with_version = [&](uint32_t v) {
    std::memcpy(mb + 8, &v, 4);
    uint32_t crc = crc32c::Mask(crc32c::Value(mb, 60));
    std::memcpy(mb + 60, &crc, 4);
    return DecodeMeta(mb, &mo);
  };
  // Versions 3 and 4 are read (and say so: the writer rewrites them); 2 and
  // 6 are refused, with the version named.
  CHECK(with_version(3).empty());
  CHECK(mo.version == 3);
  CHECK(with_version(2).find("unsupported format version 2") == 0);
  CHECK(with_version(6).find("unsupported format version 6") == 0);
}

TEST_CASE("v4 metadata: a producer's id and seq follow the other fields, under the CRC") {
  auto payload = Bytes("once");
  RecordMeta meta{kFlagTime | kFlagProducerSeq, 0, 9, 0, 0, 0, 0xfeedfacecafebeefull, 123456789};
  std::vector<std::byte> buf(EncodedSize(payload.size(), MetaSize(meta.flags)));
  CHECK(buf.size() == 48);  // 16 header + 8 time + 16 producer seq + 4 payload, padded
  EncodeRecord(3, meta, payload, buf.data());
  RecordView rec;
  REQUIRE(DecodeRecord(buf, &rec) == DecodeStatus::kOk);
  CHECK(rec.meta.time_ns == 9);
  CHECK(rec.meta.producer_id == 0xfeedfacecafebeefull);
  CHECK(rec.meta.producer_seq == 123456789);
  CHECK(std::memcmp(rec.payload.data(), "once", 4) == 0);
  buf[16 + 8 + 9] ^= std::byte{4};  // a bit of the producer seq
  CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kBadChecksum);
}

TEST_CASE("the writer's restamp raises a batch's durable stamp and keeps the record valid") {
  auto payload = Bytes("batch head");
  RecordMeta meta{kFlagDurable | kFlagTime, 10, 99, 0, 0, 0};
  std::vector<std::byte> buf(EncodedSize(payload.size(), MetaSize(meta.flags)));
  EncodeRecord(50, meta, payload, buf.data());
  CHECK(RestampDurable(buf.data(), 49));
  RecordView rec;
  REQUIRE(DecodeRecord(buf, &rec) == DecodeStatus::kOk);
  CHECK(rec.meta.durable_seq == 49);
  CHECK(rec.meta.time_ns == 99);
  CHECK_FALSE(RestampDurable(buf.data(), 40));  // never lowered
  std::vector<std::byte> plain(EncodedSize(payload.size()));
  EncodeRecord(51, payload, plain.data());
  CHECK_FALSE(RestampDurable(plain.data(), 50));  // no stamp to raise
  REQUIRE(DecodeRecord(plain, &rec) == DecodeStatus::kOk);
}

TEST_CASE("a salted record verifies only under its segment's salt") {
  auto payload = Bytes("salted");
  std::vector<std::byte> buf(EncodedSize(payload.size()));
  EncodeRecord(77, payload, buf.data());
  const uint32_t salt = SegmentSalt(0x1234abcd, 65);
  SaltRecords(buf, salt);
  RecordView rec;
  CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kBadChecksum);
  CHECK(DecodeRecord(buf, &rec, SegmentSalt(0x1234abcd, 66)) == DecodeStatus::kBadChecksum);
  CHECK(DecodeRecord(buf, &rec, SegmentSalt(0x1234abce, 65)) == DecodeStatus::kBadChecksum);
  REQUIRE(DecodeRecord(buf, &rec, salt) == DecodeStatus::kOk);
  CHECK(rec.seq == 77);
  SaltRecords(buf, salt);  // undone
  CHECK(DecodeRecord(buf, &rec) == DecodeStatus::kOk);
}

TEST_CASE("SaltRecords salts every record of a run, and nothing else") {
  const std::vector<std::string> payloads = {"a", std::string(100, 'b'), "", std::string(13, 'c')};
  std::vector<std::byte> buf;
  for (size_t i = 0; i < payloads.size(); ++i) {
    auto p = Bytes(payloads[i]);
    std::vector<std::byte> one(EncodedSize(p.size()));
    EncodeRecord(10 + i, p, one.data());
    buf.insert(buf.end(), one.begin(), one.end());
  }
  const std::vector<std::byte> plain = buf;
  SaltRecords(buf, 0xdeadbeef);
  size_t off = 0, changed = 0;
  for (size_t i = 0; i < payloads.size(); ++i) {
    RecordView rec;
    REQUIRE(DecodeRecord(std::span(buf).subspan(off), &rec, 0xdeadbeef) == DecodeStatus::kOk);
    CHECK(rec.seq == 10 + i);
    off += rec.encoded_size;
  }
  for (size_t i = 0; i < buf.size(); ++i) changed += buf[i] != plain[i];
  CHECK(changed <= 4 * payloads.size());  // the CRC fields only
}

TEST_CASE("segment salts differ by key and by first seq, and are never 0") {
  std::set<uint32_t> seen;
  for (uint32_t key : {0u, 1u, 0xffffffffu, 0x5a5a5a5au}) {
    for (uint64_t first : {1ull, 2ull, 1000ull, 1001ull, 1ull << 40}) {
      const uint32_t s = SegmentSalt(key, first);
      CHECK(s != 0);
      seen.insert(s);
    }
  }
  CHECK(seen.size() == 20);
}

TEST_CASE("version 5: the header keeps the stale salt and the meta the salt key, older versions read as 0") {
  std::byte hb[kSegmentHeaderSize], mb[kMetaSize];
  EncodeSegmentHeader({{3}, 500, 0, 0x0badf00d}, hb);
  EncodeMeta({{2}, 10, 400, 450, 0x600dcafe}, mb);
  SegmentHeader h;
  Meta m;
  REQUIRE(DecodeSegmentHeader(hb, &h).empty());
  REQUIRE(DecodeMeta(mb, &m).empty());
  CHECK(h.version == 5);
  CHECK(SaltsOf(h, m.salt_key).own == SegmentSalt(0x600dcafe, 500));
  CHECK(SaltsOf(h, m.salt_key).stale == 0x0badf00d);
  // As version 4 wrote them (those bytes were reserved, zero; a version-4
  // reader ignores them, and so does this one).
  for (std::byte* fixed : {hb, mb}) {
    const uint32_t v = 4;
    std::memcpy(fixed + 8, &v, 4);
    const uint32_t crc = crc32c::Mask(crc32c::Value(fixed, 60));
    std::memcpy(fixed + 60, &crc, 4);
  }
  REQUIRE(DecodeSegmentHeader(hb, &h).empty());
  REQUIRE(DecodeMeta(mb, &m).empty());
  CHECK(h.stale_salt == 0);
  CHECK(m.salt_key == 0);
  CHECK(SaltsOf(h, 7).own == 0);
}
