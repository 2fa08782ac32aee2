#include "server/stop_signals.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>

namespace wald::server {

StopSignals::StopSignals(std::function<void(const char*)> on_stop) : on_stop_(std::move(on_stop)) {}

StopSignals::~StopSignals() {
  if (fd_ >= 0) ::close(fd_);
}

storage::Status StopSignals::Start(uv_loop_t* loop) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    return storage::Status::IoError("blocking SIGTERM and SIGINT", rc);
  }
  fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) return storage::Status::IoError("signalfd for SIGTERM and SIGINT", errno);
  if (int rc = uv_poll_init(loop, poll_.get(), fd_); rc != 0) {
    return storage::Status::IoError("watching the signalfd", -rc);
  }
  poll_.Opened(this);
  if (int rc = uv_poll_start(poll_.get(), UV_READABLE, OnReadable); rc != 0) {
    return storage::Status::IoError("watching the signalfd", -rc);
  }
  return storage::Status::OK();
}

void StopSignals::OnReadable(uv_poll_t* h, int status, int /*events*/) {
  auto* s = static_cast<StopSignals*>(h->data);
  if (status < 0) {
    // libuv stops the handle after an error: no stop signal would be heard
    // again, so stop now, the way SIGTERM would.
    spdlog::error("reading SIGTERM/SIGINT from the signalfd failed: {}", uv_strerror(status));
    s->on_stop_("signalfd error");
    return;
  }
  signalfd_siginfo si;
  while (::read(s->fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    s->on_stop_(si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
  }
}

}  // namespace wald::server
