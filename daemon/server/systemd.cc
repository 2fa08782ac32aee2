#include "server/systemd.h"

#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

namespace wald::server::systemd {

void Notify(const std::string& state) {
  // unset_environment=0: children (none) would inherit; the watchdog needs
  // NOTIFY_SOCKET for the whole run.
  (void)sd_notify(0, state.c_str());
}

uint64_t WatchdogUsec() {
  uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

storage::Result<int> ListenFd() {
  int n = sd_listen_fds(1);  // 1: unset LISTEN_* so they do not leak further
  if (n < 0) return storage::Status::IoError("sd_listen_fds", -n);
  if (n == 0) return -1;
  if (n > 1) {
    return storage::Status::InvalidArgument("systemd passed " + std::to_string(n) +
                                            " sockets; wald takes exactly one (ListenStream=)");
  }
  const int fd = SD_LISTEN_FDS_START;
  int r = sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0);
  if (r < 0) return storage::Status::IoError("sd_is_socket_unix", -r);
  if (r == 0) {
    return storage::Status::InvalidArgument("the socket systemd passed is not a listening Unix stream socket");
  }
  return fd;
}

bool StderrIsJournal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  struct stat st;
  if (::fstat(2, &st) != 0) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  return dev == st.st_dev && ino == st.st_ino;
}

}  // namespace wald::server::systemd
