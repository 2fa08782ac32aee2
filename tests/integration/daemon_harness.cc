#include "daemon_harness.h"

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
#include <sstream>
#include <stdexcept>
#include <thread>

#include "spawn.h"
#include "storage/log_reader.h"

extern char** environ;

namespace wald::test {

namespace {
bool CanConnect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}
// The daemon binary for these arguments: the test-only wald-faulty when a
// --fault-* option is among them (the release wald has none).
const char* BinaryFor(const std::vector<std::string>& args) {
#ifdef WALD_FAULTY_BINARY
  for (const std::string& a : args) {
    if (a.rfind("--fault-", 0) == 0) return WALD_FAULTY_BINARY;
  }
#endif
  (void)args;
  return WALD_BINARY;
}

}  // namespace

Daemon::Daemon(const std::string& dir, std::vector<std::string> args, const std::string& data_dir)
    : dir_(dir),
      socket_(dir + "/wald.sock"),
      data_(data_dir.empty() ? dir + "/data" : data_dir),
      log_(dir + "/wald.log"),
      args_(std::move(args)) {
  Start();
}

Daemon::Daemon(const std::string& dir, std::vector<std::string> args, Wrapper wrapper)
    : dir_(dir),
      socket_(dir + "/wald.sock"),
      data_(dir + "/data"),
      log_(dir + "/wald.log"),
      args_(std::move(args)),
      wrapper_(std::move(wrapper)) {
  Start();
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void Daemon::Start() {
  std::vector<std::string> argv = wrapper_.argv;
  argv.insert(argv.end(), {BinaryFor(args_), "--dir", data_, "--socket", socket_, "--stats-interval", "0"});
  argv.insert(argv.end(), args_.begin(), args_.end());
  // As systemd starts it (see Spawn).
  pid_ = Spawn(argv, "", log_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!CanConnect(socket_)) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("wald exited during start-up:\n" + Log());
    }
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("wald did not listen:\n" + Log());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Daemon::Restart() {
  if (pid_ > 0) throw std::logic_error("Restart of a running daemon");
  Start();
}

void Daemon::Restart(std::vector<std::string> args) {
  args_ = std::move(args);
  Restart();
}

void Daemon::Signal(int sig) { ::kill(pid_, sig); }

int Daemon::Wait(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      throw std::runtime_error("wald did not exit in time:\n" + Log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

long Daemon::RssKiB() const {
  std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

size_t Daemon::OpenFds() const {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd"))
    ++n;
  return n;
}

std::string Daemon::Log() const {
  std::ifstream f(log_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

RawClient::RawClient(const std::string& socket_path) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, socket_path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    throw std::runtime_error("connect " + socket_path + ": " + std::strerror(errno));
  }
}

RawClient::~RawClient() { ::close(fd_); }

bool RawClient::SendRaw(std::span<const uint8_t> b) {
  while (!b.empty()) {
    ssize_t n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    b = b.subspan(static_cast<size_t>(n));
  }
  return true;
}

const proto::HelloAck* RawClient::Handshake(uint32_t version) {
  if (!SendRaw(fb_.Hello("test", version))) return nullptr;
  const proto::Message* m = Next();
  return m && m->body_type() == proto::Body::HelloAck ? m->body_as_HelloAck() : nullptr;
}

void RawClient::QueueAppend(uint64_t request_id, std::string_view payload) {
  auto f = fb_.Append(request_id, {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
  out_.insert(out_.end(), f.begin(), f.end());
}

bool RawClient::Flush() {
  bool ok = SendRaw(out_);
  out_.clear();
  return ok;
}

bool RawClient::Fill(int timeout_ms) {
  if (in_off_ > 0) {
    in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(in_off_));
    in_off_ = 0;
  }
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  size_t have = in_.size();
  in_.resize(have + 65536);
  ssize_t n = ::read(fd_, in_.data() + have, 65536);
  in_.resize(have + (n > 0 ? static_cast<size_t>(n) : 0));
  return n > 0;
}

const proto::Message* RawClient::Next(int timeout_ms) {
  for (;;) {
    auto f = proto::ParseFrame({in_.data() + in_off_, in_.size() - in_off_}, 64u << 20, &scratch_);
    if (f.kind == proto::ParsedFrame::kFrame) {
      in_off_ += f.consumed;
      return f.msg;
    }
    if (f.kind != proto::ParsedFrame::kNeedMore) throw std::runtime_error("server sent an invalid frame");
    if (!Fill(timeout_ms)) return nullptr;
  }
}

bool RawClient::WaitClosed(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
  }
  return false;
}

int RunWald(const std::vector<std::string>& args, std::string* output, int timeout_ms) {
  std::vector<std::string> argv = {BinaryFor(args)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, output, timeout_ms);
}

int RunProgram(const std::vector<std::string>& argv_in, std::string* output, int timeout_ms) {
  char tmpl[] = "/tmp/wald-run-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ::close(fd);
  const pid_t pid = Spawn(argv_in, tmpl, tmpl);  // stdout and stderr into one file
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::ifstream f(tmpl);
  std::stringstream ss;
  ss << f.rdbuf();
  *output = ss.str();
  ::unlink(tmpl);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string TestPayload(uint64_t conn, uint64_t i, size_t size) {
  std::string s = "c" + std::to_string(conn) + "-i" + std::to_string(i) + "-";
  while (s.size() < size) s += static_cast<char>('a' + (s.size() * 7 + i + conn) % 26);
  s.resize(size);
  return s;
}

std::vector<std::string> ReadLog(const std::string& dir) {
  auto r = storage::LogReader::Open(storage::Env::Posix(), dir, 1);
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  std::vector<std::string> out;
  storage::RecordView rec;
  storage::LogReader::Step step;
  while ((step = (*r)->Next(&rec)) == storage::LogReader::Step::kRecord) {
    if (rec.seq != out.size() + 1) throw std::runtime_error("seq gap in log");
    out.emplace_back(reinterpret_cast<const char*>(rec.payload.data()), rec.payload.size());
  }
  if (step == storage::LogReader::Step::kError) throw std::runtime_error((*r)->status().ToString());
  return out;
}

}  // namespace wald::test
