// Connection: one client socket, owned by the loop thread. The uv handle is
// embedded; the Connection is deleted only in the handle's close callback,
// so a pointer to it stays valid until the loop iteration after Close().
//
// It does the socket's I/O and nothing else: reads go to its owner
// (ConnectionOwner::OnData), which says how many bytes it processed; the
// rest (an incomplete frame, or frames the owner holds back) stays here until
// more arrive or Replay(). Sends are written at once when the socket takes
// them, queued behind the one uv_write in flight otherwise.
//
// Closing has one door. Close() and a failed read or write all end in the
// same place: the owner's OnClosing runs exactly once, before uv_close, and
// must drop every reference to the connection except the one it deletes in
// OnClosed. So a walk over the owner's lists can call Send (which may close)
// only on a copy of the list, never on the list OnClosing edits.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <span>
#include <vector>

namespace wald::server {

class Connection;
struct ReadCursor;

class ConnectionOwner {
 public:
  // Bytes arrived (or Replay()ed). Returns how many were processed; the
  // owner may close the connection from here.
  virtual size_t OnData(Connection* c, std::span<const uint8_t> data) = 0;
  // The output queue became empty (a write completed with nothing behind it).
  virtual void OnDrained(Connection* c) = 0;
  // Once, when the connection stops: before uv_close.
  virtual void OnClosing(Connection* c) = 0;
  // The close completed (every close, also of a connection the owner never
  // heard of: a failed Accept or Open). c is deleted when this returns: only
  // its address may be used, to forget it.
  virtual void OnClosed(Connection* c) = 0;

 protected:
  ~ConnectionOwner() = default;
};

// An Append, or an AppendBatch, that has its seqs and waits to be durable.
struct PendingAck {
  uint64_t request_id;
  uint64_t seq;      // the record's; a batch's last
  uint64_t recv_ns;  // when its bytes were read (ack latency)
  uint32_t bytes;    // payload size (per-connection memory cap)
  uint32_t batch;    // 0: an Append; else the AppendBatch's record count
  uint32_t records() const { return batch == 0 ? 1 : batch; }
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
  void Grow();
  std::vector<PendingAck> buf_;
  size_t head_ = 0;
  size_t size_ = 0;
};

class Connection {
 public:
  // `read_buf` is the loop's shared read buffer; it must outlive every
  // connection. Call Accept or Open next.
  Connection(uv_loop_t* loop, ConnectionOwner* owner, std::span<uint8_t> read_buf, uint64_t id);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Takes the next connection from `listener`, or adopts a connected socket.
  // On failure the connection is closed (OnClosing is not called: nobody
  // knows it yet) and deleted in its close callback.
  int Accept(uv_stream_t* listener);
  int Open(int fd);

  void SetReading(bool on);
  // Queues a frame (copied if it cannot be written at once). A failed write
  // closes the connection. Ignored once the connection is closing.
  void Send(std::span<const uint8_t> frame);
  // Sends the last frame, stops reading, and closes once it is written.
  void SendAndClose(std::span<const uint8_t> frame);
  // Closes now: unsent output is dropped (libuv cancels a write in flight).
  // Idempotent.
  void Close();
  // Delivers the held-back bytes to the owner again.
  void Replay();

  bool closing() const { return phase_ != Phase::kOpen; }
  bool closed() const { return phase_ == Phase::kClosed; }  // uv_close called
  bool reading() const { return reading_; }
  size_t unsent() const { return out_.size() + writing_.size(); }
  size_t held() const { return held_; }
  // Clocks of the socket read that delivered the current data: wall clock
  // (record time stamps) and monotonic (ack latency). One read of each per
  // socket read, not per record.
  uint64_t read_wall_ns() const { return read_wall_ns_; }
  uint64_t read_mono_ns() const { return read_mono_ns_; }
  int fd() const;

  const uint64_t id;

  // The owner's state; the connection never touches it.
  bool hello_done = false;           // the handshake happened
  uint64_t producer_id = 0;          // Hello's: an idempotent producer's connection; 0: plain
  uint64_t accepted_ns = 0;          // uv_hrtime() at accept (the Hello deadline)
  ucred peer{};                      // SO_PEERCRED at accept
  bool peer_known = false;           // ...answered
  std::vector<gid_t> peer_groups;    // SO_PEERGROUPS, read only when a gid list needs it
  bool stalled = false;              // held-back frames wait for a staging chunk
  bool in_ack_list = false;          // in the AckFanout's list
  size_t all_index = 0;              // position in the Server's list of connections
  AckRing pending;                   // Appends with a seq, not yet acked, in request order (seqs grow but for
                                     // a producer's duplicate: its first copy's seq, acked once durable)
  uint64_t pending_records = 0;      // their records (a batch counts each)
  uint64_t pending_bytes = 0;        // their payload bytes
  std::vector<ReadCursor*> cursors;  // Reads being served on this connection
  uint64_t read_reserved = 0;        // ReadService: a frame's worth per cursor on the pool
  uint64_t partial_bytes = 0;        // its incomplete frame, as counted in the Server's total
  uint64_t partial_since_ns = 0;     // uv_hrtime() when that frame began, or reading resumed

 private:
  enum class Phase {
    kOpen,
    kFinishing,  // SendAndClose: the last frame is being written
    kClosed,     // uv_close called
  };
  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void OnWrite(uv_write_t* req, int status);
  static void OnCloseDone(uv_handle_t* h);
  void Deliver(const uint8_t* data, size_t len);
  void StartWrite();
  void CloseHandle(bool tell_owner);

  uv_pipe_t pipe_;        // pipe_.data == this
  uv_write_t write_req_;  // the one uv_write in flight, if any
  ConnectionOwner* const owner_;
  const std::span<uint8_t> read_buf_;
  Phase phase_ = Phase::kOpen;
  bool reading_ = false;
  uint64_t read_wall_ns_ = 0;
  uint64_t read_mono_ns_ = 0;

  // Input held back: an incomplete frame, or frames the owner did not take.
  std::vector<uint8_t> partial_;
  size_t held_ = 0;

  // Output. `writing_` belongs to the uv_write in flight until its callback;
  // frames produced meanwhile collect in `out_`.
  std::vector<uint8_t> out_;
  std::vector<uint8_t> writing_;
  bool write_in_flight_ = false;
};

}  // namespace wald::server
