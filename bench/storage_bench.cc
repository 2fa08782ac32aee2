// storage_bench: the storage layer's numbers on this machine.
//
//   storage_bench [--dir DIR] [--appends N] [--quick]
//
// 1. crc32c (ISA-L crc32_iscsi) and record encode+checksum throughput, GB/s.
// 2. Segment layout: latency of a small append + fdatasync into a file that
//    is (a) grown by each append, (b) fallocated only, (c) pre-zeroed
//    (written once, synced), (d) recycled (an old segment full of old data).
// 3. LogWriter append + fdatasync latency and throughput by batch size.
//
// DIR must be on the file system under test (default: ./bench-data, removed
// afterwards). Latencies are per fdatasync: p50 and p99 in microseconds.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "storage/crc32c.h"
#include "storage/format.h"
#include "storage/log_writer.h"

using namespace wald::storage;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Lat {
  std::vector<double> us;
  double Pct(double p) {
    std::sort(us.begin(), us.end());
    return us.empty() ? 0 : us[std::min(us.size() - 1, static_cast<size_t>(p * static_cast<double>(us.size())))];
  }
};

void Die(const std::string& what) {
  std::perror(what.c_str());
  std::exit(1);
}

void BenchChecksum() {
  std::printf("## checksum and encoding (GB/s, single thread)\n\n");
  std::printf("| payload | crc32c | encode+crc |\n|---:|---:|---:|\n");
  for (size_t size : {128u, 1024u, 4096u, 65536u}) {
    const size_t total = 256u << 20;
    const size_t n = total / size;
    std::vector<std::byte> payload(size, std::byte{0x5a});
    std::vector<std::byte> out(EncodedSize(size));
    uint32_t sink = 0;
    auto t0 = Clock::now();
    for (size_t i = 0; i < n; ++i) sink ^= crc32c::Value(payload.data(), size);
    double crc_s = Seconds(Clock::now() - t0);
    t0 = Clock::now();
    for (size_t i = 0; i < n; ++i) {
      EncodeRecord(i + 1, payload, out.data());
      sink ^= static_cast<uint32_t>(out[4]);
    }
    double enc_s = Seconds(Clock::now() - t0);
    std::printf("| %zu B | %.2f | %.2f |%s\n", size, static_cast<double>(total) / crc_s / 1e9,
                static_cast<double>(total) / enc_s / 1e9, sink == 42 ? " " : "");
  }
  std::printf("\n");
}

// Appends `n` records of `rec` bytes with pwrite+fdatasync each, starting
// at offset 64, into the file at `path`.
Lat AppendSync(const std::string& path, size_t rec, int n) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) Die("open " + path);
  std::vector<char> buf(rec, 'r');
  Lat lat;
  off_t off = 64;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (::pwrite(fd, buf.data(), rec, off) != static_cast<ssize_t>(rec)) Die("pwrite");
    if (::fdatasync(fd) != 0) Die("fdatasync");
    lat.us.push_back(Seconds(Clock::now() - t0) * 1e6);
    off += static_cast<off_t>(rec);
  }
  ::close(fd);
  return lat;
}

void MakeFile(const std::string& path, uint64_t size, const std::string& variant) {
  std::filesystem::remove(path);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) Die("create " + path);
  if (variant != "growing" && ::posix_fallocate(fd, 0, static_cast<off_t>(size)) != 0) Die("fallocate");
  if (variant == "pre-zeroed" || variant == "recycled") {
    std::vector<char> chunk(1 << 20, variant == "recycled" ? 'o' : '\0');
    for (uint64_t off = 0; off < size; off += chunk.size()) {
      if (::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(off)) < 0) Die("pwrite");
    }
  }
  if (::fsync(fd) != 0) Die("fsync");
  ::close(fd);
  int dfd = ::open(std::filesystem::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

void BenchLayout(const std::string& dir, int n) {
  std::printf("## segment layout: one append + fdatasync (%d appends each, µs)\n\n", n);
  std::printf("| layout | record | p50 | p99 | appends/s |\n|---|---:|---:|---:|---:|\n");
  const uint64_t size = 64ull << 20;
  for (size_t rec : {128u, 4096u}) {
    for (const char* variant : {"growing", "fallocate-only", "pre-zeroed", "recycled"}) {
      const std::string path = dir + "/layout.seg";
      MakeFile(path, size, variant);
      auto t0 = Clock::now();
      Lat lat = AppendSync(path, rec, n);
      double s = Seconds(Clock::now() - t0);
      std::printf("| %s | %zu B | %.0f | %.0f | %.0f |\n", variant, rec, lat.Pct(0.5), lat.Pct(0.99), n / s);
      std::fflush(stdout);
    }
  }
  std::printf("\n");
}

void BenchWriter(const std::string& dir, int syncs) {
  std::printf("## LogWriter: Append of one batch + Sync (128 B records, %d syncs each)\n\n", syncs);
  std::printf("| batch | p50 µs | p99 µs | records/s | MB/s |\n|---:|---:|---:|---:|---:|\n");
  for (size_t batch : {1u, 16u, 256u, 4096u}) {
    const std::string logdir = dir + "/log-" + std::to_string(batch);
    LogOptions opts;
    auto w = LogWriter::Open(Env::Posix(), logdir, opts);
    if (!w.ok()) {
      std::fprintf(stderr, "%s\n", w.status().ToString().c_str());
      std::exit(1);
    }
    std::vector<std::byte> payload(128, std::byte{1});
    std::vector<std::byte> buf(batch * EncodedSize(128));
    Lat lat;
    auto start = Clock::now();
    for (int i = 0; i < syncs; ++i) {
      const uint64_t first = (*w)->next_seq();
      size_t off = 0;
      for (size_t j = 0; j < batch; ++j) off += EncodeRecord(first + j, payload, buf.data() + off);
      EncodedChunk c{buf, first, first + batch - 1};
      auto t0 = Clock::now();
      Status st = (*w)->Append(std::span(&c, 1));
      if (st.ok()) st = (*w)->Sync();
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", st.ToString().c_str());
        std::exit(1);
      }
      lat.us.push_back(Seconds(Clock::now() - t0) * 1e6);
    }
    double s = Seconds(Clock::now() - start);
    double recs = static_cast<double>(batch) * syncs;
    std::printf("| %zu | %.0f | %.0f | %.0f | %.1f |\n", batch, lat.Pct(0.5), lat.Pct(0.99), recs / s,
                recs * 128 / s / 1e6);
    std::fflush(stdout);
    w->reset();
    std::filesystem::remove_all(logdir);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "bench-data";
  int appends = 2000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--appends" && i + 1 < argc) {
      appends = std::atoi(argv[++i]);
    } else if (a == "--quick") {
      appends = 200;
    } else {
      std::fprintf(stderr, "usage: storage_bench [--dir DIR] [--appends N] [--quick]\n");
      return 2;
    }
  }
  std::filesystem::create_directories(dir);
  BenchChecksum();
  BenchLayout(dir, appends);
  BenchWriter(dir, appends);
  std::filesystem::remove_all(dir);
  return 0;
}
