#include "log_fixture.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "storage/format.h"

namespace wald::test {

using namespace storage;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wald-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

size_t RecordingReporter::Count(Kind k) const {
  size_t n = 0;
  for (const Entry& e : entries) n += e.kind == k;
  return n;
}

std::string PayloadFor(uint64_t seq, size_t size) {
  std::string s(size, '\0');
  uint64_t x = seq * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

LogFixture::LogFixture() : dir(tmp.path() + "/log") {
  opts.segment_size = 64 << 10;
  opts.prepare_in_background = false;
  opts.recovery.reporter = &reporter;
}

LogFixture::~LogFixture() = default;

Status LogFixture::Open() {
  w.reset();
  auto r = LogWriter::Open(env, dir, opts);
  if (!r.ok()) return r.take_status();
  w = std::move(*r);
  return Status::OK();
}

Status LogFixture::Write(const std::vector<std::string>& payloads, bool sync) {
  // As the daemon does: the first record of a batch carries the durable seq
  // (the proof recovery uses), every record a time and a producer.
  size_t total = 0;
  for (const auto& p : payloads) total += EncodedSize(p.size(), kMaxMetaSize);
  std::vector<std::byte> buf(total);
  size_t off = 0;
  const uint64_t first = w->next_seq();
  const uint32_t salt = encode_salted ? w->segment_salt() : 0;
  for (size_t i = 0; i < payloads.size(); ++i) {
    auto bytes = std::as_bytes(std::span(payloads[i].data(), payloads[i].size()));
    RecordMeta meta{record_flags, 0, 1700000000000000000ull + (first + i) * 1000001000ull, 4242, 1000, 100};
    if (i == 0) {
      meta.flags |= kFlagDurable;
      meta.durable_seq = w->durable_seq();
    }
    off += EncodeRecord(first + i, meta, bytes, buf.data() + off, salt);
  }
  buf.resize(off);
  EncodedChunk chunk{buf, first, first + payloads.size() - 1, salt};
  WALD_RETURN_IF_ERROR(w->Append(std::span(&chunk, 1)));
  return sync ? w->Sync() : Status::OK();
}

Status LogFixture::WriteN(uint64_t n, size_t size, size_t batch) {
  std::vector<std::string> ps;
  for (uint64_t i = 0; i < n;) {
    ps.clear();
    for (size_t j = 0; j < batch && i < n; ++j, ++i) ps.push_back(PayloadFor(w->next_seq() + j, size));
    WALD_RETURN_IF_ERROR(Write(ps));
  }
  return Status::OK();
}

std::vector<ReadRecord> LogFixture::ReadAll(uint64_t from) {
  std::vector<ReadRecord> out;
  auto r = LogReader::Open(Env::Posix(), dir, from, &reporter);
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  RecordView rec;
  LogReader::Step step;
  gaps.clear();
  while ((step = (*r)->Next(&rec)) == LogReader::Step::kRecord || step == LogReader::Step::kGap) {
    if (step == LogReader::Step::kGap) {
      gaps.push_back({(*r)->gap_from(), (*r)->gap_to()});
      continue;
    }
    out.push_back({rec.seq, std::string(reinterpret_cast<const char*>(rec.payload.data()), rec.payload.size()),
                   (*r)->segment_path(), (*r)->record_offset(), rec.meta});
  }
  if (step == LogReader::Step::kError) throw std::runtime_error((*r)->status().ToString());
  return out;
}

std::vector<std::string> LogFixture::Segments() {
  auto segs = ListSegments(Env::Posix(), dir);
  std::vector<std::string> out;
  if (segs.ok()) {
    for (auto& s : *segs) out.push_back(s.path);
  }
  return out;
}

void LogFixture::FlipByte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  char c;
  if (fd < 0 || ::pread(fd, &c, 1, static_cast<off_t>(offset)) != 1) throw std::runtime_error("FlipByte " + path);
  c ^= 0x20;
  if (::pwrite(fd, &c, 1, static_cast<off_t>(offset)) != 1) throw std::runtime_error("FlipByte write");
  ::close(fd);
}

void LogFixture::ZeroBytes(const std::string& path, uint64_t offset, uint64_t n) {
  int fd = ::open(path.c_str(), O_RDWR);
  std::string zeros(n, '\0');
  if (fd < 0 || ::pwrite(fd, zeros.data(), n, static_cast<off_t>(offset)) != static_cast<ssize_t>(n)) {
    throw std::runtime_error("ZeroBytes " + path);
  }
  ::close(fd);
}

std::vector<std::string> LogFixture::SideFiles() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().string().ends_with(".broken")) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void Populate(LogFixture& f, uint64_t n, size_t size) {
  REQUIRE(f.Open().ok());
  REQUIRE(f.WriteN(n, size).ok());
  f.Close();
}

int64_t CountOps(const std::function<void(LogFixture&)>& setup, const std::function<Status(LogFixture&)>& step) {
  LogFixture f;
  setup(f);
  const int64_t before = f.fault.ops();
  REQUIRE(step(f).ok());
  return f.fault.ops() - before;
}

}  // namespace wald::test
