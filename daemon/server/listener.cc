#include "server/listener.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "server/connection.h"
#include "server/socket_util.h"

namespace wald::server {

bool PeerAllowed(const AccessList& acl, bool peer_known, const ucred& peer, std::span<const gid_t> groups) {
  if (acl.uids.empty() && acl.gids.empty()) return true;
  if (!peer_known) return false;
  auto in = [](const std::vector<uint32_t>& list, uint32_t v) {
    return std::find(list.begin(), list.end(), v) != list.end();
  };
  return in(acl.uids, peer.uid) || in(acl.gids, peer.gid) ||
         std::any_of(groups.begin(), groups.end(), [&](gid_t g) { return in(acl.gids, g); });
}

Listener::Listener(ListenOptions options, std::function<void()> on_connection)
    : options_(std::move(options)), on_connection_(std::move(on_connection)) {}

Listener::~Listener() { RemoveSocketFile(); }

storage::Status Listener::Start(uv_loop_t* loop) {
  uv_pipe_init(loop, pipe_.get(), 0);
  pipe_.Opened(this);
  if (options_.listen_fd >= 0) {
    if (int rc = uv_pipe_open(pipe_.get(), options_.listen_fd); rc != 0) {
      return storage::Status::IoError("adopting listening socket fd " + std::to_string(options_.listen_fd), -rc);
    }
  } else {
    WALD_RETURN_IF_ERROR(ClaimSocketPath(options_.socket));
    // The socket is created with its final mode: a chmod after bind would
    // leave a window in which the umask's mode lets others connect. umask
    // is process-wide, but it can only take bits away from what another
    // thread creates meanwhile (storage's files are 0640 anyway).
    const mode_t old_mask = ::umask(0777 & ~options_.socket_mode);
    const int rc = uv_pipe_bind(pipe_.get(), options_.socket.c_str());
    ::umask(old_mask);
    if (rc != 0) return storage::Status::IoError("bind " + options_.socket, -rc);
    owns_socket_file_ = true;
  }
  if (int rc = uv_listen(reinterpret_cast<uv_stream_t*>(pipe_.get()), 1024, OnConnection); rc != 0) {
    return storage::Status::IoError("listen on " + options_.socket, -rc);
  }
  return storage::Status::OK();
}

void Listener::OnConnection(uv_stream_t* s, int status) {
  auto* l = static_cast<Listener*>(s->data);
  if (status < 0) {
    spdlog::warn("accept: {}", uv_strerror(status));
    return;
  }
  l->on_connection_();
}

int Listener::Accept(Connection* c) { return c->Accept(reinterpret_cast<uv_stream_t*>(pipe_.get())); }

void Listener::Close() { pipe_.Close(); }

void Listener::RemoveSocketFile() {
  if (!owns_socket_file_) return;
  ::unlink(options_.socket.c_str());
  owns_socket_file_ = false;
}

std::string Listener::Describe() const {
  return options_.listen_fd >= 0 ? "fd " + std::to_string(options_.listen_fd) + " from systemd" : options_.socket;
}

}  // namespace wald::server
