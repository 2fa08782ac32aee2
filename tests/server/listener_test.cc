// PeerAllowed: who may connect under --allow-uid/--allow-gid.
#include "server/listener.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "server/socket_util.h"

using wald::server::AccessList;
using wald::server::PeerAllowed;

namespace {

ucred Peer(uint32_t uid, uint32_t gid) { return ucred{1, uid, gid}; }

}  // namespace

TEST_CASE("listener: an empty access list admits anyone, even a peer whose credentials are unknown") {
  CHECK(PeerAllowed({}, true, Peer(1000, 1000), {}));
  CHECK(PeerAllowed({}, false, ucred{}, {}));
}

TEST_CASE("listener: a peer whose credentials are unknown is refused by any list, not taken for uid 0") {
  CHECK_FALSE(PeerAllowed({{0}, {}}, false, ucred{}, {}));
  CHECK_FALSE(PeerAllowed({{}, {0}}, false, ucred{}, {}));
}

TEST_CASE("listener: a uid or a primary gid in the list admits") {
  CHECK(PeerAllowed({{1000}, {}}, true, Peer(1000, 5), {}));
  CHECK(PeerAllowed({{}, {5}}, true, Peer(1000, 5), {}));
  CHECK_FALSE(PeerAllowed({{1001}, {6}}, true, Peer(1000, 5), {}));
}

TEST_CASE("listener: a supplementary group in --allow-gid admits") {
  const std::vector<gid_t> groups{7, 4242};
  CHECK(PeerAllowed({{}, {4242}}, true, Peer(1000, 1000), groups));
  CHECK_FALSE(PeerAllowed({{}, {4243}}, true, Peer(1000, 1000), groups));
}

TEST_CASE("listener: PeerGroups reads this process's supplementary groups over a socketpair") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  std::vector<gid_t> groups;
  CHECK(wald::server::PeerGroups(sv[0], &groups));
  std::vector<gid_t> mine(static_cast<size_t>(::getgroups(0, nullptr)));
  mine.resize(static_cast<size_t>(::getgroups(static_cast<int>(mine.size()), mine.data())));
  CHECK(groups == mine);
  ::close(sv[0]);
  ::close(sv[1]);
}
