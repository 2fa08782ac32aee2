// Test helpers for the client library: a fake daemon on a socketpair that
// the test drives (FakeServer), a client connected to it, and appends queued
// in bulk. Shared by client_test.cc and client_batch_test.cc; for doctest
// cases only (the helpers REQUIRE).
#pragma once

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "frame_source.h"
#include "framing.h"
#include "wald/client.h"

namespace wald::test {

// The server end of a socketpair, driven by the test.
class FakeServer {
 public:
  FakeServer() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) throw std::runtime_error("socketpair");
    fd_ = sv[0];
    frames_.emplace(fd_);
    client_fd = sv[1];
  }
  ~FakeServer() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Send(std::span<const uint8_t> b) { REQUIRE(::write(fd_, b.data(), b.size()) == static_cast<ssize_t>(b.size())); }
  // max_batch 0: a daemon that takes no AppendBatch (as before it existed).
  void HelloAck(uint64_t durable = 41, uint32_t max_inflight = 1000, uint32_t max_batch = 0) {
    uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    Send(fb.HelloAck(id, durable, 4096 + 128, 4096, max_inflight, "test", max_batch));
  }
  void Acks(std::vector<proto::AckEntry> acks) { Send(fb.Acks(acks)); }
  // The next frame the client sent (waits up to 5 s).
  const proto::Message* Next() { return frames_->Next(); }

  int client_fd = -1;
  proto::FrameBuilder fb;

 private:
  int fd_ = -1;
  std::optional<FrameSource> frames_;  // on fd_
};

inline Client Connected(FakeServer& s, uint32_t max_inflight = 1000, uint32_t max_batch = 0, bool batch = true) {
  s.HelloAck(41, max_inflight, max_batch);  // waits in the socket buffer for the handshake
  ClientOptions options{"unit", 2000};
  options.batch_appends = batch;
  auto c = Client::adopt_fd(s.client_fd, options);
  REQUIRE(c.ok());
  const proto::Message* hello = s.Next();
  REQUIRE(hello != nullptr);
  REQUIRE(hello->body_type() == proto::Body::Hello);
  CHECK(hello->body_as_Hello()->protocol_version() == proto::kProtocolVersion);
  CHECK(hello->body_as_Hello()->client_name()->str() == "unit");
  return std::move(c.value());
}

// Queues n appends of `size` bytes whose results land in *got.
inline void QueueN(Client& c, int n, std::vector<Result<Seq>>* got, size_t size = 10) {
  for (int i = 0; i < n; ++i) {
    REQUIRE(c.append_async(std::string(size, static_cast<char>('a' + i)), [got](Result<Seq> r) {
               got->push_back(std::move(r));
             }).ok());
  }
}

}  // namespace wald::test
