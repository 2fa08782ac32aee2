// access_probe SOCKET: connects to wald and appends one record, as whatever
// user and groups it was started with (access_test runs it under setpriv).
// Exit 0: appended; 3: refused with NotPermitted; 1: any other failure.
#include <cstdio>

#include "wald/client.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: access_probe SOCKET\n");
    return 2;
  }
  auto c = wald::connect(argv[1]);
  wald::Error e = c.ok() ? c->append("probe").error() : c.error();
  if (e.ok()) return 0;
  std::fprintf(stderr, "access_probe: %s: %s\n", wald::error_code_name(e.code), e.message.c_str());
  return e.code == wald::ErrorCode::kNotPermitted ? 3 : 1;
}
