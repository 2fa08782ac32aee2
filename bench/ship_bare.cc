// ship-bare: the reference for bench/ship. Publishes N messages shaped like
// wal-ship's (payload of SIZE bytes; Nats-Msg-Id, Nats-Expected-Last-Sequence,
// Wald-Seq and Wald-Log-Id headers) to a fresh stream, pipelined with the
// same max pending, and waits for every ack: what libnats and the cluster
// allow without reading a wald log, keeping a hold or resuming.
//
//   ship-bare URLS STREAM N SIZE MAX_PENDING REPLICAS   -> "records/s"
#include <nats/nats.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: ship-bare URLS STREAM N SIZE MAX_PENDING REPLICAS\n");
    return 2;
  }
  std::vector<std::string> urls;
  std::stringstream in(argv[1]);
  for (std::string u; std::getline(in, u, ',');) urls.push_back(u);
  std::vector<const char*> servers;
  for (const auto& u : urls) servers.push_back(u.c_str());
  const std::string stream = argv[2], subject = std::string("bare.") + argv[2];
  const long n = std::atol(argv[3]), size = std::atol(argv[4]);
  natsOptions* o = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsOptions_Create(&o);
  natsOptions_SetServers(o, servers.data(), static_cast<int>(servers.size()));
  if (natsConnection_Connect(&nc, o) != NATS_OK) return 1;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = std::atol(argv[5]);
  jo.PublishAsync.StallWait = 10000;
  if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK) return 1;
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {subject.c_str()};
  cfg.Name = stream.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = std::atol(argv[6]);
  if (js_AddStream(nullptr, js, &cfg, nullptr, nullptr) != NATS_OK) return 1;
  const std::string payload(static_cast<size_t>(size), 'p');
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 1; i <= n; ++i) {
    natsMsg* m = nullptr;
    natsMsg_Create(&m, subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size()));
    const std::string seq = std::to_string(i), last = std::to_string(i - 1);
    const std::string id = "00112233445566778899aabbccddeeff:" + seq;
    natsMsgHeader_Set(m, "Nats-Msg-Id", id.c_str());
    natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", last.c_str());
    natsMsgHeader_Set(m, "Wald-Seq", seq.c_str());
    natsMsgHeader_Set(m, "Wald-Log-Id", "00112233445566778899aabbccddeeff");
    if (js_PublishMsgAsync(js, &m, nullptr) != NATS_OK) return 1;
    natsMsg_Destroy(m);
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  if (js_PublishAsyncComplete(js, &po) != NATS_OK) return 1;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  jsStreamInfo* si = nullptr;
  js_GetStreamInfo(&si, js, stream.c_str(), nullptr, nullptr);
  const unsigned long long stored = si != nullptr ? si->State.Msgs : 0;
  jsStreamInfo_Destroy(si);
  std::printf("%.0f %llu\n", static_cast<double>(n) / s, stored);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(o);
  nats_Close();
  return stored == static_cast<unsigned long long>(n) ? 0 : 1;
}
