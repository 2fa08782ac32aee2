#include "nats_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "../integration/spawn.h"

extern char** environ;

namespace wald::test {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t npos = std::string_view::npos;

int MsLeft(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1 << 30));
}

void Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

struct Fd {
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int fd;
};

// GET http://127.0.0.1:port/path over HTTP/1.0 (the server closes after the
// response, so the body is everything after the headers). False on any
// failure or once timeout_ms has passed.
bool HttpGet(int port, const std::string& path, int timeout_ms, int* status, std::string* body) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  Fd s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (s.fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (errno != EINPROGRESS) return false;
    pollfd p{s.fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, MsLeft(deadline)) <= 0 || ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
      return false;
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  for (size_t sent = 0; sent < req.size();) {
    ssize_t n = ::send(s.fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{s.fd, POLLOUT, 0};
      if (::poll(&p, 1, MsLeft(deadline)) <= 0) return false;
    } else {
      return false;
    }
  }
  std::string resp;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n > 0) {
      resp.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      pollfd p{s.fd, POLLIN, 0};
      if (::poll(&p, 1, MsLeft(deadline)) <= 0) return false;
    } else {
      return false;
    }
  }
  const size_t end = resp.find("\r\n\r\n");
  const size_t sp = resp.find(' ');
  if (resp.compare(0, 5, "HTTP/") != 0 || end == npos || sp > end) return false;
  *status = std::atoi(resp.c_str() + sp + 1);
  *body = resp.substr(end + 4);
  return true;
}

// Just enough JSON for the server's own (well-formed) monitoring output:
// values are slices of the text; strings are compared undecoded.
size_t SkipWs(std::string_view s, size_t i) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}

// One past the end of the value that starts at s[i], or npos.
size_t ValueEnd(std::string_view s, size_t i) {
  if (i >= s.size()) return npos;
  if (s[i] == '"') {
    for (size_t j = i + 1; j < s.size(); ++j) {
      if (s[j] == '\\') {
        ++j;
      } else if (s[j] == '"') {
        return j + 1;
      }
    }
    return npos;
  }
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (size_t j = i; j < s.size(); ++j) {
      if (s[j] == '"') {
        j = ValueEnd(s, j);
        if (j == npos) return npos;
        --j;
      } else if (s[j] == '{' || s[j] == '[') {
        ++depth;
      } else if ((s[j] == '}' || s[j] == ']') && --depth == 0) {
        return j + 1;
      }
    }
    return npos;
  }
  size_t j = i;
  while (j < s.size() && s[j] != ',' && s[j] != '}' && s[j] != ']' && !std::isspace(static_cast<unsigned char>(s[j])))
    ++j;
  return j;
}

// Calls f(key, value) for each member of an object, or f("", value) for each
// element of an array, until f returns false. Anything else: no calls.
template <class F>
void ForEach(std::string_view v, F f) {
  if (v.empty() || (v[0] != '{' && v[0] != '[')) return;
  const bool object = v[0] == '{';
  for (size_t i = 1;;) {
    i = SkipWs(v, i);
    if (i >= v.size() || v[i] == '}' || v[i] == ']') return;
    std::string_view key;
    if (object) {
      const size_t key_end = ValueEnd(v, i);
      if (v[i] != '"' || key_end == npos) return;
      key = v.substr(i + 1, key_end - i - 2);
      i = SkipWs(v, key_end);
      if (i >= v.size() || v[i] != ':') return;
      i = SkipWs(v, i + 1);
    }
    const size_t end = ValueEnd(v, i);
    if (end == npos || !f(key, v.substr(i, end - i))) return;
    i = SkipWs(v, end);
    if (i < v.size() && v[i] == ',') ++i;
  }
}

std::string_view Member(std::string_view object, std::string_view key) {
  std::string_view found;
  if (object.empty() || object[0] != '{') return found;
  ForEach(object, [&](std::string_view k, std::string_view v) {
    if (k != key) return true;
    found = v;
    return false;
  });
  return found;
}

std::string StringOf(std::string_view v) {
  return v.size() >= 2 && v.front() == '"' ? std::string(v.substr(1, v.size() - 2)) : std::string();
}

std::string_view Trimmed(const std::string& body) { return std::string_view(body).substr(SkipWs(body, 0)); }

// The leader of stream `stream` (account $G) according to the node whose
// monitoring port is `port`; empty if it names none or does not answer.
std::string LeaderSaidBy(int port, const std::string& stream, int timeout_ms) {
  int status;
  std::string body, leader;
  if (!HttpGet(port, "/jsz?accounts=true&streams=true", timeout_ms, &status, &body) || status != 200) return leader;
  ForEach(Member(Trimmed(body), "account_details"), [&](std::string_view, std::string_view account) {
    if (StringOf(Member(account, "name")) != "$G") return true;
    ForEach(Member(account, "stream_detail"), [&](std::string_view, std::string_view s) {
      if (StringOf(Member(s, "name")) != stream) return true;
      leader = StringOf(Member(Member(s, "cluster"), "leader"));
      return false;
    });
    return false;
  });
  return leader;
}

// The node index of server name "nI", or -1.
int NodeIndex(const std::string& name, int size) {
  if (name.size() < 2 || name[0] != 'n') return -1;
  for (size_t k = 1; k < name.size(); ++k) {
    if (!std::isdigit(static_cast<unsigned char>(name[k]))) return -1;
  }
  const int i = std::atoi(name.c_str() + 1);
  return i < size ? i : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string LastLines(const std::string& text, int lines) {
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  while (pos > 0) {
    const size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
    if (--lines == 0) return text.substr(pos + 1);
  }
  return text;
}

}  // namespace

NatsCluster::NatsCluster(const std::string& dir, int nodes)
    : dir_(dir), nodes_(static_cast<size_t>(std::max(nodes, 0))) {
  if (nodes < 1) throw std::invalid_argument("NatsCluster needs at least one node");
  std::string why, tails;
  // Another process can take a picked port before the server binds it: then
  // start again on new ports.
  for (int attempt = 0; attempt < 3; ++attempt) {
    PickPorts();
    for (int i = 0; i < size(); ++i) {
      nodes_[i].conf = dir_ + "/n" + std::to_string(i) + ".conf";
      nodes_[i].log = dir_ + "/n" + std::to_string(i) + ".log";
      std::ofstream(nodes_[i].log, std::ios::trunc);
      WriteConfig(i);
    }
    try {
      for (int i = 0; i < size(); ++i) Spawn(i);
    } catch (...) {
      KillAll();
      throw;
    }
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    why = "not healthy within 30 s";
    while (Clock::now() < deadline) {
      bool exited = false;
      for (int i = 0; i < size(); ++i) {
        if (Reap(i)) {
          why = "n" + std::to_string(i) + " exited during start-up";
          exited = true;
        }
      }
      if (exited) break;
      bool all = true;
      for (int i = 0; i < size() && all; ++i) all = Healthy(i, std::min(1000, MsLeft(deadline)));
      if (all) return;
      Sleep(50);
    }
    tails = LogTails();
    KillAll();
    if (tails.find("address already in use") == std::string::npos) break;
  }
  throw std::runtime_error("nats cluster in " + dir_ + ": " + why + "\n" + tails);
}

NatsCluster::~NatsCluster() { KillAll(); }

std::string NatsCluster::Url(int i) const { return "nats://127.0.0.1:" + std::to_string(nodes_.at(i).client_port); }

std::string NatsCluster::Urls() const {
  std::string urls;
  for (int i = 0; i < size(); ++i) urls += (i ? "," : "") + Url(i);
  return urls;
}

pid_t NatsCluster::pid(int i) const {
  Reap(i);
  return nodes_.at(i).pid;
}

void NatsCluster::Signal(int i, int sig) {
  if (!Reap(i)) ::kill(nodes_[i].pid, sig);
}

void NatsCluster::Kill(int i, int sig) {
  if (Reap(i)) return;
  Node& n = nodes_[i];
  ::kill(n.pid, sig);
  if (sig != SIGKILL) ::kill(n.pid, SIGCONT);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!Reap(i)) {
    if (Clock::now() > deadline) {
      ::kill(n.pid, SIGKILL);
      ::waitpid(n.pid, nullptr, 0);
      n.pid = -1;
      return;
    }
    Sleep(5);
  }
}

void NatsCluster::Start(int i) {
  if (!Reap(i)) throw std::logic_error("NatsCluster::Start of running node n" + std::to_string(i));
  Spawn(i);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  int status;
  std::string body;
  while (!HttpGet(nodes_[i].http_port, "/healthz", std::min(1000, MsLeft(deadline)), &status, &body)) {
    if (Reap(i) || Clock::now() > deadline) {
      const std::string why = nodes_[i].pid < 0 ? " exited during start-up:\n" : " did not answer within 10 s:\n";
      Kill(i);
      throw std::runtime_error("nats node n" + std::to_string(i) + why + LastLines(Log(i), 30));
    }
    Sleep(20);
  }
}

bool NatsCluster::WaitHealthy(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    bool all = true, any = false;
    unhealthy_ = "no node is running";
    for (int i = 0; i < size() && all; ++i) {
      if (Reap(i)) continue;
      any = true;
      all = Healthy(i, std::clamp(MsLeft(deadline), 1, 1000), &unhealthy_);
    }
    if (all && any) return true;
    Sleep(50);
  } while (Clock::now() < deadline);
  return false;
}

int NatsCluster::StreamLeader(const std::string& stream, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    // What each running node says the stream's leader is.
    std::vector<int> said(nodes_.size(), -1);
    for (int i = 0; i < size(); ++i) {
      if (Reap(i)) continue;
      said[i] = NodeIndex(LeaderSaidBy(nodes_[i].http_port, stream, std::clamp(MsLeft(deadline), 1, 1000)), size());
    }
    // A node that says it leads, named by more nodes than any other such.
    int best = -1, best_votes = 0;
    bool tie = false;
    for (int c = 0; c < size(); ++c) {
      if (said[c] != c) continue;
      const int votes = static_cast<int>(std::count(said.begin(), said.end(), c));
      if (votes > best_votes) {
        best = c;
        best_votes = votes;
        tie = false;
      } else if (votes == best_votes) {
        tie = true;
      }
    }
    if (best >= 0 && !tie) return best;
    Sleep(100);
  } while (Clock::now() < deadline);
  return -1;
}

std::string NatsCluster::Log(int i) const { return ReadFile(nodes_.at(i).log); }

// Ports below the ephemeral range, so that no outgoing connection holds one
// when a killed node is started again. Each is checked free by binding it
// (without SO_REUSEADDR), and held until all are picked, so they differ.
void NatsCluster::PickPorts() {
  int lo = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> lo;
  const int first = std::max(1024, lo - 12000);
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> dist(first, std::max(first, lo - 1));
  std::vector<std::unique_ptr<Fd>> held;
  auto pick = [&] {
    for (int tries = 0; tries < 1000; ++tries) {
      const int port = dist(rng);
      auto s = std::make_unique<Fd>(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(port));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(s->fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        held.push_back(std::move(s));
        return port;
      }
    }
    throw std::runtime_error("NatsCluster: no free port");
  };
  for (Node& n : nodes_) {
    n.client_port = pick();
    n.route_port = pick();
    n.http_port = pick();
  }
}

void NatsCluster::WriteConfig(int i) const {
  const Node& n = nodes_[i];
  std::ofstream f(n.conf, std::ios::trunc);
  f << "server_name: n" << i << "\n"
    << "listen: 127.0.0.1:" << n.client_port << "\n"
    << "http: 127.0.0.1:" << n.http_port << "\n"
    << "log_file: \"" << n.log << "\"\n"
    << "jetstream { store_dir: \"" << dir_ << "/s" << i << "\" }\n";
  if (size() > 1) {
    f << "cluster {\n  name: wald-test\n  listen: 127.0.0.1:" << n.route_port << "\n  routes: [\n";
    for (int j = 0; j < size(); ++j) {
      if (j != i) f << "    nats-route://127.0.0.1:" << nodes_[j].route_port << "\n";
    }
    f << "  ]\n}\n";
  }
  f.close();
  if (!f) throw std::runtime_error("NatsCluster: cannot write " + n.conf);
}

void NatsCluster::Spawn(int i) {
  Node& n = nodes_[i];
  std::vector<std::string> argv = {"nats-server", "-c", n.conf};
  // Anything it prints before its log file is open goes to the same file.
  n.pid = wald::test::Spawn(argv, n.log, n.log);
}

bool NatsCluster::Reap(int i) const {
  Node& n = nodes_.at(i);
  if (n.pid <= 0) return true;
  if (::waitpid(n.pid, nullptr, WNOHANG) != n.pid) return false;
  n.pid = -1;
  return true;
}

bool NatsCluster::Healthy(int i, int timeout_ms, std::string* why) const {
  int status = 0;
  std::string body;
  const int port = nodes_[i].http_port;
  const std::string node = "n" + std::to_string(i);
  auto fail = [&](const std::string& what) {
    if (why) *why = node + ": " + what;
    return false;
  };
  if (!HttpGet(port, "/healthz", timeout_ms, &status, &body)) return fail("/healthz did not answer");
  if (status != 200 || StringOf(Member(Trimmed(body), "status")) != "ok")
    return fail("/healthz " + std::to_string(status) + " " + body);
  if (size() == 1) return true;  // no cluster: no meta leader
  if (!HttpGet(port, "/jsz", timeout_ms, &status, &body) || status != 200) return fail("/jsz did not answer 200");
  if (StringOf(Member(Member(Trimmed(body), "meta_cluster"), "leader")).empty())
    return fail("/jsz names no meta leader");
  return true;
}

std::string NatsCluster::LogTails() const {
  std::string out;
  for (int i = 0; i < size(); ++i) {
    out += "--- n" + std::to_string(i) + " (" + nodes_[i].log + ") ---\n" + LastLines(Log(i), 30);
  }
  return out;
}

void NatsCluster::KillAll() {
  for (Node& n : nodes_) {
    if (n.pid > 0) {
      ::kill(n.pid, SIGKILL);
      ::waitpid(n.pid, nullptr, 0);
      n.pid = -1;
    }
  }
}

}  // namespace wald::test
