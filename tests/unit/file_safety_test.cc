// The log directory against a hostile local user (#20 item 7): links and
// odd files planted where wald opens by name, and a directory that is not
// wald's alone.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "log_fixture.h"
#include "storage/format.h"

using namespace wald::storage;
using wald::test::LogFixture;
namespace fs = std::filesystem;

namespace {

std::string Contents(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE_FIXTURE(LogFixture, "a symlinked wald.lock is refused and its target left as it was") {
  const std::string victim = tmp.path() + "/victim";
  { std::ofstream(victim) << "precious\n"; }
  fs::create_directory(dir);
  fs::create_symlink(victim, dir + "/" + std::string(kLockFileName));
  Status st = Open();
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find("symbolic link") != std::string::npos);
  CHECK(Contents(victim) == "precious\n");
}

TEST_CASE_FIXTURE(LogFixture, "a segment replaced by a symlink or a FIFO is refused, not followed or waited on") {
  REQUIRE(Open().ok());
  REQUIRE(WriteN(10, 100).ok());
  Close();
  const std::string seg = Segments().front();
  const std::string victim = tmp.path() + "/victim";
  fs::rename(seg, victim);
  SUBCASE("symlink") {
    fs::create_symlink(victim, seg);
    Status st = Open();
    REQUIRE_FALSE(st.ok());
    CHECK(st.message().find("symbolic link") != std::string::npos);
  }
  SUBCASE("fifo") {
    REQUIRE(::mkfifo(seg.c_str(), 0600) == 0);
    Status st = Open();  // would block in open(2) without O_NONBLOCK
    REQUIRE_FALSE(st.ok());
    CHECK(st.message().find("not a regular file") != std::string::npos);
  }
}

TEST_CASE_FIXTURE(LogFixture, "a log directory writable by others is refused, saying how to fix it") {
  fs::create_directory(dir);
  fs::permissions(dir, fs::perms::all);
  Status st = Open();
  REQUIRE(st.code() == Code::kInvalidArgument);
  CHECK(st.message().find("writable by others") != std::string::npos);
  CHECK(st.message().find("chmod o-w") != std::string::npos);
  fs::permissions(dir, fs::perms::others_write, fs::perm_options::remove);
  CHECK(Open().ok());
}

TEST_CASE_FIXTURE(LogFixture, "a log directory owned by another user is refused") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to chown");
    return;
  }
  fs::create_directory(dir);
  REQUIRE(::chown(dir.c_str(), 65534, 65534) == 0);
  Status st = Open();
  REQUIRE(st.code() == Code::kInvalidArgument);
  CHECK(st.message().find("owned by uid 65534") != std::string::npos);
}
