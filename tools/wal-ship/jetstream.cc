#include "jetstream.h"

#include <cstdlib>
#include <cstring>

namespace wald::ship {
namespace {

std::string Describe(const char* what, natsStatus s, jsErrCode jerr) {
  std::string m = std::string(what) + ": " + natsStatus_GetText(s);
  if (jerr != 0) m += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail != nullptr && *detail != '\0' && std::strstr(m.c_str(), detail) == nullptr)
    m += ": " + std::string(detail);
  return m;
}

// Whatever NATS says can change: a quorum comes back, a node restarts, an
// operator fixes a permission. The shipper backs off and tries again.
Outcome Failure(const char* what, natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  return Outcome::Retry(Describe(what, s, jerr));
}

// Stream errors that no retry can mend: the operator must change something.
bool Unmendable(jsErrCode jerr) {
  return jerr == JSStreamReplicasNotSupportedErr || jerr == JSStreamSubjectOverlapErr ||
         jerr == JSStreamInvalidConfig || jerr == JSStreamMessageExceedsMaximumErr;
}

std::string Description(const std::string& log_id) { return "wald log " + log_id; }

bool ParseU64(const char* s, uint64_t* out) {
  if (s == nullptr || *s < '0' || *s > '9') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

}  // namespace

Outcome JetStream::Connect(const NatsOptions& options, AckSink* sink, std::unique_ptr<JetStream>* out) {
  std::unique_ptr<JetStream> j(new JetStream());
  j->options_ = options;
  natsOptions* o = nullptr;
  natsStatus s = natsOptions_Create(&o);
  std::vector<const char*> servers;
  for (const auto& u : options.urls) servers.push_back(u.c_str());
  if (s == NATS_OK) s = natsOptions_SetServers(o, servers.data(), static_cast<int>(servers.size()));
  if (s == NATS_OK) s = natsOptions_SetName(o, "wal-ship");
  // libnats keeps reconnecting on its own, across leader elections and
  // restarts of every node; publishes made meanwhile fail by their timeout.
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 100);
  if (s == NATS_OK) s = natsOptions_SetTimeout(o, options.api_timeout_ms);
  if (s == NATS_OK && !options.creds_file.empty()) {
    s = natsOptions_SetUserCredentialsFromFiles(o, options.creds_file.c_str(), nullptr);
  }
  if (s == NATS_OK && !options.tls_ca.empty()) {
    s = natsOptions_LoadCATrustedCertificates(o, options.tls_ca.c_str());
    if (s == NATS_OK) s = natsOptions_SetSecure(o, true);
  }
  if (s != NATS_OK) {
    natsOptions_Destroy(o);
    return Outcome::Fatal(Describe("NATS options", s, static_cast<jsErrCode>(0)));
  }
  s = natsConnection_Connect(&j->nc_, o);
  natsOptions_Destroy(o);
  if (s != NATS_OK) return Failure("connect to NATS", s);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = options.api_timeout_ms;
  jo.PublishAsync.MaxPending = options.max_pending;
  jo.PublishAsync.AckHandler = &JetStream::OnAck;
  // The sink, not this object: libnats may still run the handler while the
  // JetStream is destroyed; the sink outlives libnats' threads.
  jo.PublishAsync.AckHandlerClosure = sink;
  jo.PublishAsync.StallWait = options.ack_timeout_ms;
  s = natsConnection_JetStream(&j->js_, j->nc_, &jo);
  if (s != NATS_OK) return Failure("JetStream context", s);
  *out = std::move(j);
  return {};
}

JetStream::~JetStream() {
  if (js_ != nullptr) {
    DropPending();
    jsCtx_Destroy(js_);
  }
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
    natsConnection_Destroy(nc_);
  }
}

Outcome JetStream::Ensure(const StreamSpec& spec) {
  spec_ = spec;
  msg_id_prefix_ = spec.log_id + ":";
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, spec.name.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const std::string description = Description(spec.log_id);
    const char* subjects[] = {spec.subject.c_str()};
    cfg.Name = spec.name.c_str();
    cfg.Description = description.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = spec.replicas;
    cfg.DenyDelete = true;
    cfg.DenyPurge = true;
    cfg.Duplicates = spec.duplicate_window_ns;
    jerr = static_cast<jsErrCode>(0);
    s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) {  // another wal-ship made it first
      jerr = static_cast<jsErrCode>(0);
      s = js_GetStreamInfo(&si, js_, spec.name.c_str(), nullptr, &jerr);
    }
    if (s != NATS_OK && Unmendable(jerr)) {
      return Outcome::Fatal(Describe(("create stream " + spec.name).c_str(), s, jerr));
    }
    if (s != NATS_OK) return Failure(("create stream " + spec.name).c_str(), s, jerr);
  } else if (s != NATS_OK) {
    return Failure(("look up stream " + spec.name).c_str(), s, jerr);
  }
  Outcome result;
  const char* desc = si->Config != nullptr ? si->Config->Description : nullptr;
  if (desc == nullptr || std::strncmp(desc, "wald log ", 9) != 0) {
    result = Outcome::Fatal("stream " + spec.name + " was not made by wal-ship (its description is \"" +
                            (desc ? desc : "") + "\"): refusing to publish into it");
  } else if (Description(spec.log_id) != desc) {
    result = Outcome::Fatal("stream " + spec.name + " holds " + (desc + 5) + ", not wald log " + spec.log_id +
                            ": refusing to mix two logs in one stream (use --stream for this log)");
  } else {
    bool has_subject = false;
    for (int i = 0; i < si->Config->SubjectsLen; ++i) has_subject |= spec.subject == si->Config->Subjects[i];
    if (!has_subject) result = Outcome::Fatal("stream " + spec.name + " does not take subject " + spec.subject);
  }
  jsStreamInfo_Destroy(si);
  return result;
}

Outcome JetStream::ReadEnd(StreamEnd* end) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, spec_.name.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return Failure(("stream info of " + spec_.name).c_str(), s, jerr);
  const uint64_t last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  *end = StreamEnd{};
  if (last == 0) return {};
  natsMsg* m = nullptr;
  s = js_GetMsg(&m, js_, spec_.name.c_str(), last, nullptr, &jerr);
  if (s != NATS_OK) return Failure(("read message " + std::to_string(last) + " of " + spec_.name).c_str(), s, jerr);
  const char* seq = nullptr;
  const char* log = nullptr;
  natsMsgHeader_Get(m, kSeqHeader, &seq);
  natsMsgHeader_Get(m, kLogIdHeader, &log);
  Outcome result;
  uint64_t wald_seq = 0;
  if (!ParseU64(seq, &wald_seq) || log == nullptr) {
    result = Outcome::Fatal("message " + std::to_string(last) + " of stream " + spec_.name + " has no " + kSeqHeader +
                            "/" + kLogIdHeader + " headers: it was not shipped by wal-ship");
  } else if (spec_.log_id != log) {
    result = Outcome::Fatal("the last message of stream " + spec_.name + " is from wald log " + log + ", not " +
                            spec_.log_id);
  } else {
    *end = StreamEnd{last, wald_seq};
  }
  natsMsg_Destroy(m);
  return result;
}

Outcome JetStream::Publish(const Outgoing& r) {
  natsMsg* m = nullptr;
  natsStatus s = natsMsg_Create(&m, spec_.subject.c_str(), nullptr, reinterpret_cast<const char*>(r.payload.data()),
                                static_cast<int>(r.payload.size()));
  const std::string seq = std::to_string(r.seq);
  const std::string id = msg_id_prefix_ + seq;
  // Set by hand: nats.c leaves the header out when the expected value is 0,
  // and the first message of a stream must expect exactly that.
  const std::string expected = std::to_string(r.expected_last);
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", id.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", expected.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m, kSeqHeader, seq.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m, kLogIdHeader, spec_.log_id.c_str());
  if (s == NATS_OK && r.time_ns != 0) s = natsMsgHeader_Set(m, kTimeHeader, std::to_string(r.time_ns).c_str());
  if (s == NATS_OK && r.has_producer) {
    const std::string who =
        "pid=" + std::to_string(r.pid) + " uid=" + std::to_string(r.uid) + " gid=" + std::to_string(r.gid);
    s = natsMsgHeader_Set(m, kProducerHeader, who.c_str());
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = options_.ack_timeout_ms;
  if (s == NATS_OK) s = js_PublishMsgAsync(js_, &m, &po);
  natsMsg_Destroy(m);  // no-op once the library took it
  if (s == NATS_MAX_PAYLOAD) {
    return Outcome::Fatal("record seq " + seq + " (" + std::to_string(r.payload.size()) +
                          " bytes, with headers) is over the NATS servers' max_payload of " +
                          std::to_string(MaxPayload()) + " bytes: raise max_payload, or lower wald's --max-record");
  }
  if (s != NATS_OK) return Failure(("publish seq " + seq).c_str(), s);
  published_ = true;
  return {};
}

void JetStream::DropPending() {
  // libnats 3.4.1 crashes here before the first async publish.
  if (!published_) return;
  natsMsgList pending{};
  if (js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) natsMsgList_Destroy(&pending);
}

Outcome JetStream::WaitPending(int timeout_ms) {
  if (!published_) return {};
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = timeout_ms;
  natsStatus s = js_PublishAsyncComplete(js_, &po);
  if (s != NATS_OK) return Failure("wait for JetStream acks", s);
  return {};
}

std::string JetStream::ConnectedUrl() const {
  char buf[256] = {};
  if (natsConnection_GetConnectedUrl(nc_, buf, sizeof buf) != NATS_OK) return "";
  return buf;
}

int64_t JetStream::MaxPayload() const { return natsConnection_GetMaxPayload(nc_); }

void JetStream::OnAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* sink = static_cast<AckSink*>(closure);
  const char* v = nullptr;
  uint64_t seq = 0;
  if (msg != nullptr && natsMsgHeader_Get(msg, kSeqHeader, &v) == NATS_OK) ParseU64(v, &seq);
  if (pa != nullptr) {
    // A duplicate's ack names where the first copy is stored: as true.
    sink->Acked(seq, pa->Sequence);
  } else if (pae != nullptr) {
    std::string why = pae->ErrText != nullptr && *pae->ErrText != '\0' ? pae->ErrText : natsStatus_GetText(pae->Err);
    if (pae->ErrCode != 0) why += " (JetStream error " + std::to_string(static_cast<int>(pae->ErrCode)) + ")";
    sink->Failed(seq, std::move(why), pae->ErrCode == JSStreamMessageExceedsMaximumErr);
  }
  natsMsg_Destroy(msg);
}

}  // namespace wald::ship
