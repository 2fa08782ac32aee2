#include "peer.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace wald::test {

Peer::Peer() {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  fd_ = sv[0];
  server_fd_ = sv[1];
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

Peer::~Peer() {
  if (fd_ >= 0) ::close(fd_);
  if (server_fd_ >= 0) ::close(server_fd_);
}

int Peer::TakeServerEnd() {
  const int fd = server_fd_;
  server_fd_ = -1;
  return fd;
}

void Peer::Send(std::span<const uint8_t> bytes) {
  size_t off = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      if (on_blocked) {
        on_blocked();
      } else {
        Poll();  // the server may be waiting for us to read
      }
      continue;
    }
    REQUIRE(n > 0);
    off += static_cast<size_t>(n);
  }
}

void Peer::Append(uint64_t request_id, std::string_view payload, uint64_t producer_seq) {
  Send(fb_.Append(request_id, {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()}, producer_seq));
}

void Peer::Poll() {
  uint8_t buf[64 << 10];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      eof = true;
      break;
    }
    if (n < 0) break;  // EAGAIN: nothing more now
    if (!raw) in_.insert(in_.end(), buf, buf + n);
    bytes_in += static_cast<size_t>(n);
  }
  size_t off = 0;
  for (;;) {
    proto::ParsedFrame f = proto::ParseFrame({in_.data() + off, in_.size() - off}, 64 << 20, &scratch_);
    if (f.kind != proto::ParsedFrame::kFrame) {
      REQUIRE(f.kind == proto::ParsedFrame::kNeedMore);
      break;
    }
    Got g;
    g.type = f.msg->body_type();
    switch (g.type) {
      case proto::Body::HelloAck:
        g.value = f.msg->body_as_HelloAck()->durable_seq();
        g.request_id = f.msg->body_as_HelloAck()->max_batch_records();
        g.producer_seq = f.msg->body_as_HelloAck()->producer_seq();
        break;
      case proto::Body::Acks:
        if (const auto* acks = f.msg->body_as_Acks()->acks()) {
          for (const proto::AckEntry* a : *acks) g.acks.emplace_back(a->request_id(), a->seq());
        }
        if (const auto* batches = f.msg->body_as_Acks()->batches()) {
          for (const proto::BatchAckEntry* b : *batches)
            g.batches.push_back({b->request_id(), b->first_seq(), b->count()});
        }
        break;
      case proto::Body::Error: {
        const proto::Error* e = f.msg->body_as_Error();
        g.request_id = e->request_id();
        g.code = e->code();
        g.value = e->first_seq();
        break;
      }
      case proto::Body::Records: {
        const proto::Records* r = f.msg->body_as_Records();
        g.request_id = r->request_id();
        g.done = r->done();
        if (r->records() != nullptr) {
          for (const proto::Record* rec : *r->records()) g.seqs.push_back(rec->seq());
        }
        break;
      }
      case proto::Body::HoldAck:
        g.request_id = f.msg->body_as_HoldAck()->request_id();
        g.value = f.msg->body_as_HoldAck()->seq();
        if (auto* n = f.msg->body_as_HoldAck()->name()) g.text = n->str();
        break;
      case proto::Body::TrimAck:
        g.request_id = f.msg->body_as_TrimAck()->request_id();
        g.value = f.msg->body_as_TrimAck()->released_up_to();
        if (auto* by = f.msg->body_as_TrimAck()->held_by()) g.text = by->str();
        break;
      case proto::Body::StatsReply: g.request_id = f.msg->body_as_StatsReply()->request_id(); break;
      default: break;
    }
    got.push_back(std::move(g));
    off += f.consumed;
  }
  in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(off));
}

void Peer::Reset() {
  linger l{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd_);
  fd_ = -1;
}

void Peer::AppendBatch(uint64_t request_id, const std::vector<std::string>& payloads, uint64_t producer_seq) {
  std::vector<uint32_t> sizes;
  std::string data;
  for (const std::string& p : payloads) {
    sizes.push_back(static_cast<uint32_t>(p.size()));
    data += p;
  }
  Send(fb_.AppendBatch(request_id, sizes, {reinterpret_cast<const uint8_t*>(data.data()), data.size()}, producer_seq));
}

std::vector<BatchAck> Peer::BatchAcks() const {
  std::vector<BatchAck> all;
  for (const Got& g : got) all.insert(all.end(), g.batches.begin(), g.batches.end());
  return all;
}

std::vector<std::pair<uint64_t, uint64_t>> Peer::Acks() const {
  std::vector<std::pair<uint64_t, uint64_t>> all;
  for (const Got& g : got) all.insert(all.end(), g.acks.begin(), g.acks.end());
  return all;
}

size_t Peer::Count(proto::Body type) const {
  size_t n = 0;
  for (const Got& g : got) n += g.type == type;
  return n;
}

const Got* Peer::Last(proto::Body type) const {
  for (auto it = got.rbegin(); it != got.rend(); ++it) {
    if (it->type == type) return &*it;
  }
  return nullptr;
}

}  // namespace wald::test
