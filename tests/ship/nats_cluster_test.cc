// Self-test of the wal-ship test harness: a real 3-node JetStream cluster,
// a replicated stream read back with DumpStream, and a stream leader killed
// and started again without losing a message.
#include "nats_cluster.h"

#include <doctest/doctest.h>
#include <nats/nats.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include "stream_dump.h"

namespace wald::test {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/wald-nats-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

// A connection to every node of `cluster` and its JetStream context.
struct Client {
  explicit Client(const NatsCluster& cluster) {
    std::vector<std::string> urls;
    for (int i = 0; i < cluster.size(); ++i) urls.push_back(cluster.Url(i));
    std::vector<const char*> servers;
    for (const std::string& u : urls) servers.push_back(u.c_str());
    REQUIRE(natsOptions_Create(&opts) == NATS_OK);
    REQUIRE(natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size())) == NATS_OK);
    REQUIRE(natsOptions_SetMaxReconnect(opts, -1) == NATS_OK);
    REQUIRE(natsOptions_SetReconnectWait(opts, 100) == NATS_OK);
    REQUIRE(natsConnection_Connect(&nc, opts) == NATS_OK);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    REQUIRE(natsConnection_JetStream(&js, nc, &jo) == NATS_OK);
  }
  ~Client() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
  }
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
};

// Publishes message i (subject ship.log, header Wald-Seq: i), retrying for up
// to 20 s while the stream has no leader; returns its stream sequence. The
// failures seen on the way are appended to *failures.
uint64_t Publish(jsCtx* js, int i, std::string* failures) {
  const std::string data = "payload-" + std::to_string(i);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    natsMsg* m = nullptr;
    REQUIRE(natsMsg_Create(&m, "ship.log", nullptr, data.data(), static_cast<int>(data.size())) == NATS_OK);
    REQUIRE(natsMsgHeader_Set(m, "Wald-Seq", std::to_string(i).c_str()) == NATS_OK);
    jsPubAck* ack = nullptr;
    jsErrCode e = static_cast<jsErrCode>(0);
    natsStatus s = js_PublishMsg(&ack, js, m, nullptr, &e);
    natsMsg_Destroy(m);
    const uint64_t seq = s == NATS_OK && ack != nullptr ? ack->Sequence : 0;
    jsPubAck_Destroy(ack);
    if (seq != 0) return seq;
    *failures += std::string(natsStatus_GetText(s)) + " (jerr " + std::to_string(static_cast<int>(e)) + "); ";
    REQUIRE(Clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void CheckMessages(const std::vector<ShippedMessage>& got, int count) {
  REQUIRE(static_cast<int>(got.size()) == count);
  for (int i = 0; i < count; ++i) {
    CHECK(got[i].stream_seq == static_cast<uint64_t>(i + 1));
    CHECK(got[i].subject == "ship.log");
    CHECK(got[i].data == "payload-" + std::to_string(i + 1));
    REQUIRE(got[i].headers.count("Wald-Seq") == 1);
    CHECK(got[i].headers.at("Wald-Seq") == std::to_string(i + 1));
  }
}

TEST_CASE("nats cluster harness: replicated stream survives its leader being killed") {
  TempDir dir;
  auto t = Clock::now();
  NatsCluster cluster(dir.path, 3);
  MESSAGE("cluster healthy after " << SecondsSince(t) << " s");
  Client client(cluster);

  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = "SHIP";
  const char* subjects[] = {"ship.>"};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Replicas = 3;
  cfg.Storage = js_FileStorage;
  jsStreamInfo* si = nullptr;
  jsErrCode e = static_cast<jsErrCode>(0);
  REQUIRE(js_AddStream(&si, client.js, &cfg, nullptr, &e) == NATS_OK);
  jsStreamInfo_Destroy(si);

  std::string failures;
  for (int i = 1; i <= 10; ++i) REQUIRE(Publish(client.js, i, &failures) == static_cast<uint64_t>(i));
  CheckMessages(DumpStream(cluster.Urls(), "SHIP"), 10);

  const int leader = cluster.StreamLeader("SHIP", 10000);
  REQUIRE(leader >= 0);
  t = Clock::now();
  cluster.Kill(leader);
  CHECK(cluster.pid(leader) == -1);
  int next = -1;
  while (SecondsSince(t) < 20 && (next < 0 || next == leader)) {
    next = cluster.StreamLeader("SHIP", 20000 - static_cast<int>(SecondsSince(t) * 1000));
  }
  REQUIRE(next >= 0);
  REQUIRE(next != leader);
  MESSAGE("new stream leader n" << next << " (was n" << leader << ") after " << SecondsSince(t) << " s");
  failures.clear();
  REQUIRE(Publish(client.js, 11, &failures) == 11);
  MESSAGE("publish 11 acked " << SecondsSince(t)
                              << " s after the kill; failed tries: " << (failures.empty() ? "none" : failures));

  t = Clock::now();
  cluster.Start(leader);
  REQUIRE(cluster.WaitHealthy(30000));
  MESSAGE("restarted node healthy after " << SecondsSince(t) << " s");
  CheckMessages(DumpStream(cluster.Urls(), "SHIP"), 11);
  CHECK(StreamLastSeq(cluster.Urls(), "SHIP") == 11);
  CHECK(cluster.Log(leader).find("Starting nats-server") != std::string::npos);
}

}  // namespace
}  // namespace wald::test
