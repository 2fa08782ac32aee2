// systemd integration with systemd's own tools: socket activation through
// systemd-socket-activate, and the sd_notify protocol through a NOTIFY_SOCKET
// the test owns.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "wald/client.h"

extern char** environ;

using namespace wald::test;

namespace {

// Spawns argv with extra environment entries; stderr to `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env_extra, const std::string& log) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    if (kv.rfind("NOTIFY_SOCKET=", 0) == 0 || kv.rfind("LISTEN_", 0) == 0 || kv.rfind("WATCHDOG_", 0) == 0) continue;
    env.push_back(kv);
  }
  env.insert(env.end(), env_extra.begin(), env_extra.end());
  std::vector<char*> cargv, cenv;
  std::vector<std::string> args = argv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  // Not ctest's pipe: a child left running after a failed check would hold
  // it open, and ctest would wait for it until its timeout.
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0].c_str(), &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return pid;
}

int WaitExit(pid_t pid, int timeout_ms = 20000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool CanConnect(const std::string& path) {
  auto c = wald::connect(path, {"probe", 2000});
  return c.ok();
}

// wald under systemd-socket-activate on DIR/activated.sock, started by a
// first client (kept in `first`); killed at the end if still running.
struct Activated {
  explicit Activated(const TempDir& tmp)
      : sock(tmp.path() + "/activated.sock"), data(tmp.path() + "/data"), log_path(tmp.path() + "/wald.log") {
    pid = Spawn({"systemd-socket-activate", "-l", sock, WALD_BINARY, "--dir", data, "--stats-interval", "0"}, {},
                log_path);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!std::filesystem::exists(sock) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(std::filesystem::exists(sock));
    // The file appears at bind, a moment before systemd-socket-activate
    // listens: until then a connect is refused, so retry that (only that).
    auto c = wald::connect(sock, {"first", 10000});
    while (!c.ok() && c.error().message.find("Connection refused") != std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      c = wald::connect(sock, {"first", 10000});
    }
    REQUIRE_MESSAGE(c.ok(), (c.ok() ? std::string() : c.error().message) << "\nwald's log: " << Log());
    first.emplace(std::move(c.value()));
  }
  ~Activated() {
    if (::kill(pid, 0) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  std::string Log() const {
    std::ifstream f(log_path);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  const std::string sock, data, log_path;
  pid_t pid = -1;
  std::optional<wald::Client> first;
};

}  // namespace

TEST_CASE("socket activation: systemd-socket-activate passes the socket and the first client is served") {
  TempDir tmp;
  Activated a(tmp);
  INFO("wald's log: " << a.Log());
  wald::Client& c = *a.first;
  for (int i = 1; i <= 20; ++i) {
    auto seq = c.append("activated " + std::to_string(i));
    REQUIRE(seq.ok());
    CHECK(seq.value() == static_cast<uint64_t>(i));
  }
  c.close();
  ::kill(a.pid, SIGTERM);  // systemd-socket-activate exec'd wald: same pid
  CHECK(WaitExit(a.pid) == 0);
  CHECK(std::filesystem::exists(a.sock));  // a socket systemd passed is never unlinked
  CHECK(ReadLog(a.data).size() == 20);
}

TEST_CASE("socket activation: wald hold, holds, trim and release talk to the activated daemon") {
  TempDir tmp;
  Activated a(tmp);
  INFO("wald's log: " << a.Log());
  for (int i = 1; i <= 20; ++i) REQUIRE(a.first->append("record " + std::to_string(i)).ok());
  std::string out;
  REQUIRE(RunWald({"hold", "follower", "5", "--socket", a.sock}, &out) == 0);
  CHECK(out.find("hold follower at seq 5") != std::string::npos);
  REQUIRE(RunWald({"holds", "--json", "--socket", a.sock}, &out) == 0);
  CHECK(out.find(R"({"name":"follower","seq":5,"lag_records":15,)") != std::string::npos);
  REQUIRE(RunWald({"trim", "10", "--socket", a.sock}, &out) == 0);
  CHECK(out.find("released up to seq") != std::string::npos);
  REQUIRE(RunWald({"release", "follower", "--socket", a.sock}, &out) == 0);
  REQUIRE(RunWald({"holds", "--socket", a.sock}, &out) == 0);
  CHECK(out.find("no holds") != std::string::npos);
  ::kill(a.pid, SIGTERM);
  CHECK(WaitExit(a.pid) == 0);
}

TEST_CASE("sd_notify: READY=1 only once the socket accepts, WATCHDOG=1 pings, STOPPING=1 on SIGTERM") {
  TempDir tmp;
  const std::string notify = tmp.path() + "/notify.sock";
  int nfd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, notify.c_str(), sizeof a.sun_path - 1);
  REQUIRE(::bind(nfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  const std::string sock = tmp.path() + "/wald.sock";
  pid_t pid = Spawn({WALD_BINARY, "--dir", tmp.path() + "/data", "--socket", sock, "--stats-interval", "0"},
                    {"NOTIFY_SOCKET=" + notify, "WATCHDOG_USEC=200000"}, tmp.path() + "/wald.log");
  std::vector<std::string> messages;
  auto next = [&](int timeout_ms) -> std::string {
    pollfd p{nfd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return {};
    char buf[4096];
    ssize_t n = ::recv(nfd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  };
  bool ready = false, accepted_at_ready = false;
  int watchdogs = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline && (!ready || watchdogs < 3)) {
    std::string m = next(1000);
    if (m.empty()) continue;
    messages.push_back(m);
    if (m.find("READY=1") != std::string::npos) {
      ready = true;
      accepted_at_ready = CanConnect(sock);  // must already listen
    }
    if (m.find("WATCHDOG=1") != std::string::npos) ++watchdogs;
  }
  INFO("messages: " << messages.size());
  CHECK(ready);
  CHECK(accepted_at_ready);
  CHECK(watchdogs >= 3);
  CHECK(messages.front().find("EXTEND_TIMEOUT_USEC=") != std::string::npos);  // recovery asks for time first
  ::kill(pid, SIGTERM);
  bool stopping = false;
  for (int i = 0; i < 50 && !stopping; ++i) stopping = next(200).find("STOPPING=1") != std::string::npos;
  CHECK(stopping);
  CHECK(WaitExit(pid) == 0);
  ::close(nfd);
}
