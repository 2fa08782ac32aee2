#include "storage/log_dir.h"

#include <algorithm>
#include <cstring>
#include <memory>

namespace wald::storage {
namespace {

std::string At(const std::string& path, uint64_t offset) { return path + " offset " + std::to_string(offset); }

}  // namespace

std::string JoinPath(const std::string& dir, std::string_view name) {
  std::string p = dir;
  if (!p.empty() && p.back() != '/') p += '/';
  p += name;
  return p;
}

Result<std::vector<SegmentFile>> ListSegments(Env* env, const std::string& dir) {
  auto names = env->ListDir(dir);
  if (!names.ok()) return names.take_status();
  std::vector<SegmentFile> segs;
  for (const std::string& n : *names) {
    uint64_t first = 0;
    if (ParseSegmentFileName(n, &first)) segs.push_back({first, JoinPath(dir, n)});
  }
  std::sort(segs.begin(), segs.end(), [](const auto& a, const auto& b) { return a.first_seq < b.first_seq; });
  return segs;
}

Status ReplaceFile(Env* env, const std::string& dir, std::string_view name, std::span<const std::byte> bytes) {
  const std::string tmp = JoinPath(dir, std::string(name) + std::string(kTempSuffix));
  if (env->Kind(tmp) != FileKind::kMissing) WALD_RETURN_IF_ERROR(env->Remove(tmp));
  {
    auto f = env->Open(tmp, OpenMode::kCreate);
    if (!f.ok()) return f.take_status();
    iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
    WALD_RETURN_IF_ERROR((*f)->WriteAt(0, std::span(&iov, 1)));
    WALD_RETURN_IF_ERROR((*f)->DataSync());
  }
  WALD_RETURN_IF_ERROR(env->Rename(tmp, JoinPath(dir, name)));
  return env->SyncDir(dir);
}

Status WriteMeta(Env* env, const std::string& dir, const Meta& meta) {
  std::byte buf[kMetaSize];
  EncodeMeta(meta, buf);
  return ReplaceFile(env, dir, kMetaFileName, buf);
}

Result<Meta> ReadMeta(Env* env, const std::string& dir) {
  const std::string path = JoinPath(dir, kMetaFileName);
  auto bytes = ReadSmallFile(env, path, kMetaSize + 1);
  if (!bytes.ok()) return bytes.take_status();
  Meta meta;
  if (bytes->size() != kMetaSize) return Status::Corruption(path + ": size is not " + std::to_string(kMetaSize));
  if (std::string why = DecodeMeta(*bytes, &meta); !why.empty()) {
    return Status::Corruption(At(path, 0) + ": " + why);
  }
  return meta;
}

Status ReadSegmentHeader(File* file, SegmentHeader* out, std::string* why) {
  std::byte hdr[kSegmentHeaderSize];
  auto n = file->ReadAt(0, hdr, sizeof hdr);
  if (!n.ok()) return n.take_status();
  *why = DecodeSegmentHeader(std::span(hdr, *n), out);
  return Status::OK();
}

}  // namespace wald::storage
