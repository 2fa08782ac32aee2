// libFuzzer target: the segment reader, verification and recovery on
// arbitrary segment contents. The input becomes the single segment of a log
// (with a valid wald.meta); VerifyLog, LogReader and then recovery (which
// rewrites the tail) must never crash, and after recovery the log must read
// back cleanly as a prefix.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "storage/log_reader.h"
#include "storage/log_writer.h"

using namespace wald::storage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // On tmpfs when there is one: fsync costs nothing there, and this target
  // syncs several times per input.
  static const std::string dir = [] {
    std::string tmpl =
        std::filesystem::is_directory("/dev/shm") ? "/dev/shm/wald-fuzz-XXXXXX" : "/tmp/wald-fuzz-XXXXXX";
    return std::string(::mkdtemp(tmpl.data()));
  }();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directory(dir);
  Meta meta;
  for (size_t i = 0; i < meta.log_id.size(); ++i) meta.log_id[i] = static_cast<uint8_t>(i + 1);
  if (!WriteMeta(Env::Posix(), dir, meta).ok()) std::abort();
  // The first input byte is a control byte: bit 0 set means the fuzzer's
  // bytes replace the header too; otherwise they follow a valid header (for
  // log 1..16, first seq 1). Bit 1 clear: the bytes after the header are
  // salted as the writer salts records (SaltRecords), so that records in
  // the corpus, encoded without a salt, verify.
  std::string seg(kSegmentHeaderSize, '\0');
  EncodeSegmentHeader({meta.log_id, 1}, reinterpret_cast<std::byte*>(seg.data()));
  if (size > 0 && (data[0] & 1)) seg.clear();
  if (size > 0) seg.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (size > 0 && !(data[0] & 1) && !(data[0] & 2)) {
    auto* body = reinterpret_cast<std::byte*>(seg.data()) + kSegmentHeaderSize;
    SaltRecords({body, seg.size() - kSegmentHeaderSize}, SegmentSalt(meta.salt_key, 1));
  }
  {
    int fd = ::open((dir + "/" + SegmentFileName(1)).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0 || ::write(fd, seg.data(), seg.size()) != static_cast<ssize_t>(seg.size())) std::abort();
    ::close(fd);
  }
  (void)VerifyLog(Env::Posix(), dir);
  if (auto r = LogReader::Open(Env::Posix(), dir, 1); r.ok()) {
    RecordView rec;
    while ((*r)->Next(&rec) == LogReader::Step::kRecord) {
    }
  }
  LogOptions opts;
  opts.segment_size = 64 << 10;
  opts.prepare_in_background = false;
  auto w = LogWriter::Open(Env::Posix(), dir, opts);
  if (w.ok()) {
    const uint64_t next = (*w)->next_seq();
    w->reset();
    // Recovery's promise: what remains verifies, and is exactly next-1 records.
    auto sum = VerifyLog(Env::Posix(), dir);
    if (!sum.ok() || sum->records != next - 1) std::abort();
  }
  return 0;
}
