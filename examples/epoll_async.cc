// Drives a wald client from an application's own epoll loop: the client's
// fd() goes into the epoll set next to the application's other descriptors
// (here stdin), and poll(0) runs whenever it is ready. Appends are pipelined:
// each line read from stdin is sent without waiting, and its seq is printed
// from the callback once it is durable.
//   seq 1 100000 | epoll_async [SOCKET]
#include <sys/epoll.h>
#include <unistd.h>

#include <wald/client.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  const std::string socket = argc > 1 ? argv[1] : "./wald.sock";
  auto client = wald::connect(socket, {"epoll_async"});
  if (!client.ok()) {
    std::fprintf(stderr, "epoll_async: %s\n", client.error().message.c_str());
    return 1;
  }
  wald::Client& c = client.value();
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = c.fd();
  epoll_ctl(ep, EPOLL_CTL_ADD, c.fd(), &ev);
  ev.data.fd = STDIN_FILENO;
  epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev);

  bool input_open = true;
  int failures = 0;
  std::string pending;  // a partial line
  while (input_open || c.inflight() > 0) {
    // Ask for EPOLLOUT only while the client has bytes it could not send.
    ev.events = c.wants_write() ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.fd = c.fd();
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd(), &ev);
    epoll_event ready[4];
    int n = epoll_wait(ep, ready, 4, -1);
    for (int i = 0; i < n; ++i) {
      if (ready[i].data.fd == c.fd()) {
        if (wald::Error e = c.poll(0); !e.ok()) {
          std::fprintf(stderr, "epoll_async: %s\n", e.message.c_str());
          return 1;
        }
        continue;
      }
      char buf[65536];
      ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
      if (got <= 0) {
        input_open = false;
        epoll_ctl(ep, EPOLL_CTL_DEL, STDIN_FILENO, nullptr);
        continue;
      }
      pending.append(buf, static_cast<size_t>(got));
      size_t start = 0, nl;
      while ((nl = pending.find('\n', start)) != std::string::npos) {
        std::string line = pending.substr(start, nl - start);
        start = nl + 1;
        wald::Error e = c.append_async(line, [&failures, line](wald::Result<wald::Seq> r) {
          if (r.ok()) {
            std::printf("%llu %s\n", static_cast<unsigned long long>(r.value()), line.c_str());
          } else {
            std::fprintf(stderr, "append failed: %s\n", r.error().message.c_str());
            ++failures;
          }
        });
        if (!e.ok()) {
          std::fprintf(stderr, "epoll_async: %s\n", e.message.c_str());
          return 1;
        }
      }
      pending.erase(0, start);
      (void)c.flush();  // one write for everything this read produced
    }
  }
  close(ep);
  return failures == 0 ? 0 : 1;
}
