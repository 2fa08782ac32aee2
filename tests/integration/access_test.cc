// --allow-uid and --allow-gid where wald is deployed (#20 item 5): wald runs
// under the shipped unit's user namespacing (PrivateUsers=yes is mimicked by
// `unshare --user --map-root-user`: only root maps, every other uid is seen
// as 65534), and real peers of other uids and groups connect through
// access_probe under setpriv. Those need root (to take other uids) and are
// skipped otherwise. Also who may Trim.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "wald/client.h"

using namespace wald::test;

namespace {

// The namespacing of systemd/wald.service.in, as a wrapper for the daemon.
Wrapper UnitNamespacing() {
  std::ifstream f(std::string(WALD_SOURCE_DIR) + "/systemd/wald.service.in");
  std::stringstream unit;
  unit << f.rdbuf();
  REQUIRE_FALSE(unit.str().empty());
  if (std::regex_search(unit.str(), std::regex("(^|\n)PrivateUsers=(yes|true|1)"))) {
    return {{"unshare", "--user", "--map-root-user"}};
  }
  return {};
}

// Runs access_probe as uid/gid with `groups` (comma-separated, or "" for
// none): 0 appended, 3 NotPermitted.
int Probe(const std::string& socket, uid_t uid, gid_t gid, const std::string& groups) {
  std::string out;
  const int rc = RunProgram({"/usr/bin/setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(gid),
                             groups.empty() ? "--clear-groups" : "--groups=" + groups, ACCESS_PROBE_BINARY, socket},
                            &out);
  if (rc != 0) MESSAGE("probe as uid " << uid << " gid " << gid << " groups [" << groups << "]: " << out);
  return rc;
}

struct AccessFixture {
  AccessFixture() { ::chmod(tmp.path().c_str(), 0755); }  // other uids reach the socket
  TempDir tmp;
};

}  // namespace

TEST_CASE_FIXTURE(AccessFixture, "--allow-uid admits that uid, and only it, under the unit's namespacing") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to connect as other uids");
    return;
  }
  Daemon d(tmp.path(), {"--allow-uid", "1000", "--socket-mode", "0666"}, UnitNamespacing());
  CHECK(Probe(d.socket(), 1000, 1000, "") == 0);
  CHECK(Probe(d.socket(), 2345, 2345, "") == 3);
  CHECK(Probe(d.socket(), 65534, 65534, "") == 3);
}

TEST_CASE_FIXTURE(AccessFixture, "--allow-gid admits a member of the group by a supplementary membership") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to connect as other uids");
    return;
  }
  Daemon d(tmp.path(), {"--allow-gid", "4242", "--socket-mode", "0666"}, UnitNamespacing());
  CHECK(Probe(d.socket(), 1000, 1000, "4242") == 0);  // usermod -aG: a supplementary group
  CHECK(Probe(d.socket(), 1001, 4242, "") == 0);      // the primary group
  CHECK(Probe(d.socket(), 1000, 1000, "") == 3);
  CHECK(Probe(d.socket(), 1000, 1000, "7,8") == 3);
}

TEST_CASE_FIXTURE(AccessFixture, "--allow-trim-uid: others may append and read but their Trim is refused") {
  const std::string me = std::to_string(::getuid());
  Daemon d(tmp.path(),
           {"--allow-trim-uid", std::to_string(::getuid() + 4242), "--segment-size", "64KiB", "--max-record", "4KiB"});
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  for (int i = 1; i <= 200; ++i) REQUIRE(c->append(TestPayload(0, i, 1000)).ok());
  auto t = c->trim(150);
  REQUIRE_FALSE(t.ok());
  CHECK(t.error().code == wald::ErrorCode::kNotPermitted);
  CHECK(c->connected());  // refused, not disconnected
  CHECK(ReadLog(d.data_dir()).size() == 200);
  d.Signal(SIGTERM);
  REQUIRE(d.Wait() == 0);
  d.Restart({"--allow-trim-uid", me, "--segment-size", "64KiB", "--max-record", "4KiB"});
  auto owner = wald::connect(d.socket());
  REQUIRE(owner.ok());
  auto released = owner->trim(150);
  REQUIRE(released.ok());
  CHECK(released.value() > 0);
}
