#include "stream_dump.h"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace wald::test {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRetryBudget = std::chrono::seconds(20);
constexpr auto kRetryPause = std::chrono::milliseconds(100);

std::string Error(const std::string& what, natsStatus s, jsErrCode e) {
  std::string text = what + ": " + natsStatus_GetText(s);
  if (e != 0) text += " (JetStream error " + std::to_string(static_cast<int>(e)) + ")";
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0') text += std::string(": ") + last;
  return text;
}

// A connection and JetStream context, freed on scope exit.
class Session {
 public:
  explicit Session(const std::string& urls) {
    std::vector<std::string> list;
    for (size_t start = 0; start <= urls.size();) {
      size_t end = std::min(urls.find(',', start), urls.size());
      if (end > start) list.push_back(urls.substr(start, end - start));
      start = end + 1;
    }
    if (list.empty()) throw std::runtime_error("no NATS url given");
    std::vector<const char*> servers;
    for (const std::string& u : list) servers.push_back(u.c_str());
    natsStatus s = natsOptions_Create(&opts_);
    if (s == NATS_OK) s = natsOptions_SetServers(opts_, servers.data(), static_cast<int>(servers.size()));
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts_, 2000);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts_, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts_, 100);
    if (s != NATS_OK) {
      Close();
      throw std::runtime_error(Error("nats options", s, static_cast<jsErrCode>(0)));
    }
    const auto deadline = Clock::now() + kRetryBudget;
    while ((s = natsConnection_Connect(&nc_, opts_)) != NATS_OK) {
      if (Clock::now() > deadline) {
        std::string why = Error("connect to " + urls, s, static_cast<jsErrCode>(0));
        Close();
        throw std::runtime_error(why);
      }
      std::this_thread::sleep_for(kRetryPause);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;  // per request: a retry comes sooner than after the default 5 s
    if ((s = natsConnection_JetStream(&js_, nc_, &jo)) != NATS_OK) {
      Close();
      throw std::runtime_error(Error("JetStream context", s, static_cast<jsErrCode>(0)));
    }
  }
  ~Session() { Close(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  jsCtx* js() const { return js_; }

 private:
  void Close() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(nc_);
    natsOptions_Destroy(opts_);
    js_ = nullptr;
    nc_ = nullptr;
    opts_ = nullptr;
  }
  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// The stream's first and last sequence.
std::pair<uint64_t, uint64_t> Bounds(const Session& session, const std::string& stream) {
  const auto deadline = Clock::now() + kRetryBudget;
  for (;;) {
    jsStreamInfo* si = nullptr;
    jsErrCode e = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, session.js(), stream.c_str(), nullptr, &e);
    if (s == NATS_OK) {
      std::pair<uint64_t, uint64_t> bounds{si->State.FirstSeq, si->State.LastSeq};
      jsStreamInfo_Destroy(si);
      return bounds;
    }
    if (Clock::now() > deadline) throw std::runtime_error(Error("stream info " + stream, s, e));
    std::this_thread::sleep_for(kRetryPause);
  }
}

ShippedMessage ToShipped(natsMsg* m, uint64_t seq) {
  ShippedMessage out;
  out.stream_seq = seq;
  out.subject = natsMsg_GetSubject(m);
  if (const char* data = natsMsg_GetData(m)) out.data.assign(data, static_cast<size_t>(natsMsg_GetDataLength(m)));
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(m, &keys, &count) == NATS_OK) {
    std::unique_ptr<const char*, decltype(&std::free)> free_keys(keys, &std::free);
    for (int k = 0; k < count; ++k) {
      const char* value = nullptr;
      if (natsMsgHeader_Get(m, keys[k], &value) != NATS_OK || value == nullptr) value = "";
      out.headers.emplace(keys[k], value);
    }
  }
  return out;
}

}  // namespace

std::vector<ShippedMessage> DumpStream(const std::string& urls, const std::string& stream) {
  Session session(urls);
  const auto [first, last] = Bounds(session, stream);
  std::vector<ShippedMessage> out;
  for (uint64_t seq = std::max<uint64_t>(first, 1); seq <= last; ++seq) {
    const auto deadline = Clock::now() + kRetryBudget;
    for (;;) {
      natsMsg* m = nullptr;
      jsErrCode e = static_cast<jsErrCode>(0);
      natsStatus s = js_GetMsg(&m, session.js(), stream.c_str(), seq, nullptr, &e);
      if (s == NATS_OK) {
        std::unique_ptr<natsMsg, decltype(&natsMsg_Destroy)> msg(m, &natsMsg_Destroy);
        out.push_back(ToShipped(m, seq));
        break;
      }
      if (s == NATS_NOT_FOUND && e == JSNoMessageFoundErr) break;  // deleted
      if (Clock::now() > deadline) {
        throw std::runtime_error(Error("get " + stream + " seq " + std::to_string(seq), s, e));
      }
      std::this_thread::sleep_for(kRetryPause);
    }
  }
  return out;
}

uint64_t StreamLastSeq(const std::string& urls, const std::string& stream) {
  Session session(urls);
  return Bounds(session, stream).second;
}

}  // namespace wald::test
