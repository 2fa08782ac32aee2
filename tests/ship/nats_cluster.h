// Test helper: a JetStream cluster of real nats-server processes on 127.0.0.1.
//
// Each node has its own client, cluster (route) and monitoring ports, picked
// free at construction (below the kernel's ephemeral range, so that a killed
// node's ports are still free when it is started again), its own config file
// DIR/nI.conf, store dir DIR/sI and log file DIR/nI.log (the nodes never write
// to the test's stdout/stderr). Nodes are named n0..nN-1 and form the cluster
// "wald-test"; a single node runs JetStream without a cluster block.
//
// Every wait is bounded; every process is signalled by its pid and reaped.
// Health and leaders come from the monitoring endpoints (/healthz, /jsz),
// fetched with a small HTTP/1.0 client. Not thread-safe.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace wald::test {

class NatsCluster {
 public:
  // Starts `nodes` servers and waits (~30 s) until every node answers /healthz
  // ok and knows a JetStream meta leader; on failure kills them all and throws
  // std::runtime_error with the nodes' log tails.
  explicit NatsCluster(const std::string& dir, int nodes = 3);
  ~NatsCluster();  // SIGKILLs every node still running, reaps them
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  std::string Url(int i) const;  // nats://127.0.0.1:PORT
  std::string Urls() const;      // every node's, comma-separated
  pid_t pid(int i) const;        // -1 if not running (reaps a node that exited)
  void Signal(int i, int sig);   // e.g. SIGSTOP / SIGCONT; no-op if not running
  // Signals node i (and SIGCONTs it, so that a stopped node acts on `sig`),
  // then reaps it: waits up to 10 s, then SIGKILLs. No-op if not running.
  void Kill(int i, int sig = SIGKILL);
  // Starts node i again with the same ports, config and store; waits (10 s)
  // until its monitoring port answers, not until it is healthy. Throws if it
  // is running or exits during start-up.
  void Start(int i);
  // True once every running node answers /healthz ok (which in a cluster also
  // means its streams are current) and, with more than one node, every running
  // node knows the meta leader. A stopped (SIGSTOP) node counts as unhealthy.
  // On false, unhealthy() says which node failed which check, last time.
  bool WaitHealthy(int timeout_ms);
  const std::string& unhealthy() const { return unhealthy_; }
  std::string LogTails() const;  // the last 30 lines of each node's log
  // The index of the node leading stream `stream` (account $G), or -1 if none
  // is known within timeout_ms. A node counts as leader when it says so itself
  // and no other self-declared leader is named by as many nodes.
  int StreamLeader(const std::string& stream, int timeout_ms);
  std::string Log(int i) const;  // what node i wrote so far (its log file)

 private:
  struct Node {
    int client_port = 0, route_port = 0, http_port = 0;
    std::string conf, log;
    pid_t pid = -1;
  };
  void PickPorts();
  void WriteConfig(int i) const;
  void Spawn(int i);
  bool Reap(int i) const;  // true if node i has exited (and was reaped)
  // Sets *why (if not null) to what failed.
  bool Healthy(int i, int timeout_ms, std::string* why = nullptr) const;
  void KillAll();

  std::string dir_;
  mutable std::vector<Node> nodes_;
  std::string unhealthy_;
};

}  // namespace wald::test
