#include "server/doorbell.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace wald::server {

Doorbell::~Doorbell() {
  if (fd_ >= 0) ::close(fd_);
}

int Doorbell::Open(uv_loop_t* loop, void (*on_ring)(void*), void* arg) {
  fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd_ < 0) return -errno;
  on_ring_ = on_ring;
  arg_ = arg;
  if (int rc = uv_poll_init(loop, poll_.get(), fd_); rc != 0) return rc;
  poll_.Opened(this);
  return uv_poll_start(poll_.get(), UV_READABLE, OnReadable);
}

void Doorbell::Ring() {
  // acq_rel: the loop's exchange that reads this value (or one after it)
  // sees everything this thread did before. Already set: the loop has not
  // yet cleared it, so it reads the state after this store.
  if (rung_.exchange(true, std::memory_order_acq_rel)) return;
  const uint64_t one = 1;
  while (::write(fd_, &one, sizeof one) < 0) {
    if (errno == EINTR) continue;
    // With the flag left set no later ring would write again, and the loop
    // would never hear of another durable seq: its acks would hang. The
    // counter cannot overflow (each write follows a read that drained it),
    // so this is a broken descriptor: stop, loudly.
    spdlog::critical("waking the event loop: write to its eventfd: {}", std::strerror(errno));
    std::abort();
  }
}

void Doorbell::OnReadable(uv_poll_t* h, int status, int /*events*/) {
  if (status < 0) {
    // libuv has stopped watching: no ring would wake the loop again.
    spdlog::critical("watching the writer's eventfd: {}", uv_strerror(status));
    std::abort();
  }
  auto* d = static_cast<Doorbell*>(h->data);
  uint64_t n;
  while (::read(d->fd_, &n, sizeof n) < 0 && errno == EINTR) {
  }
  // Cleared before the state is read: a Ring that finds it set is seen in
  // the state; one that finds it clear writes the eventfd again.
  if (!d->rung_.exchange(false, std::memory_order_acq_rel)) return;
  d->on_ring_(d->arg_);
}

}  // namespace wald::server
