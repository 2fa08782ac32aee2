// One client connection, owned by the loop thread. The uv handle is embedded;
// the Connection is deleted only in the handle's close callback.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <vector>

namespace wald::server {

class Server;
struct ReadCursor;

// An Append that has a seq and waits to be durable.
struct PendingAck {
  uint64_t request_id;
  uint64_t seq;
  uint64_t recv_ns;  // when its bytes were read (ack latency)
  uint32_t bytes;    // payload size (per-connection memory cap)
};

// FIFO of PendingAck that grows by doubling and never shrinks: after warm-up
// no allocation per record.
class AckRing {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  PendingAck& front() { return buf_[head_]; }
  void pop() {
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }
  void push(const PendingAck& a) {
    if (size_ == buf_.size()) Grow();
    buf_[(head_ + size_) & (buf_.size() - 1)] = a;
    ++size_;
  }

 private:
  void Grow() {
    std::vector<PendingAck> n(buf_.empty() ? 64 : buf_.size() * 2);
    for (size_t i = 0; i < size_; ++i) n[i] = buf_[(head_ + i) & (buf_.size() - 1)];
    buf_.swap(n);
    head_ = 0;
  }
  std::vector<PendingAck> buf_;
  size_t head_ = 0;
  size_t size_ = 0;
};

struct Connection {
  enum class State {
    kHello,    // accepted; only Hello is allowed
    kOpen,     // handshake done
    kClosing,  // uv_close called, or about to be once the output is written
  };

  explicit Connection(Server* s, uint64_t conn_id) : server(s), id(conn_id) {
    pipe.data = this;
    write_req.data = this;
  }

  uv_pipe_t pipe;        // the socket; pipe.data == this
  uv_write_t write_req;  // the one uv_write in flight, if any
  Server* const server;
  const uint64_t id;
  State state = State::kHello;
  ucred peer{};
  bool peer_known = false;       // SO_PEERCRED answered at accept
  bool reading = false;          // uv_read_start is active
  bool stalled = false;          // unparsed frames in `partial` wait for a staging chunk
  uint64_t stalled_time_ns = 0;  // wall clock when the frames held back while stalled arrived
  bool close_after_write = false;
  bool in_ack_list = false;  // in Server::ack_list_ (or its walk); Close clears it
  size_t all_index = 0;      // position in Server::all_

  // Input: bytes of frames not yet processed (an incomplete frame, or frames
  // held back while stalled). Usually empty: complete frames are parsed
  // straight from the loop's shared read buffer.
  std::vector<uint8_t> partial;
  size_t partial_len = 0;

  AckRing pending;  // Appends with a seq, not yet acked, in seq order
  uint64_t pending_bytes = 0;

  // Output. `writing` is owned by the in-flight uv_write until its callback;
  // frames produced meanwhile collect in `out`.
  std::vector<uint8_t> out;
  std::vector<uint8_t> writing;
  bool write_in_flight = false;

  std::vector<ReadCursor*> cursors;  // Reads being served on this connection
};

}  // namespace wald::server
