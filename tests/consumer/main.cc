// Links wald::client from an installed package; with a socket argument it
// appends one record and prints its seq.
#include <wald/client.h>
#include <wald/wald.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (std::strcmp(wald_strerror(WALD_E_DAEMON_GONE), "daemon gone") != 0) return 1;
  auto c = wald::connect(argc > 1 ? argv[1] : "/nonexistent/wald.sock");
  if (argc == 1) return c.ok() || c.error().code != wald::ErrorCode::kDaemonGone ? 1 : 0;
  if (!c.ok()) return 1;
  auto seq = c->append("from the consumer");
  if (!seq.ok()) return 1;
  std::printf("seq %llu\n", static_cast<unsigned long long>(seq.value()));
  return 0;
}
