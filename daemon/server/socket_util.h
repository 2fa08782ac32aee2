// Unix socket helpers for the server: claiming a socket path, peer credentials.
#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

#include "storage/status.h"

namespace wald::server {

// Makes `path` free to bind: OK if nothing is there; a socket file that
// refuses connections (left by a dead daemon) is removed; a live one, or
// anything that is not a socket, is an error that says so.
storage::Status ClaimSocketPath(const std::string& path);

// SO_PEERCRED of a connected Unix socket.
bool PeerCredentials(int fd, ucred* out);

// SO_PEERGROUPS: the peer's supplementary groups at connect time.
bool PeerGroups(int fd, std::vector<gid_t>* out);

}  // namespace wald::server
