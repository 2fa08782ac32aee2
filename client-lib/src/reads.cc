// Reads and subscriptions: read() and subscribe() send a Read and drive I/O
// until it is done (RunRead); subscribe_async() queues the Read and lets
// later polls deliver the records, until EndAsyncRead ends the subscription
// (and with it the connection: the daemon follows until the connection
// ends). The records themselves arrive through OnRecords (incoming.cc); a
// reconnect resumes the read from read_next (reconnect.cc). All of it runs
// on the caller's thread.
#include <functional>
#include <utility>

#include "client_impl.h"

namespace wald {

void Client::Impl::EndAsyncRead(Error why) {
  async_read = false;
  read_id = 0;
  read_cb = nullptr;
  read_stopped = false;
  // async_cb stays: EndAsyncRead may run inside it (a close() from the
  // callback). The next subscribe_async, or the destructor, replaces it.
  auto done = std::move(async_done);
  // The daemon follows until the connection ends: end it (this re-enters
  // Break, which finds async_read already false).
  if (fd >= 0) Break(Err(ErrorCode::kDaemonGone, "the subscription ended"));
  if (done) done(std::move(why));
}

Error Client::Impl::RunRead(Seq from, uint64_t max_records, bool follow, const RecordInfoCallback& cb) {
  if (dispatching) return Err(ErrorCode::kInvalidArgument, "blocking wald call from inside a callback");
  if (!broken.ok()) return broken;
  if (read_id != 0) return Err(ErrorCode::kInvalidArgument, "a read is already running on this client");
  read_id = ++control_id;
  read_cb = &cb;
  read_done = false;
  read_error = {};
  read_next = from;
  read_left = max_records;
  read_limited = max_records != 0;
  read_follow = follow;
  Put(fb.Read(read_id, from, max_records, follow));
  Error e;
  while (!read_done && e.ok()) e = Poll(-1);
  if (e.ok() && read_stopped && !follow) {
    // The caller has what it wanted: ask the daemon to stop streaming
    // (Records still on their way for this id are ignored: read_id resets).
    Put(fb.CancelRead(read_id));
    e = WriteSome();
  }
  read_id = 0;
  read_cb = nullptr;
  read_stopped = false;
  return read_error.ok() ? e : read_error;
}

namespace {
RecordInfoCallback WithoutInfo(const RecordCallback& cb) {
  return [&cb](const RecordInfo& r) { return cb(r.seq, r.payload); };
}
}  // namespace

Error Client::read(Seq from, const RecordCallback& cb, uint64_t max_records) {
  return read(from, WithoutInfo(cb), max_records);
}

Error Client::read(Seq from, const RecordInfoCallback& cb, uint64_t max_records) {
  return impl_->RunRead(from, max_records, false, cb);
}

Error Client::subscribe(Seq from, const RecordCallback& cb) { return subscribe(from, WithoutInfo(cb)); }

Error Client::subscribe(Seq from, const RecordInfoCallback& cb) {
  Error result = impl_->RunRead(from, 0, true, cb);
  // The daemon keeps following until the connection ends: end it.
  if (result.ok()) impl_->Close();
  return result;
}

Error Client::subscribe_async(Seq from, RecordInfoCallback cb, std::function<void(Error)> done) {
  Impl& i = *impl_;
  if (!cb) return Err(ErrorCode::kInvalidArgument, "subscribe_async needs a callback");
  if (i.dispatching) return Err(ErrorCode::kInvalidArgument, "subscribe_async from inside a callback");
  if (!i.broken.ok()) return i.broken;
  if (i.read_id != 0) return Err(ErrorCode::kInvalidArgument, "a read is already running on this client");
  i.async_read = true;
  i.async_cb = std::move(cb);
  i.async_done = std::move(done);
  i.read_id = ++i.control_id;
  i.read_cb = &i.async_cb;
  i.read_done = false;
  i.read_error = {};
  i.read_next = from;
  i.read_left = 0;
  i.read_limited = false;
  i.read_follow = true;
  // Sent by the next poll(): a failure then reaches `done`, never both done
  // and a returned error.
  auto frame = i.fb.Read(i.read_id, from, 0, true);
  i.Put(frame);
  return {};
}

}  // namespace wald
