#include "storage/holds.h"

#include <algorithm>
#include <cstring>

#include "storage/crc32c.h"
#include "storage/log_dir.h"

namespace wald::storage {
namespace {

constexpr char kMagic[8] = {'W', 'A', 'L', 'D', 'H', 'O', 'L', 'D'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 16;  // magic, version, count
// Header, the most entries of the longest names, and the checksum.
constexpr size_t kMaxHoldsFile = kHeader + kMaxHolds * (1 + kMaxHoldName + 8) + 4;

template <typename T>
T Get(const std::byte* src) {
  T v;
  std::memcpy(&v, src, sizeof v);
  return v;
}

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-' || c == ':' || c == '@';
}

}  // namespace

std::string CheckHoldName(std::string_view name) {
  if (name.empty() || name.size() > kMaxHoldName) {
    return "a hold's name has 1 to " + std::to_string(kMaxHoldName) + " characters, not " + std::to_string(name.size());
  }
  if (!std::all_of(name.begin(), name.end(), NameChar)) {
    return "a hold's name may use only A-Z a-z 0-9 . _ - : @";
  }
  return "";
}

std::vector<std::byte> EncodeHolds(const std::vector<Hold>& holds) {
  size_t size = kHeader + 4;
  for (const Hold& h : holds) size += 1 + h.name.size() + 8;
  // Sized up front and written with memcpy: inserting into an empty vector
  // drew a -Wstringop-overflow false positive from GCC 12 at -O2.
  std::vector<std::byte> out(size);
  std::byte* p = out.data();
  auto put = [&p](const void* src, size_t n) {
    std::memcpy(p, src, n);
    p += n;
  };
  const uint32_t version = kVersion;
  const auto count = static_cast<uint32_t>(holds.size());
  put(kMagic, sizeof kMagic);
  put(&version, 4);
  put(&count, 4);
  for (const Hold& h : holds) {
    const auto len = static_cast<uint8_t>(h.name.size());
    put(&len, 1);
    put(h.name.data(), h.name.size());
    put(&h.seq, 8);
  }
  const uint32_t crc = crc32c::Mask(crc32c::Value(out.data(), size - 4));
  put(&crc, 4);
  return out;
}

std::string DecodeHolds(std::span<const std::byte> b, std::vector<Hold>* out) {
  out->clear();
  if (b.size() < kHeader + 4) return "shorter than its header";
  if (std::memcmp(b.data(), kMagic, sizeof kMagic) != 0) return "bad magic";
  const size_t body = b.size() - 4;
  if (crc32c::Unmask(Get<uint32_t>(b.data() + body)) != crc32c::Value(b.data(), body)) return "checksum mismatch";
  if (const uint32_t v = Get<uint32_t>(b.data() + 8); v != kVersion) return "unknown version " + std::to_string(v);
  const uint32_t count = Get<uint32_t>(b.data() + 12);
  if (count > kMaxHolds) return "more than " + std::to_string(kMaxHolds) + " holds";
  size_t at = kHeader;
  for (uint32_t i = 0; i < count; ++i) {
    if (at + 1 > body) return "hold " + std::to_string(i) + " is cut off";
    const size_t len = static_cast<size_t>(b[at]);
    if (at + 1 + len + 8 > body) return "hold " + std::to_string(i) + " is cut off";
    Hold h;
    h.name.assign(reinterpret_cast<const char*>(b.data() + at + 1), len);
    h.seq = Get<uint64_t>(b.data() + at + 1 + len);
    if (std::string why = CheckHoldName(h.name); !why.empty()) return "hold " + std::to_string(i) + ": " + why;
    out->push_back(std::move(h));
    at += 1 + len + 8;
  }
  if (at != body) return "bytes after the last hold";
  return "";
}

Status WriteHolds(Env* env, const std::string& dir, const std::vector<Hold>& holds) {
  return ReplaceFile(env, dir, kHoldsFileName, EncodeHolds(holds));
}

Result<std::vector<Hold>> ReadHolds(Env* env, const std::string& dir) {
  const std::string path = JoinPath(dir, kHoldsFileName);
  auto bytes = ReadSmallFile(env, path, kMaxHoldsFile + 1);
  if (!bytes.ok()) {
    if (bytes.status().code() == Code::kNotFound) return std::vector<Hold>{};
    return bytes.take_status();
  }
  std::vector<Hold> holds;
  if (std::string why = DecodeHolds(*bytes, &holds); !why.empty()) {
    return Status::Corruption(path + ": " + why);
  }
  return holds;
}

}  // namespace wald::storage
