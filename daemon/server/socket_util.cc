#include "server/socket_util.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wald::server {

storage::Status ClaimSocketPath(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return storage::Status::OK();
    return storage::Status::IoError("stat " + path, errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return storage::Status::InvalidArgument(path + " exists and is not a socket; refusing to replace it");
  }
  if (st.st_uid != ::geteuid()) {  // not ours to remove, even if nothing listens
    return storage::Status::InvalidArgument(path + " is a socket owned by uid " + std::to_string(st.st_uid) +
                                            "; refusing to replace it");
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return storage::Status::InvalidArgument("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return storage::Status::IoError("socket", errno);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int e = errno;
  ::close(fd);
  if (rc == 0) {
    return storage::Status::Busy(path + " is in use by a running daemon (it accepted a connection)");
  }
  if (e != ECONNREFUSED) return storage::Status::IoError("probing " + path, e);
  spdlog::info("removing stale socket {} (nothing listens on it)", path);
  if (::unlink(path.c_str()) != 0) return storage::Status::IoError("unlink stale socket " + path, errno);
  return storage::Status::OK();
}

bool PeerCredentials(int fd, ucred* out) {
  socklen_t len = sizeof *out;
  return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, out, &len) == 0;
}

bool PeerGroups(int fd, std::vector<gid_t>* out) {
  out->resize(16);
  for (;;) {
    socklen_t len = static_cast<socklen_t>(out->size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, out->data(), &len) == 0) {
      out->resize(len / sizeof(gid_t));
      return true;
    }
    // ERANGE: len now says how much room the list needs.
    if (errno != ERANGE || len <= out->size() * sizeof(gid_t)) return false;
    out->resize(len / sizeof(gid_t));
  }
}

}  // namespace wald::server
