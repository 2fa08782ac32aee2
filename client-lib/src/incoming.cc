// What the daemon sends, taken apart: Dispatch reads the frames waiting in
// `in` and hands each message to its handler; the handlers complete appends
// (in the order they were made), deliver records to a read, and note the
// replies that blocking calls wait for. All of it runs on the caller's
// thread, inside Poll (PROTOCOL.md has the messages).
#include <algorithm>
#include <string>
#include <utility>

#include "client_impl.h"

namespace wald {
namespace {

HistogramSnapshot ToSnapshot(const proto::Histogram* h) {
  HistogramSnapshot s;
  if (h == nullptr) return s;
  if (h->bounds()) s.bounds.assign(h->bounds()->begin(), h->bounds()->end());
  if (h->counts()) s.counts.assign(h->counts()->begin(), h->counts()->end());
  s.counts.resize(s.bounds.size());
  s.count = h->count();
  s.sum = h->sum();
  return s;
}

ServerStats ToStats(const proto::StatsReply* r) {
  ServerStats s;
  s.uptime_us = r->uptime_us();
  s.connections = r->connections();
  s.records = r->records();
  s.bytes = r->bytes();
  s.syncs = r->syncs();
  s.durable_seq = r->durable_seq();
  s.next_seq = r->next_seq();
  s.rejected_frames = r->rejected_frames();
  s.backpressure_events = r->backpressure_events();
  s.first_seq = r->first_seq();
  s.holds_invalidated = r->holds_invalidated();
  s.disk_budget_refusals = r->disk_budget_refusals();
  s.producers = r->producers();
  s.producer_duplicates = r->producer_duplicates();
  if (r->holds() != nullptr) {
    for (const proto::HoldInfo* h : *r->holds()) {
      if (h != nullptr) s.holds.push_back({h->name() != nullptr ? h->name()->str() : "", h->seq(), h->lag_bytes()});
    }
  }
  s.records_per_sync = ToSnapshot(r->records_per_sync());
  s.sync_latency_us = ToSnapshot(r->sync_latency_us());
  s.ack_latency_us = ToSnapshot(r->ack_latency_us());
  return s;
}

}  // namespace

ErrorCode FromWire(proto::ErrorCode c) {
  switch (c) {
    case proto::ErrorCode::RecordTooLarge: return ErrorCode::kRecordTooLarge;
    case proto::ErrorCode::NotPermitted: return ErrorCode::kNotPermitted;
    case proto::ErrorCode::ServerFailed: return ErrorCode::kServerFailed;
    case proto::ErrorCode::ShuttingDown: return ErrorCode::kShuttingDown;
    case proto::ErrorCode::Unsupported: return ErrorCode::kUnsupported;
    case proto::ErrorCode::Trimmed: return ErrorCode::kTrimmed;
    case proto::ErrorCode::SeqGap: return ErrorCode::kSeqGap;
    case proto::ErrorCode::TooManyReads: return ErrorCode::kTooManyReads;
    case proto::ErrorCode::TooManyConnections: return ErrorCode::kTooManyConnections;
    case proto::ErrorCode::NoSuchHold: return ErrorCode::kNoSuchHold;
    case proto::ErrorCode::InvalidRequest: return ErrorCode::kInvalidArgument;
    case proto::ErrorCode::DiskBudget: return ErrorCode::kDiskBudget;
    case proto::ErrorCode::ReadFailed: return ErrorCode::kReadFailed;
    case proto::ErrorCode::ProducerSeqGap: return ErrorCode::kProducerSeqGap;
    case proto::ErrorCode::ProducerSeqStale: return ErrorCode::kProducerSeqStale;
    case proto::ErrorCode::ProducerFenced: return ErrorCode::kProducerFenced;
    default: return ErrorCode::kProtocol;
  }
}

uint64_t HistogramSnapshot::percentile(double p) const {
  if (count == 0) return 0;
  const uint64_t rank = static_cast<uint64_t>(p * static_cast<double>(count - 1)) + 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (seen >= rank) return bounds[i];
  }
  return bounds.empty() ? 0 : bounds.back();
}

void Client::Impl::Complete(uint64_t rid, Result<Seq> r) {
  Slot& s = At(rid);
  s.done = true;
  if (r.ok() && s.pseq > acked_pseq) acked_pseq = s.pseq;
  AppendCallback cb = std::move(s.cb);  // the callback may append: the ring may move
  while (first_id < next_id && At(first_id).done) {
    At(first_id) = Slot{};
    head = (head + 1) & (ring.size() - 1);
    ++first_id;
  }
  if (producer_id != 0) DropAcked();
  if (cb) cb(std::move(r));
}

void Client::Impl::CompleteBatch(uint64_t rid, uint32_t count, Seq first_seq) {
  if (first_seq + count - 1 > durable) durable = first_seq + count - 1;
  for (uint32_t i = 0; i < count && fd >= 0; ++i) Complete(rid + i, first_seq + i);
}

void Client::Impl::FailBatch(uint64_t rid, uint32_t count, const Error& e) {
  for (uint32_t i = 0; i < count && fd >= 0; ++i) Complete(rid + i, e);
}

void Client::Impl::OnAcks(const proto::Acks* m) {
  // Each list is in request order; taken merged by request id, the
  // callbacks run in the order the appends were made.
  const auto* acks = m->acks();
  const auto* batches = m->batches();
  const size_t n_acks = acks != nullptr ? acks->size() : 0, n_batches = batches != nullptr ? batches->size() : 0;
  size_t i = 0, k = 0;
  while (fd >= 0 && (i < n_acks || k < n_batches)) {
    const proto::AckEntry* a = i < n_acks ? acks->Get(static_cast<flatbuffers::uoffset_t>(i)) : nullptr;
    const proto::BatchAckEntry* b = k < n_batches ? batches->Get(static_cast<flatbuffers::uoffset_t>(k)) : nullptr;
    if (b == nullptr || (a != nullptr && a->request_id() < b->request_id())) {
      ++i;
      const uint64_t rid = a->request_id();
      if (rid < first_id || rid >= next_id || At(rid).done || At(rid).batch != 0) {
        Break(Err(ErrorCode::kProtocol, "ack for unknown request " + std::to_string(rid)));
        return;
      }
      if (a->seq() > durable) durable = a->seq();
      Complete(rid, a->seq());
    } else {
      ++k;
      const uint64_t rid = b->request_id();
      if (rid < first_id || rid >= next_id || At(rid).done || At(rid).batch == 0 || At(rid).batch != b->count() ||
          b->first_seq() == 0) {
        Break(Err(ErrorCode::kProtocol, "batch ack for unknown request " + std::to_string(rid)));
        return;
      }
      CompleteBatch(rid, At(rid).batch, b->first_seq());
    }
  }
}

void Client::Impl::OnError(const proto::Error* e) {
  std::string msg = e->message() ? e->message()->str() : proto::ErrorCodeName(e->code());
  if (e->request_id() == 0) {
    // A daemon that stops (fail-stop, drain) or is full comes back, or
    // another takes its place: Poll reconnects, if it may.
    const bool passing = e->code() == proto::ErrorCode::ServerFailed || e->code() == proto::ErrorCode::ShuttingDown ||
                         e->code() == proto::ErrorCode::TooManyConnections;
    if (passing && hello_done && CanReconnect()) {
      lost = Err(FromWire(e->code()), msg);
    } else {
      Break(Err(FromWire(e->code()), msg));
    }
  } else if (e->request_id() >= kControlIds) {
    Error err = Err(FromWire(e->code()), msg);
    err.first_seq = e->first_seq();
    if (e->request_id() == read_id) {
      if (!read_done) read_error = err;  // not after the callback stopped the read
      read_done = true;
    } else if (e->request_id() == control_wait_id) {
      control_result = err;
    }
  } else if (e->request_id() >= first_id && e->request_id() < next_id && !At(e->request_id()).done) {
    // ServerFailed on an append: the daemon fail-stopped with it
    // written but not known durable. It may or may not be in the log:
    // a producer resends it after reconnecting (the daemon answers
    // with its seq if it is there); anyone else cannot know.
    if (e->code() == proto::ErrorCode::ServerFailed && producer_id != 0 && CanReconnect()) return;
    // A repeat sent after a reconnect that the daemon cannot answer
    // (ProducerSeqStale, say): its first copy may be in the log.
    const Error err = e->code() == proto::ErrorCode::ServerFailed || At(e->request_id()).resent
                          ? Err(ErrorCode::kOutcomeUnknown, msg + ": this append may or may not be in the log")
                          : Err(FromWire(e->code()), msg);
    FailBatch(e->request_id(), std::max<uint32_t>(At(e->request_id()).batch, 1), err);
  }
}

void Client::Impl::OnRecords(const proto::Records* r) {
  if (read_cb == nullptr || r->request_id() != read_id || read_done) return;
  if (r->records() != nullptr) {
    for (const proto::Record* rec : *r->records()) {
      if (read_cb == nullptr) break;  // the callback closed the client
      const auto* p = rec->payload();
      RecordInfo info;
      info.seq = rec->seq();
      if (p != nullptr) info.payload = {reinterpret_cast<const std::byte*>(p->data()), p->size()};
      info.time_ns = rec->time_ns();
      if (const proto::Producer* who = rec->producer(); who != nullptr) {
        info.has_producer = true;
        info.pid = who->pid();
        info.uid = who->uid();
        info.gid = who->gid();
      }
      info.producer_id = rec->producer_id();
      info.producer_seq = rec->producer_seq();
      // Where a read resumes after a reconnect.
      read_next = info.seq + 1;
      if (read_limited && read_left > 0) --read_left;
      if (!(*read_cb)(info)) {
        read_done = true;  // the caller stopped
        read_stopped = true;
        break;
      }
    }
  }
  if (r->done()) read_done = true;
}

void Client::Impl::Dispatch() {
  dispatching = true;
  while (fd >= 0 && lost.ok()) {
    // max_frame was checked against kMaxFrameSize: no wrap.
    const uint32_t limit = (hello_done ? max_frame : proto::kMaxFrameSize) + proto::kRecordsChunk;
    auto f = proto::ParseFrame({in.data() + in_off, in_len - in_off}, limit, &scratch);
    if (f.kind == proto::ParsedFrame::kNeedMore) break;
    if (f.kind != proto::ParsedFrame::kFrame) {
      Break(Err(ErrorCode::kProtocol, "the daemon sent a frame that fails verification or is too large"));
      break;
    }
    in_off += f.consumed;
    const proto::Message* m = f.msg;
    switch (m->body_type()) {
      case proto::Body::Acks: OnAcks(m->body_as_Acks()); break;
      case proto::Body::Error: OnError(m->body_as_Error()); break;
      case proto::Body::Records: OnRecords(m->body_as_Records()); break;
      case proto::Body::HelloAck: {
        if (hello_done) {
          Break(Err(ErrorCode::kProtocol, "unexpected HelloAck"));
          break;
        }
        if (Error e = ApplyHelloAck(m->body_as_HelloAck()); !e.ok()) Break(e);
        break;
      }
      case proto::Body::TrimAck: {
        const proto::TrimAck* t = m->body_as_TrimAck();
        if (t->request_id() == control_wait_id) {
          control_result = Result<Seq>(t->released_up_to());
          control_text = t->held_by() != nullptr ? t->held_by()->str() : "";
        }
        break;
      }
      case proto::Body::HoldAck: {
        const proto::HoldAck* h = m->body_as_HoldAck();
        if (h->request_id() == control_wait_id) control_result = Result<Seq>(h->seq());
        break;
      }
      case proto::Body::StatsReply: {
        const proto::StatsReply* r = m->body_as_StatsReply();
        if (r->request_id() == stats_id) {
          stats_reply = ToStats(r);
          stats_waiting = false;
        }
        break;
      }
      default: break;  // replies to requests this client did not make: ignore
    }
  }
  if (in_off == in_len) in_off = in_len = 0;
  dispatching = false;
}

}  // namespace wald
