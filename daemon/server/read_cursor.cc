#include "server/read_cursor.h"

namespace wald::server {

void ReadCursor::Fill(const std::string& log_dir) {
  frame.clear();
  gap_from = gap_to = 0;
  if (reader == nullptr) {
    // A cursor lives as long as its follower: keep its buffer small (64 KiB,
    // not the 1 MiB default), so that many followers cost little memory.
    auto r = storage::LogReader::Open(env, log_dir, next_seq, nullptr, 64 << 10, files);
    if (!r.ok()) {
      if (r.status().code() == storage::Code::kNotFound) {
        trimmed = true;
        auto segs = storage::ListSegments(env, log_dir);
        first_held = segs.ok() && !segs->empty() ? segs->front().first_seq : next_seq;
      } else {
        error = r.take_status();
      }
      return;
    }
    reader = std::move(r.value());
  }
  // One builder per pool thread (libuv's few), grown to a chunk once.
  thread_local proto::FrameBuilder fb{64 << 10};
  auto& fbb = fb.fbb();
  fbb.Clear();
  std::vector<flatbuffers::Offset<proto::Record>> recs;
  size_t bytes = 0;
  storage::RecordView rec;
  // Never read past durable_cap: LogReader would hand out records that are
  // written but not yet synced.
  while (reader->next_seq() <= durable_cap && bytes < kReadChunkBytes && !(limited && remaining == 0)) {
    auto step = reader->Next(&rec);
    if (step == storage::LogReader::Step::kError) {
      if (reader->status().code() == storage::Code::kNotFound) {
        // Released under the reader (a trim, then its file recycled).
        trimmed = true;
        auto segs = storage::ListSegments(env, log_dir);
        first_held = segs.ok() && !segs->empty() ? segs->front().first_seq : next_seq;
        return;
      }
      error = reader->status();
      return;
    }
    if (step == storage::LogReader::Step::kEnd) break;  // durable but not visible yet: retry later
    if (step == storage::LogReader::Step::kGap) {
      gap_from = reader->gap_from();
      gap_to = reader->gap_to();
      next_seq = gap_to + 1;
      break;
    }
    auto payload = fbb.CreateVector(reinterpret_cast<const uint8_t*>(rec.payload.data()), rec.payload.size());
    const proto::Producer producer(rec.meta.pid, rec.meta.uid, rec.meta.gid);
    const bool stamped_by = (rec.meta.flags & storage::kFlagProducer) != 0;
    recs.push_back(proto::CreateRecord(fbb, rec.seq, payload, rec.meta.time_ns, stamped_by ? &producer : nullptr,
                                       rec.meta.producer_id, rec.meta.producer_seq));
    bytes += rec.payload.size() + 64;  // the payload and about what its Record table takes
    next_seq = rec.seq + 1;
    if (limited) --remaining;
  }
  // A gap ends the Read with Error{SeqGap} (sent by the loop after this
  // frame), never with done: a client that saw done would stop reading first.
  done = gap_to == 0 && ((limited && remaining == 0) || (!follow && next_seq > durable_cap));
  if (recs.empty() && !done) return;
  auto v = fbb.CreateVector(recs);
  auto span = fb.Finish(proto::Body::Records, proto::CreateRecords(fbb, request_id, v, done).Union());
  frame.assign(span.begin(), span.end());
}

}  // namespace wald::server
