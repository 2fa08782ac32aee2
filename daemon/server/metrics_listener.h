// MetricsListener: `--metrics-listen ADDR:PORT`, a minimal HTTP/1.x
// endpoint on the loop thread that answers `GET /metrics` with the
// Prometheus text exposition (openmetrics.h) and closes the connection.
//
// Bounded, since anyone who can reach the port can use it: at most
// kMaxConnections at once (more are closed at accept), a request of at most
// kMaxRequest bytes, and a request not complete within kRequestTimeoutMs is
// dropped. Anything but GET /metrics gets 404 (or 400 for no request line).
// The body is rendered at most once per kRenderEveryMs (answers in between
// reuse it), so that a client scraping in a loop costs the loop thread a
// copy, not a rendering; a request's end is looked for only in the bytes
// that just arrived, so one sent a byte at a time costs no rescans.
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
  static constexpr uint64_t kRenderEveryMs = 1000;

  // `render` produces the body of each answer.
  explicit MetricsListener(std::function<std::string()> render);
  ~MetricsListener();
  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;

  storage::Status Start(uv_loop_t* loop, const std::string& address);
  // The port it listens on (after Start).
  uint16_t port() const;
  // Stops listening and closes every connection (their handles close in a
  // later loop iteration).
  void Close();

 private:
  struct Conn;
  static void OnConnection(uv_stream_t* s, int status);
  void Answer(Conn* c);
  void Drop(Conn* c);

  std::function<std::string()> render_;
  std::string body_;             // the last rendering
  uint64_t rendered_at_ms_ = 0;  // uv_now() when it was made
  bool rendered_ = false;
  uv_loop_t* loop_ = nullptr;
  LoopHandle<uv_tcp_t> tcp_;
  std::unordered_set<Conn*> conns_;  // open ones; each deletes itself in its close callback
};

}  // namespace wald::server
