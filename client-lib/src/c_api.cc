// The C ABI over wald::Client. No exception crosses it: the C++ client does
// not throw for wald errors, and allocation failure terminates.
#include <cstring>
#include <string>

#include "wald/client.h"
#include "wald/wald.h"

struct wald_client {
  explicit wald_client(wald::Client c) : client(std::move(c)) {}
  wald::Client client;
  std::string last_error;
};

namespace {

int Code(wald::ErrorCode c) {
  switch (c) {
    case wald::ErrorCode::kOk: return WALD_OK;
    case wald::ErrorCode::kDaemonGone: return WALD_E_DAEMON_GONE;
    case wald::ErrorCode::kOutcomeUnknown: return WALD_E_OUTCOME_UNKNOWN;
    case wald::ErrorCode::kProtocol: return WALD_E_PROTOCOL;
    case wald::ErrorCode::kRecordTooLarge: return WALD_E_RECORD_TOO_LARGE;
    case wald::ErrorCode::kNotPermitted: return WALD_E_NOT_PERMITTED;
    case wald::ErrorCode::kServerFailed: return WALD_E_SERVER_FAILED;
    case wald::ErrorCode::kShuttingDown: return WALD_E_SHUTTING_DOWN;
    case wald::ErrorCode::kTimeout: return WALD_E_TIMEOUT;
    case wald::ErrorCode::kInvalidArgument: return WALD_E_INVALID_ARGUMENT;
    case wald::ErrorCode::kUnsupported: return WALD_E_UNSUPPORTED;
    case wald::ErrorCode::kTrimmed: return WALD_E_TRIMMED;
    case wald::ErrorCode::kSeqGap: return WALD_E_SEQ_GAP;
    case wald::ErrorCode::kTooManyReads: return WALD_E_TOO_MANY_READS;
    case wald::ErrorCode::kTooManyConnections: return WALD_E_TOO_MANY_CONNECTIONS;
    case wald::ErrorCode::kNoSuchHold: return WALD_E_NO_SUCH_HOLD;
    case wald::ErrorCode::kDiskBudget: return WALD_E_DISK_BUDGET;
    case wald::ErrorCode::kReadFailed: return WALD_E_READ_FAILED;
    case wald::ErrorCode::kProducerSeqGap: return WALD_E_PRODUCER_SEQ_GAP;
    case wald::ErrorCode::kProducerSeqStale: return WALD_E_PRODUCER_SEQ_STALE;
    case wald::ErrorCode::kProducerFenced: return WALD_E_PRODUCER_FENCED;
  }
  return WALD_E_PROTOCOL;
}

int Report(wald_client* c, const wald::Error& e) {
  c->last_error = e.message;
  return Code(e.code);
}

int ConnectWith(const char* socket_path, const wald::ClientOptions& options, wald_client** out, char* errbuf,
                size_t errbuf_len);

std::span<const std::byte> Bytes(const void* data, size_t len) { return {static_cast<const std::byte*>(data), len}; }

wald::RecordInfoCallback InfoCallback(wald_record_info_cb cb, void* user) {
  return [cb, user](const wald::RecordInfo& r) {
    const wald_record_info info{
        r.seq, r.payload.data(), r.payload.size(), r.time_ns, r.has_producer ? 1 : 0, r.pid, r.uid,
        r.gid, r.producer_id,    r.producer_seq};
    return cb(user, &info) == 0;
  };
}

}  // namespace

extern "C" {

int wald_connect(const char* socket_path, wald_client** out, char* errbuf, size_t errbuf_len) {
  return ConnectWith(socket_path, {}, out, errbuf, errbuf_len);
}

int wald_connect_producer(const char* socket_path, uint64_t producer_id, int reconnect_timeout_ms, wald_client** out,
                          char* errbuf, size_t errbuf_len) {
  wald::ClientOptions o;
  o.producer = true;
  o.producer_id = producer_id;
  o.reconnect_timeout_ms = reconnect_timeout_ms;
  return ConnectWith(socket_path, o, out, errbuf, errbuf_len);
}

uint64_t wald_producer_id(const wald_client* c) { return c->client.producer_id(); }
uint64_t wald_reconnects(const wald_client* c) { return c->client.reconnects(); }

}  // extern "C"

namespace {

int ConnectWith(const char* socket_path, const wald::ClientOptions& options, wald_client** out, char* errbuf,
                size_t errbuf_len) {
  *out = nullptr;
  if (socket_path == nullptr) return WALD_E_INVALID_ARGUMENT;
  auto r = wald::connect(socket_path, options);
  if (!r.ok()) {
    if (errbuf != nullptr && errbuf_len > 0) {
      std::strncpy(errbuf, r.error().message.c_str(), errbuf_len - 1);
      errbuf[errbuf_len - 1] = '\0';
    }
    return Code(r.error().code);
  }
  *out = new wald_client(std::move(r.value()));
  return WALD_OK;
}

}  // namespace

extern "C" {

void wald_close(wald_client* c) { delete c; }

int wald_append(wald_client* c, const void* data, size_t len, uint64_t* seq_out) {
  auto r = c->client.append(Bytes(data, len));
  if (!r.ok()) return Report(c, r.error());
  if (seq_out != nullptr) *seq_out = r.value();
  return WALD_OK;
}

int wald_append_async(wald_client* c, const void* data, size_t len, wald_append_cb cb, void* user) {
  if (cb == nullptr) return WALD_E_INVALID_ARGUMENT;
  wald::Error e = c->client.append_async(Bytes(data, len), [cb, user](wald::Result<wald::Seq> r) {
    if (r.ok()) {
      cb(user, WALD_OK, r.value(), "");
    } else {
      cb(user, Code(r.error().code), 0, r.error().message.c_str());
    }
  });
  return Report(c, e);
}

int wald_read(wald_client* c, uint64_t from, wald_record_cb cb, void* user) {
  if (cb == nullptr) return WALD_E_INVALID_ARGUMENT;
  return Report(c, c->client.read(from, [cb, user](wald::Seq seq, std::span<const std::byte> p) {
    return cb(user, seq, p.data(), p.size()) == 0;
  }));
}

int wald_subscribe(wald_client* c, uint64_t from, wald_record_cb cb, void* user) {
  if (cb == nullptr) return WALD_E_INVALID_ARGUMENT;
  return Report(c, c->client.subscribe(from, [cb, user](wald::Seq seq, std::span<const std::byte> p) {
    return cb(user, seq, p.data(), p.size()) == 0;
  }));
}

int wald_read_info(wald_client* c, uint64_t from, wald_record_info_cb cb, void* user) {
  if (cb == nullptr) return WALD_E_INVALID_ARGUMENT;
  return Report(c, c->client.read(from, InfoCallback(cb, user)));
}

int wald_subscribe_info(wald_client* c, uint64_t from, wald_record_info_cb cb, void* user) {
  if (cb == nullptr) return WALD_E_INVALID_ARGUMENT;
  return Report(c, c->client.subscribe(from, InfoCallback(cb, user)));
}

int wald_trim(wald_client* c, uint64_t up_to, uint64_t* released) {
  auto r = c->client.trim(up_to);
  if (!r.ok()) return Report(c, r.error());
  if (released != nullptr) *released = r.value();
  return WALD_OK;
}

int wald_hold(wald_client* c, const char* name, uint64_t seq, uint64_t* stored) {
  if (name == nullptr) return WALD_E_INVALID_ARGUMENT;
  auto r = c->client.hold(name, seq);
  if (!r.ok()) return Report(c, r.error());
  if (stored != nullptr) *stored = r.value();
  return WALD_OK;
}

int wald_release_hold(wald_client* c, const char* name) {
  if (name == nullptr) return WALD_E_INVALID_ARGUMENT;
  return Report(c, c->client.release_hold(name));
}

int wald_flush(wald_client* c) { return Report(c, c->client.flush()); }
int wald_poll(wald_client* c, int timeout_ms) { return Report(c, c->client.poll(timeout_ms)); }
int wald_wait_all(wald_client* c, int timeout_ms) { return Report(c, c->client.wait_all(timeout_ms)); }
int wald_fd(const wald_client* c) { return c->client.fd(); }
int wald_wants_write(const wald_client* c) { return c->client.wants_write() ? 1 : 0; }
size_t wald_inflight(const wald_client* c) { return c->client.inflight(); }
uint64_t wald_durable_seq(const wald_client* c) { return c->client.durable_seq(); }
const uint8_t* wald_log_id(const wald_client* c) { return c->client.log_id().data(); }
const char* wald_last_error(const wald_client* c) { return c->last_error.c_str(); }

const char* wald_strerror(int code) {
  switch (code) {
    case WALD_OK: return "ok";
    case WALD_E_DAEMON_GONE: return "daemon gone";
    case WALD_E_OUTCOME_UNKNOWN: return "outcome unknown";
    case WALD_E_PROTOCOL: return "protocol error";
    case WALD_E_RECORD_TOO_LARGE: return "record too large";
    case WALD_E_NOT_PERMITTED: return "not permitted";
    case WALD_E_SERVER_FAILED: return "server failed";
    case WALD_E_SHUTTING_DOWN: return "shutting down";
    case WALD_E_TIMEOUT: return "timeout";
    case WALD_E_INVALID_ARGUMENT: return "invalid argument";
    case WALD_E_UNSUPPORTED: return "unsupported";
    case WALD_E_TRIMMED: return "trimmed";
    case WALD_E_SEQ_GAP: return "seq gap: a salvage retired these seqs";
    case WALD_E_TOO_MANY_READS: return "too many reads open on this connection";
    case WALD_E_TOO_MANY_CONNECTIONS: return "too many connections";
    case WALD_E_NO_SUCH_HOLD: return "no such hold";
    case WALD_E_DISK_BUDGET: return "the log is at its disk budget";
    case WALD_E_READ_FAILED: return "the daemon could not read the log";
    case WALD_E_PRODUCER_SEQ_GAP: return "the producer's append skips past its next number";
    case WALD_E_PRODUCER_SEQ_STALE: return "the producer's repeat is too old for the daemon to answer";
    case WALD_E_PRODUCER_FENCED: return "a newer connection took this producer over";
    default: return "unknown error";
  }
}

}  // extern "C"
