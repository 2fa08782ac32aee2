// Listener: the listening Unix socket (bound here, or adopted from systemd),
// and who may use it (--allow-uid / --allow-gid). Loop thread only.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "server/loop_handle.h"
#include "storage/status.h"

namespace wald::server {

class Connection;

struct AccessList {
  std::vector<uint32_t> uids;  // both empty: anyone who can open the socket
  std::vector<uint32_t> gids;
};

// Whether a peer with these credentials may connect: its uid is in `uids`,
// or its primary gid or one of its supplementary `groups` (SO_PEERGROUPS)
// is in `gids`. An unknown peer (no SO_PEERCRED) is allowed only when the
// list is empty.
bool PeerAllowed(const AccessList& acl, bool peer_known, const ucred& peer, std::span<const gid_t> groups);

struct ListenOptions {
  std::string socket;  // path to bind, or (with listen_fd) the name in messages
  uint32_t socket_mode = 0660;
  int listen_fd = -1;  // an already listening socket to adopt (systemd)
};

class Listener {
 public:
  // `on_connection` runs for each connection waiting to be accepted; it
  // calls Accept.
  Listener(ListenOptions options, std::function<void()> on_connection);
  ~Listener();  // removes the socket file it created
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds (claiming a stale socket file) and listens, or adopts listen_fd.
  storage::Status Start(uv_loop_t* loop);
  // Takes the next waiting connection into c (Connection::Accept).
  int Accept(Connection* c);
  // Stops accepting (a drain); the socket file stays until the destructor or
  // RemoveSocketFile, so that clients see "refused" rather than "missing".
  void Close();
  void RemoveSocketFile();
  std::string Describe() const;  // "socket PATH" or "fd N from systemd"

 private:
  static void OnConnection(uv_stream_t* s, int status);

  const ListenOptions options_;
  const std::function<void()> on_connection_;
  LoopHandle<uv_pipe_t> pipe_;
  bool owns_socket_file_ = false;
};

}  // namespace wald::server
