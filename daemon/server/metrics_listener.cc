#include "server/metrics_listener.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cstring>
#include <string_view>

namespace wald::server {

bool ParseListenAddress(const std::string& text, sockaddr_storage* out, std::string* error) {
  std::memset(out, 0, sizeof *out);
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    *error = "'" + text + "' is not ADDR:PORT (e.g. 127.0.0.1:9464, [::1]:9464)";
    return false;
  }
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  char* end = nullptr;
  const unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (*end != '\0' || port == 0 || port > 65535 || port_text[0] < '0' || port_text[0] > '9') {
    *error = "'" + port_text + "' is not a port (1 to 65535)";
    return false;
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(out);
    if (uv_ip6_addr(host.c_str(), static_cast<int>(port), a6) != 0) {
      *error = "'" + host + "' is not an IPv6 address";
      return false;
    }
    return true;
  }
  auto* a4 = reinterpret_cast<sockaddr_in*>(out);
  if (uv_ip4_addr(host.empty() ? "0.0.0.0" : host.c_str(), static_cast<int>(port), a4) != 0) {
    *error = "'" + host + "' is not an IPv4 address (IPv6 goes in brackets: [::1]:9464)";
    return false;
  }
  return true;
}

// One scrape: read the request, write the answer, close. Deleted in its
// close callback.
struct MetricsListener::Conn {
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_write_t write{};
  MetricsListener* owner = nullptr;
  std::array<char, kMaxRequest> in{};
  size_t len = 0;
  std::string out;
  int open_handles = 0;
  bool dropping = false;
};

MetricsListener::MetricsListener(std::function<std::string()> render) : render_(std::move(render)) {}

MetricsListener::~MetricsListener() = default;

storage::Status MetricsListener::Start(uv_loop_t* loop, const std::string& address) {
  loop_ = loop;
  sockaddr_storage addr;
  std::string error;
  if (!ParseListenAddress(address, &addr, &error)) return storage::Status::InvalidArgument("--metrics-listen " + error);
  uv_tcp_init(loop, tcp_.get());
  tcp_.Opened(this);
  if (int rc = uv_tcp_bind(tcp_.get(), reinterpret_cast<const sockaddr*>(&addr), 0); rc != 0) {
    return storage::Status::IoError("bind --metrics-listen " + address, -rc);
  }
  if (int rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_.get()), 64, OnConnection); rc != 0) {
    return storage::Status::IoError("listen on --metrics-listen " + address, -rc);
  }
  return storage::Status::OK();
}

uint16_t MetricsListener::port() const {
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getsockname(tcp_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
}

void MetricsListener::Close() {
  tcp_.Close();
  for (Conn* c : std::unordered_set<Conn*>(conns_)) Drop(c);
}

void MetricsListener::Drop(Conn* c) {
  if (c->dropping) return;
  c->dropping = true;
  conns_.erase(c);
  auto closed = [](uv_handle_t* h) {
    auto* conn = static_cast<Conn*>(h->data);
    if (--conn->open_handles == 0) delete conn;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), closed);
}

void MetricsListener::OnConnection(uv_stream_t* s, int status) {
  auto* self = static_cast<MetricsListener*>(s->data);
  if (status < 0) return;
  auto* c = new Conn;
  c->owner = self;
  uv_tcp_init(self->loop_, &c->tcp);
  uv_timer_init(self->loop_, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  self->conns_.insert(c);
  if (uv_accept(s, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0 || self->conns_.size() > kMaxConnections) {
    self->Drop(c);
    return;
  }
  uv_timer_start(
      &c->timer, [](uv_timer_t* t) { static_cast<Conn*>(t->data)->owner->Drop(static_cast<Conn*>(t->data)); },
      kRequestTimeoutMs, 0);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        // A full buffer gives libuv no room: the read fails (UV_ENOBUFS)
        // and the connection is dropped, request too large.
        auto* conn = static_cast<Conn*>(h->data);
        *buf = uv_buf_init(conn->in.data() + conn->len, static_cast<unsigned>(kMaxRequest - conn->len));
      },
      [](uv_stream_t* st, ssize_t n, const uv_buf_t*) {
        auto* conn = static_cast<Conn*>(st->data);
        if (n < 0) {
          conn->owner->Drop(conn);
          return;
        }
        // The end of the request may straddle the previous read: look from
        // 3 bytes before the new ones, never again at the whole request.
        const size_t from = conn->len >= 3 ? conn->len - 3 : 0;
        conn->len += static_cast<size_t>(n);
        const std::string_view fresh(conn->in.data() + from, conn->len - from);
        if (fresh.find("\r\n\r\n") != std::string_view::npos || fresh.find("\n\n") != std::string_view::npos) {
          uv_read_stop(st);
          conn->owner->Answer(conn);
        }
      });
}

void MetricsListener::Answer(Conn* c) {
  std::string status = "200 OK", body;
  const std::string_view req(c->in.data(), c->len);
  const std::string line(req.substr(0, req.find_first_of("\r\n")));
  if (line.rfind("GET /metrics ", 0) == 0 || line == "GET /metrics") {
    const uint64_t now = uv_now(loop_);
    if (!rendered_ || now - rendered_at_ms_ >= kRenderEveryMs) {
      body_ = render_();
      rendered_at_ms_ = now;
      rendered_ = true;
    }
    body = body_;
  } else if (line.rfind("GET ", 0) == 0) {
    status = "404 Not Found";
    body = "wald serves GET /metrics only\n";
  } else {
    status = "400 Bad Request";
    body = "wald serves GET /metrics only\n";
  }
  c->out = "HTTP/1.1 " + status + "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  uv_buf_t b = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
  c->write.data = c;
  const int rc = uv_write(&c->write, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1, [](uv_write_t* w, int) {
    auto* conn = static_cast<Conn*>(w->data);
    conn->owner->Drop(conn);
  });
  if (rc != 0) Drop(c);
}

}  // namespace wald::server
