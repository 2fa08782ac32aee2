// MetricsListener: `--metrics-listen ADDR:PORT`, a minimal HTTP/1.x
// endpoint on the loop thread that answers `GET /metrics` with the
// Prometheus text exposition (openmetrics.h) and closes the connection.
//
// Bounded, since anyone who can reach the port can use it: at most
// kMaxConnections at once (more are closed at accept), a request of at most
// kMaxRequest bytes, and a request not complete within kRequestTimeoutMs is
// dropped. Anything but GET /metrics gets 404 (or 400 for no request line).
// Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>

#include "server/loop_handle.h"
#include "storage/status.h"

namespace wald::server {

// "127.0.0.1:9464", "[::1]:9464", ":9464" (all IPv4 addresses). false with a
// message if it is none of these.
bool ParseListenAddress(const std::string& text, sockaddr_storage* out, std::string* error);

class MetricsListener {
 public:
  static constexpr size_t kMaxConnections = 16;
  static constexpr size_t kMaxRequest = 8192;
  static constexpr uint64_t kRequestTimeoutMs = 5000;

  // `render` produces the body of each answer.
  explicit MetricsListener(std::function<std::string()> render);
  ~MetricsListener();
  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;

  storage::Status Start(uv_loop_t* loop, const std::string& address);
  // Stops listening and closes every connection (their handles close in a
  // later loop iteration).
  void Close();

 private:
  struct Conn;
  static void OnConnection(uv_stream_t* s, int status);
  void Answer(Conn* c);
  void Drop(Conn* c);

  std::function<std::string()> render_;
  uv_loop_t* loop_ = nullptr;
  LoopHandle<uv_tcp_t> tcp_;
  std::unordered_set<Conn*> conns_;  // open ones; each deletes itself in its close callback
};

}  // namespace wald::server
