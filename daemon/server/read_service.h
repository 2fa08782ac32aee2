// ReadService: the Read requests of every connection, each a ReadCursor
// (read_cursor.h) whose segment reads run on libuv's thread pool through the
// injected Env, so that faults and power cuts reach reads as they reach
// writes. Loop thread only (Fill runs on the pool).
//
// - Capped: a connection may have max_reads open Reads (each holds buffers
//   and a file descriptor); one more gets Error{TooManyReads} and the
//   connection stays open.
// - One byte budget per connection, max_connection_bytes, for its unsent
//   output and its Reads' chunks alike: a cursor goes to the pool only if
//   the unsent output, plus the largest frame a read can produce
//   (max_read_frame) for each of the connection's cursors already there,
//   plus its own, fits. (When none is
//   there, one may go while the output is under the budget, so that a budget
//   below a chunk still makes progress.) Otherwise it waits, blocked, until
//   OnDrained or another cursor of the connection returns. So a connection
//   holds at most max_connection_bytes + max_read_frame however many Reads
//   it opens, and a cursor that waits or parks frees its buffers (read_cursor.h).
// - A follower parks at the durable end and goes on at OnDurable, so that it
//   never sees a record before its writer could have had the ack.
// - Cursors open segments through one SharedFiles: those reading the same
//   segment (followers at the head, above all) share its descriptor.
// - A cursor that cannot open a segment because the process is out of
//   descriptors ends with Error{TooManyReads} (retry later), not
//   ServerFailed: nothing is wrong with the log.
// - CancelRead ends a cursor; one still on the pool keeps its place under the
//   cap until it returns, so Read+CancelRead loops cannot pile up work.
//
// Lifetimes: a cursor belongs to its connection's `cursors` and, while
// parked, to `parked_`. EndRead detaches a cursor that is on the pool
// (conn = nullptr) and deletes it otherwise; OnReadDone deletes a detached
// one. Every path that may Send (and so close the connection, and so EndAll)
// holds the cursor in_flight, so that it is detached, never freed, under it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "framing.h"
#include "server/read_cursor.h"
#include "storage/env.h"
#include "storage/shared_files.h"

namespace wald::server {

class Connection;
class WriterPort;

struct ReadLimits {
  uint32_t max_reads;             // open Reads per connection
  uint64_t max_connection_bytes;  // unsent output before a cursor waits
  // The largest Records frame one read can produce: a chunk, or less than a
  // chunk plus one record of up to max_record. Reserved per cursor on the pool.
  uint64_t max_read_frame = proto::kRecordsChunk;
};

// Asked before a cursor (and so a file descriptor) is opened: false when
// the server's descriptor budget is spent.
using FdCheck = std::function<bool()>;

class ReadService {
 public:
  // `dir`, `env` and `writer` must outlive the service.
  ReadService(uv_loop_t* loop, std::string dir, storage::Env* env, const WriterPort* writer, ReadLimits limits,
              FdCheck fd_available = {});
  ReadService(const ReadService&) = delete;
  ReadService& operator=(const ReadService&) = delete;

  // Returns false (and sends Error{TooManyReads}) when c is at the cap.
  bool Open(Connection* c, const proto::Read* r);
  void Cancel(Connection* c, uint64_t request_id);
  // The writer published `durable`: parked followers below it go on.
  void OnDurable(uint64_t durable);
  // c's output drained: its blocked cursors go on.
  void OnDrained(Connection* c);
  // c is closing: its cursors end (those on the pool are detached).
  void EndAll(Connection* c);

  size_t parked() const { return parked_.size(); }
  size_t cursors() const { return cursors_; }          // allocated, those on the pool included
  size_t open_files() const { return files_.open(); }  // segment descriptors the cursors hold

 private:
  static void OnWork(uv_work_t* w);
  static void OnDone(uv_work_t* w, int status);
  void Done(ReadCursor* r);
  // Parks, blocks or queues r. Sends nothing and closes nothing, so callers
  // may walk a list of cursors around it.
  void Continue(ReadCursor* r);
  bool MayQueue(const Connection* c) const;  // the budget above
  void Queue(ReadCursor* r);
  void Unblock(Connection* c);      // continues c's blocked cursors
  static void Idle(ReadCursor* r);  // frees what a waiting cursor need not hold
  void End(ReadCursor* r);
  void Free(ReadCursor* r);

  uv_loop_t* const loop_;
  const std::string dir_;
  storage::Env* const env_;
  const WriterPort* const writer_;
  const ReadLimits limits_;
  const FdCheck fd_available_;
  storage::SharedFiles files_;
  size_t cursors_ = 0;
  std::vector<ReadCursor*> parked_;  // following cursors at the durable end
  std::vector<ReadCursor*> ready_;   // OnDurable's and OnDrained's walk
  proto::FrameBuilder fb_{4096};
};

}  // namespace wald::server
