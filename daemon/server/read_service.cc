#include "server/read_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "server/connection.h"
#include "server/writer_port.h"
#include "storage/fd_retry.h"

namespace wald::server {
namespace {

void EraseValue(std::vector<ReadCursor*>& v, ReadCursor* x) { v.erase(std::remove(v.begin(), v.end(), x), v.end()); }

}  // namespace

ReadService::ReadService(uv_loop_t* loop, std::string dir, storage::Env* env, const WriterPort* writer,
                         ReadLimits limits, FdCheck fd_available)
    : loop_(loop),
      dir_(std::move(dir)),
      env_(env),
      writer_(writer),
      limits_(limits),
      fd_available_(std::move(fd_available)),
      files_(env) {}

bool ReadService::Open(Connection* c, const proto::Read* r) {
  if (c->cursors.size() >= limits_.max_reads) {
    c->Send(fb_.Error(r->request_id(), proto::ErrorCode::TooManyReads,
                      "this connection already has " + std::to_string(c->cursors.size()) +
                          " open Reads (--max-reads-per-connection); cancel or finish one first"));
    return false;
  }
  if (fd_available_ && !fd_available_()) {
    c->Send(fb_.Error(r->request_id(), proto::ErrorCode::TooManyReads,
                      "the server is at its file descriptor budget; retry when other Reads have ended"));
    return false;
  }
  ++cursors_;
  auto* cur = new ReadCursor;
  cur->conn = c;
  cur->request_id = r->request_id();
  cur->next_seq = std::max<uint64_t>(1, r->from_seq());
  cur->remaining = r->max_records();
  cur->limited = r->max_records() != 0;
  cur->follow = r->follow();
  cur->dir = &dir_;
  cur->env = env_;
  cur->files = &files_;
  c->cursors.push_back(cur);
  Continue(cur);
  return true;
}

void ReadService::Cancel(Connection* c, uint64_t request_id) {
  for (ReadCursor* r : c->cursors) {
    if (r->request_id == request_id && !r->cancelled) {
      if (r->in_flight) {
        r->cancelled = true;  // OnDone ends it
      } else {
        End(r);
      }
      return;
    }
  }
}

void ReadService::OnDurable(uint64_t durable) {
  if (parked_.empty()) return;
  // The ready ones leave parked_ before any goes on; Continue closes nothing.
  ready_.clear();
  size_t keep = 0;
  for (ReadCursor* r : parked_) {
    if (r->next_seq <= durable) {
      r->parked = false;
      ready_.push_back(r);
    } else {
      parked_[keep++] = r;
    }
  }
  parked_.resize(keep);
  for (ReadCursor* r : ready_) Continue(r);
  ready_.clear();
}

void ReadService::OnDrained(Connection* c) { Unblock(c); }

void ReadService::Unblock(Connection* c) {
  ready_.clear();
  for (ReadCursor* r : c->cursors) {
    if (r->blocked) ready_.push_back(r);
  }
  for (ReadCursor* r : ready_) {
    r->blocked = false;
    Continue(r);
  }
  ready_.clear();
}

void ReadService::EndAll(Connection* c) {
  while (!c->cursors.empty()) End(c->cursors.back());
}

void ReadService::Continue(ReadCursor* r) {
  Connection* c = r->conn;
  if (c->closing()) return;
  if (r->follow && r->next_seq > writer_->durable_seq()) {
    r->parked = true;
    parked_.push_back(r);
    Idle(r);
  } else if (!MayQueue(c)) {
    r->blocked = true;  // OnDrained, or another cursor's return, resumes it
    Idle(r);
  } else {
    Queue(r);
  }
}

bool ReadService::MayQueue(const Connection* c) const {
  if (c->read_reserved == 0) return c->unsent() <= limits_.max_connection_bytes;
  return c->unsent() + c->read_reserved + limits_.max_read_frame <= limits_.max_connection_bytes;
}

void ReadService::Idle(ReadCursor* r) {
  if (r->reader != nullptr) r->reader->ReleaseBuffer();
  std::vector<uint8_t>().swap(r->frame);
}

void ReadService::Queue(ReadCursor* r) {
  r->conn->read_reserved += limits_.max_read_frame;
  r->durable_cap = writer_->durable_seq();
  r->in_flight = true;
  r->work.data = r;
  r->service = this;
  uv_queue_work(loop_, &r->work, OnWork, OnDone);
}

void ReadService::OnWork(uv_work_t* w) {
  auto* r = static_cast<ReadCursor*>(w->data);
  r->Fill(*r->dir);
}

void ReadService::OnDone(uv_work_t* w, int) {
  auto* r = static_cast<ReadCursor*>(w->data);
  if (r->conn == nullptr) {  // the connection closed meanwhile
    r->service->Free(r);
    return;
  }
  r->service->Done(r);
}

void ReadService::Done(ReadCursor* r) {
  Connection* c = r->conn;
  c->read_reserved -= limits_.max_read_frame;
  if (r->cancelled) {
    r->in_flight = false;
    End(r);
    Unblock(c);
    return;
  }
  // r stays in_flight while its answer is sent: a failed Send closes the
  // connection, and End must then only detach r, not delete it under us.
  if (r->trimmed) {
    c->Send(fb_.Error(
        r->request_id, proto::ErrorCode::Trimmed,
        "seq " + std::to_string(r->next_seq) + " is trimmed; the first seq held is " + std::to_string(r->first_held),
        r->first_held));
  } else if (storage::OutOfFds(r->error)) {
    c->Send(fb_.Error(r->request_id, proto::ErrorCode::TooManyReads,
                      "the server is out of file descriptors (" + r->error.ToString() + "); retry this Read later"));
  } else if (!r->error.ok()) {
    spdlog::error("read for connection {}: {}", c->id, r->error.ToString());
    // The log is not changed and appends go on: only this Read ends.
    c->Send(fb_.Error(r->request_id, proto::ErrorCode::ReadFailed,
                      "read failed: " + r->error.ToString() + " (wal-tail --verify names the damage)"));
  } else {
    if (!r->frame.empty()) c->Send(r->frame);
    if (r->gap_to != 0 && r->conn != nullptr) {
      // Never skipped silently: the reader learns which seqs do not exist
      // and where the log goes on.
      c->Send(fb_.Error(r->request_id, proto::ErrorCode::SeqGap,
                        "seqs " + std::to_string(r->gap_from) + ".." + std::to_string(r->gap_to) +
                            " do not exist: a salvage retired them; the log goes on at seq " +
                            std::to_string(r->gap_to + 1),
                        r->gap_to + 1));
    }
  }
  r->in_flight = false;
  if (r->conn == nullptr) {  // a Send closed the connection
    Free(r);
    return;
  }
  if (r->trimmed || !r->error.ok() || r->gap_to != 0 || r->done) {
    End(r);
  } else {
    Continue(r);
  }
  Unblock(c);  // r's chunk is no longer reserved
}

void ReadService::End(ReadCursor* r) {
  if (r->conn != nullptr) EraseValue(r->conn->cursors, r);
  if (r->parked) EraseValue(parked_, r);
  r->parked = false;
  if (r->in_flight) {
    r->conn = nullptr;  // OnDone frees it
  } else {
    Free(r);
  }
}

void ReadService::Free(ReadCursor* r) {
  --cursors_;
  delete r;
}

}  // namespace wald::server
