// The Server's frames: parsing what a connection delivers (OnData), one
// handler per message, and the replies. Loop thread only.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "server/server.h"
#include "server/socket_util.h"

#ifndef WALD_VERSION
#define WALD_VERSION "0.0.0"
#endif

namespace wald::server {
namespace {
constexpr uint32_t kMaxHelloFrame = 4096;
}  // namespace

// ---- Frames ----

size_t Server::OnData(Connection* c, std::span<const uint8_t> data) {
  size_t off = 0;
  bool incomplete = false;  // the data ends inside a frame
  while (off < data.size() && !c->closing()) {
    // Before the handshake only a Hello may come, and it is small: a client
    // cannot make wald buffer a record-sized frame without saying who it is.
    // Per frame: an Append may follow the Hello in the same read.
    const uint32_t max_frame = c->hello_done ? options_.max_record + proto::kAppendOverhead : kMaxHelloFrame;
    proto::ParsedFrame f = proto::ParseFrame(data.subspan(off), max_frame, &frame_scratch_);
    if (f.kind == proto::ParsedFrame::kNeedMore) {
      incomplete = true;
      break;
    }
    if (f.kind == proto::ParsedFrame::kTooLarge) {
      ++stats_.rejected_frames;
      Reject(c, proto::ErrorCode::FrameTooLarge,
             "frame of " + std::to_string(f.declared) + " bytes exceeds the limit of " + std::to_string(max_frame));
      break;
    }
    if (f.kind == proto::ParsedFrame::kInvalid) {
      ++stats_.rejected_frames;
      Reject(c, proto::ErrorCode::ProtocolError, "frame failed verification");
      break;
    }
    if (c->hello_done && !proto::KnownBody(f.msg->body_type())) {
      // A newer client's message: say so and go on (PROTOCOL.md, Error).
      ++stats_.rejected_frames;
      c->Send(fb_.Error(proto::UnknownRequestId(f), proto::ErrorCode::Unsupported,
                        "message type " + std::to_string(static_cast<int>(f.msg->body_type())) +
                            " is not served by this server (wald " WALD_VERSION ")"));
      off += f.consumed;
      continue;
    }
    const Outcome o = Dispatch(c, f.msg);
    if (o == Outcome::kClosed) break;
    if (o == Outcome::kStall) {
      // No staging chunk is free: the rest waits in the connection (held)
      // until RetryStalled replays it; reading stops everywhere meanwhile.
      if (!c->stalled) {
        c->stalled = true;
        stalled_.push_back(c);
      }
      break;
    }
    off += f.consumed;
  }
  if (!c->closing()) CountPartial(c, incomplete ? data.size() - off : 0);
  if (!c->closing()) UpdateReading(c);
  // Group commit hands a loop iteration's records over at its end (OnCheck).
  // But a writer that has synced all it had would wait for that end while
  // the loop reads the other connections and sends acks: hand over now, and
  // let the rest of the iteration gather behind this fdatasync. At W2
  // (64 x 1) waiting made the writer's cycle 2-3x the fdatasync itself.
  handed_early_ += staging_->HandOffIfWriterIdle();
  return off;
}

void Server::CountPartial(Connection* c, uint64_t bytes) {
  const bool grew = bytes > c->partial_bytes;
  if (c->partial_bytes == 0 && bytes > 0) c->partial_since_ns = uv_hrtime();  // a frame began
  partial_bytes_ = partial_bytes_ - c->partial_bytes + bytes;
  c->partial_bytes = bytes;
  if (!grew || partial_bytes_ <= options_.max_partial_bytes) return;
  ++stats_.rejected_frames;
  // OnClosing takes its bytes out of the total.
  Reject(c, proto::ErrorCode::TooManyConnections,
         "wald holds " + std::to_string(partial_bytes_) + " bytes of incomplete frames across connections " +
             "(--max-partial-bytes " + std::to_string(options_.max_partial_bytes) + "); retry later");
}

bool Server::MayRetain(Connection* c, uint64_t request_id, std::string_view what) {
  if (PeerAllowed({options_.allow_trim_uids, options_.allow_trim_gids}, c->peer_known, c->peer, c->peer_groups)) {
    return true;
  }
  ++stats_.rejected_frames;
  LogRefusal(fmt::format("connection {}: {} refused: uid {} is not in --allow-trim-uid/--allow-trim-gid", c->id, what,
                         c->peer.uid));
  c->Send(fb_.Error(request_id, proto::ErrorCode::NotPermitted,
                    "uid " + std::to_string(c->peer.uid) + " may not " + std::string(what) + " on this log"));
  return false;
}

void Server::RequestHold(Connection* c, uint64_t request_id, const flatbuffers::String* name, uint64_t seq,
                         bool release) {
  if (!MayRetain(c, request_id, release ? "release a hold" : "hold")) return;
  const std::string_view n = name != nullptr ? name->string_view() : std::string_view();
  if (std::string why = storage::CheckHoldName(n); !why.empty()) {
    ++stats_.rejected_frames;
    c->Send(fb_.Error(request_id, proto::ErrorCode::InvalidRequest, why));
    return;
  }
  acks_.AwaitHold(c, request_id, writer_->RequestHold(std::string(n), seq, release), std::string(n));
}

Server::Outcome Server::Dispatch(Connection* c, const proto::Message* msg) {
  using proto::Body;
  if (!c->hello_done) {
    if (msg->body_type() != Body::Hello) {
      ++stats_.rejected_frames;
      Reject(c, proto::ErrorCode::ProtocolError, "the first message must be Hello");
      return Outcome::kClosed;
    }
    HandleHello(c, msg->body_as_Hello());
    return c->closing() ? Outcome::kClosed : Outcome::kDone;
  }
  switch (msg->body_type()) {
    case Body::Append: return HandleAppend(c, msg->body_as_Append());
    case Body::AppendBatch: return HandleAppendBatch(c, msg->body_as_AppendBatch());
    case Body::StatsRequest:
      c->Send(health_->StatsReply(fb_, msg->body_as_StatsRequest()->request_id()));
      return Outcome::kDone;
    case Body::Read:
      if (!reads_->Open(c, msg->body_as_Read())) ++stats_.rejected_frames;
      return Outcome::kDone;
    case Body::Trim: {
      const proto::Trim* t = msg->body_as_Trim();
      if (!MayRetain(c, t->request_id(), "trim")) return Outcome::kDone;
      const uint64_t up_to = std::min(t->up_to_seq(), writer_->durable_seq());
      acks_.AwaitTrim(c, t->request_id(), writer_->RequestTrim(t->up_to_seq()), up_to);
      return Outcome::kDone;
    }
    case Body::Hold: {
      const proto::Hold* h = msg->body_as_Hold();
      RequestHold(c, h->request_id(), h->name(), h->seq(), /*release=*/false);
      return Outcome::kDone;
    }
    case Body::ReleaseHold: {
      const proto::ReleaseHold* h = msg->body_as_ReleaseHold();
      RequestHold(c, h->request_id(), h->name(), 0, /*release=*/true);
      return Outcome::kDone;
    }
    case Body::CancelRead: reads_->Cancel(c, msg->body_as_CancelRead()->request_id()); return Outcome::kDone;
    default:
      ++stats_.rejected_frames;
      Reject(c, proto::ErrorCode::ProtocolError,
             std::string("unexpected message ") + proto::EnumNameBody(msg->body_type()));
      return Outcome::kClosed;
  }
}

void Server::HandleHello(Connection* c, const proto::Hello* h) {
  if (h->protocol_version() != proto::kProtocolVersion) {
    Reject(c, proto::ErrorCode::UnsupportedVersion,
           "this server speaks protocol version " + std::to_string(proto::kProtocolVersion) + ", not " +
               std::to_string(h->protocol_version()));
    return;
  }
  if (h->client_name() != nullptr && h->client_name()->size() > 0) {
    spdlog::debug("connection {} is {:?}", c->id, h->client_name()->string_view());  // escaped: the peer's bytes
  }
  c->hello_done = true;
  uint64_t producer_seq = 0;
  if (h->producer_id() != 0) {
    // This connection speaks for the producer from now on: an older one
    // still open (a client that reconnected) is fenced.
    c->producer_id = h->producer_id();
    producer_owner_[c->producer_id] = c->id;
    producer_seq = producers_.Last(c->producer_id, staging_->next_seq());
    spdlog::debug("connection {} is producer {:016x}, last producer seq {}", c->id, c->producer_id, producer_seq);
  }
  c->Send(fb_.HelloAck({log_id_.data(), log_id_.size()}, writer_->durable_seq(),
                       options_.max_record + proto::kAppendOverhead, options_.max_record, options_.max_inflight,
                       WALD_VERSION, options_.max_inflight, producer_seq, options_.max_inflight));
}

Server::Outcome Server::HandleAppend(Connection* c, const proto::Append* a) {
  const auto* payload = a->payload();
  const size_t size = payload ? payload->size() : 0;
  // A producer's repeat is answered before anything else: its first copy
  // was taken, even if this daemon would now refuse it (a lower --max-record).
  const uint64_t pseq = a->producer_seq();
  if ((c->producer_id != 0 || pseq != 0) && !AdmitProduced(c, a->request_id(), pseq, 1, size, /*batch=*/false)) {
    return Outcome::kDone;
  }
  if (size > options_.max_record) {
    ++stats_.rejected_frames;
    RefuseProduced(c, pseq, 1);
    c->Send(fb_.Error(
        a->request_id(), proto::ErrorCode::RecordTooLarge,
        "record of " + std::to_string(size) + " bytes exceeds --max-record " + std::to_string(options_.max_record)));
    return Outcome::kDone;
  }
  storage::RecordMeta meta = MetaFor(c);
  meta.producer_seq = pseq;
  if (!staging_->Fits(meta, size, append_limit_)) {
    RefuseProduced(c, pseq, 1);
    RefuseForBudget(c, a->request_id());
    return Outcome::kDone;
  }
  const uint64_t seq = staging_->Stage(meta, std::as_bytes(std::span(payload ? payload->data() : nullptr, size)));
  if (seq == 0) return Outcome::kStall;
  if (pseq != 0) {
    producers_.Note(c->producer_id, pseq, seq, 1);
    stats_.producers = producers_.size();
  }
  c->pending.push({a->request_id(), seq, c->read_mono_ns(), static_cast<uint32_t>(size), 0});
  ++c->pending_records;
  c->pending_bytes += size;
  acks_.Track(c);
  ++stats_.records;
  stats_.bytes += size;
  return Outcome::kDone;
}

// The records of a batch get consecutive seqs (so that one range acks
// them): it is staged whole or, when the staging chunks cannot take all of
// it now, waits whole (kStall, nothing staged). Refused whole, connection
// kept, for a bad size, a record over --max-record, more records than
// HelloAck's max_batch_records, or the disk budget.
Server::Outcome Server::HandleAppendBatch(Connection* c, const proto::AppendBatch* b) {
  const uint64_t rid = b->request_id();
  const auto* sizes = b->sizes();
  const auto* data = b->data();
  const size_t count = sizes != nullptr ? sizes->size() : 0;
  const size_t data_size = data != nullptr ? data->size() : 0;
  const uint64_t pseq = b->producer_seq();
  bool admitted = false;  // a producer's numbers passed AdmitProduced: a refusal uses them up
  auto refuse = [&](proto::ErrorCode code, std::string why) {
    ++stats_.rejected_frames;
    if (admitted) RefuseProduced(c, pseq, static_cast<uint32_t>(count));
    c->Send(fb_.Error(rid, code, why));
    return Outcome::kDone;
  };
  if (count == 0 || count > options_.max_inflight) {
    return refuse(proto::ErrorCode::InvalidRequest, "a batch holds 1 to " + std::to_string(options_.max_inflight) +
                                                        " records (HelloAck max_batch_records), not " +
                                                        std::to_string(count));
  }
  storage::RecordMeta meta = MetaFor(c);
  const size_t meta_size = storage::MetaSize(meta.flags | storage::kFlagDurable);
  uint64_t total = 0, encoded = 0;
  uint32_t largest = 0;
  for (uint32_t s : *sizes) {
    total += s;
    encoded += storage::EncodedSize(s, meta_size);
    largest = std::max(largest, s);
  }
  if (total != data_size) {
    return refuse(proto::ErrorCode::InvalidRequest, "the batch's sizes add up to " + std::to_string(total) +
                                                        " bytes, its data has " + std::to_string(data_size));
  }
  if ((c->producer_id != 0 || pseq != 0) &&
      !AdmitProduced(c, rid, pseq, static_cast<uint32_t>(count), total, /*batch=*/true)) {
    return Outcome::kDone;
  }
  admitted = pseq != 0;
  if (largest > options_.max_record) {
    return refuse(proto::ErrorCode::RecordTooLarge,
                  "a record of " + std::to_string(largest) + " bytes in the batch exceeds --max-record " +
                      std::to_string(options_.max_record) + "; nothing of the batch was appended");
  }
  if (!staging_->FitsEncoded(encoded, append_limit_)) {
    RefuseProduced(c, pseq, static_cast<uint32_t>(count));  // admitted by now
    RefuseForBudget(c, rid);
    return Outcome::kDone;
  }
  const std::span<const uint32_t> lengths(sizes->data(), count);
  switch (staging_->RoomFor(meta, lengths)) {
    case StagingPool::Room::kNow: break;
    case StagingPool::Room::kWait: return Outcome::kStall;
    case StagingPool::Room::kNever:
      return refuse(proto::ErrorCode::InvalidRequest,
                    "the batch is larger than wald's staging buffers (--max-unsynced-bytes); send fewer records");
  }
  const auto* p = reinterpret_cast<const std::byte*>(data_size > 0 ? data->data() : nullptr);
  uint64_t last = 0;
  meta.producer_seq = pseq;
  for (uint32_t s : lengths) {
    last = staging_->Stage(meta, {p, s});
    assert(last != 0);  // RoomFor said so
    p += s;
    if (pseq != 0) ++meta.producer_seq;
  }
  if (pseq != 0) {
    producers_.Note(c->producer_id, pseq, last - count + 1, static_cast<uint32_t>(count));
    stats_.producers = producers_.size();
  }
  c->pending.push({rid, last, c->read_mono_ns(), static_cast<uint32_t>(total), static_cast<uint32_t>(count)});
  c->pending_records += count;
  c->pending_bytes += total;
  acks_.Track(c);
  stats_.records += count;
  stats_.bytes += total;
  return Outcome::kDone;
}

bool Server::AdmitProduced(Connection* c, uint64_t rid, uint64_t pseq, uint32_t count, uint64_t bytes, bool batch) {
  auto refuse = [&](proto::ErrorCode code, const std::string& why, uint64_t first_seq = 0) {
    ++stats_.rejected_frames;
    c->Send(fb_.Error(rid, code, why, first_seq));
    return false;
  };
  if (c->producer_id == 0) {
    return refuse(proto::ErrorCode::InvalidRequest,
                  "producer_seq is set, but this connection's Hello gave no producer_id; nothing was appended");
  }
  if (pseq == 0) {
    return refuse(proto::ErrorCode::InvalidRequest,
                  "an append on a producer connection needs its producer_seq (1, 2, 3...); nothing was appended");
  }
  if (pseq > ProducerTable::kMaxProducerSeq - count) {
    return refuse(proto::ErrorCode::InvalidRequest, "producer seq " + std::to_string(pseq) +
                                                        " is past the largest wald takes (2^62); nothing was "
                                                        "appended");
  }
  if (auto it = producer_owner_.find(c->producer_id); it == producer_owner_.end() || it->second != c->id) {
    return refuse(proto::ErrorCode::ProducerFenced,
                  "a newer connection speaks for this producer (a Hello with the same producer_id); nothing was "
                  "appended here");
  }
  using Verdict = ProducerTable::Verdict;
  const ProducerTable::Check k = producers_.Classify(c->producer_id, pseq, count, staging_->next_seq());
  switch (k.verdict) {
    case Verdict::kNew: return true;
    case Verdict::kGap:
      return refuse(proto::ErrorCode::ProducerSeqGap,
                    "producer seq " + std::to_string(pseq) + " skips past the next one, " + std::to_string(k.last + 1) +
                        "; nothing was appended",
                    k.last + 1);
    case Verdict::kStale:
      return refuse(proto::ErrorCode::ProducerSeqStale,
                    "producer seq " + std::to_string(pseq) +
                        (count > 1 ? " (a batch of " + std::to_string(count) + ")" : "") +
                        " is at or below the producer's last, " + std::to_string(k.last) +
                        ", and is not among the appends a duplicate is answered for (the latest " +
                        std::to_string(options_.max_inflight) + ", within --producer-window " +
                        std::to_string(options_.producer_window) + " records, each whole batch as sent)");
    case Verdict::kDuplicate: break;
  }
  // Already in the log: acked with the seqs its first copy got, once they
  // are durable (perhaps already: OnCheck publishes again).
  c->pending.push({rid, k.seq + count - 1, c->read_mono_ns(), static_cast<uint32_t>(bytes), batch ? count : 0});
  c->pending_records += count;
  c->pending_bytes += bytes;
  acks_.Track(c);
  ++stats_.producer_duplicates;
  republish_ = true;
  return false;
}

void Server::RefuseProduced(Connection* c, uint64_t pseq, uint32_t count) {
  if (pseq != 0 && c->producer_id != 0) producers_.Refuse(c->producer_id, pseq, count, staging_->next_seq());
}

storage::RecordMeta Server::MetaFor(const Connection* c) const {
  storage::RecordMeta meta;
  meta.flags = stamp_flags_ & (c->peer_known ? ~0u : ~storage::kFlagProducer);
  if (c->producer_id != 0) {
    meta.flags |= storage::kFlagProducerSeq;
    meta.producer_id = c->producer_id;
  }
  meta.time_ns = c->read_wall_ns();
  meta.pid = static_cast<uint32_t>(c->peer.pid);
  meta.uid = c->peer.uid;
  meta.gid = c->peer.gid;
  return meta;
}

// The log is at --max-disk: refuse this append, keep the connection. Space
// comes back when a trim, the policy or a hold's move releases.
void Server::RefuseForBudget(Connection* c, uint64_t request_id) {
  ++stats_.disk_budget_refusals;
  LogRefusal(
      fmt::format("connection {}: append refused: the log is at its disk budget (--max-disk {}); a trim, "
                  "the retention policy or a hold that moves must release segments first",
                  c->id, options_.max_disk));
  c->Send(fb_.Error(request_id, proto::ErrorCode::DiskBudget,
                    "the log is at its disk budget (--max-disk " + std::to_string(options_.max_disk) +
                        " bytes) and nothing can be released yet; retry after a trim or a hold moves"));
}

// An error that ends the connection: the frame goes out, then it closes.
void Server::Reject(Connection* c, proto::ErrorCode code, std::string_view msg) {
  if (c->closing()) return;
  LogRefusal(fmt::format("connection {}: {} ({}), closing", c->id, msg, proto::ErrorCodeName(code)));
  c->SendAndClose(fb_.Error(0, code, msg));
}

}  // namespace wald::server
