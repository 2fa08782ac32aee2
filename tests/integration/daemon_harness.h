// Integration-test helpers: start the real wald binary on a real socket and
// directory, and talk to it with a small blocking client that can also send
// arbitrary bytes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "framing.h"

namespace wald::test {

// Sanitizers multiply memory use (TSan's shadow alone is several times the
// heap): memory bounds are asserted in ordinary builds only.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// A command that runs wald as its last arguments and execs it in place
// (e.g. {"unshare", "--user", "--map-root-user"}), so that the pid is wald's.
struct Wrapper {
  std::vector<std::string> argv;
};

class Daemon {
 public:
  // Starts wald with --dir DIR/data (or data_dir) --socket DIR/wald.sock plus
  // `args`, and waits until the socket accepts connections.
  Daemon(const std::string& dir, std::vector<std::string> args = {}, const std::string& data_dir = "");
  // The same, started under `wrapper`.
  Daemon(const std::string& dir, std::vector<std::string> args, Wrapper wrapper);
  ~Daemon();  // SIGKILLs it if still running

  // Starts it again after it exited, with the same arguments or new ones.
  void Restart();
  void Restart(std::vector<std::string> args);
  void Signal(int sig);
  // Waits for exit; returns the exit code, or 128 + signal.
  int Wait(int timeout_ms = 30000);
  long RssKiB() const;      // VmRSS
  size_t OpenFds() const;   // entries in /proc/PID/fd
  std::string Log() const;  // everything it wrote to stderr so far
  bool running() const { return pid_ > 0; }

  const std::string& socket() const { return socket_; }
  const std::string& data_dir() const { return data_; }
  pid_t pid() const { return pid_; }

 private:
  void Start();
  std::string dir_, socket_, data_, log_;
  std::vector<std::string> args_;
  Wrapper wrapper_;
  pid_t pid_ = -1;
};

class RawClient {
 public:
  explicit RawClient(const std::string& socket_path);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // Sends bytes as they are; false if the peer is gone.
  bool SendRaw(std::span<const uint8_t> bytes);
  // Sends Hello and returns the HelloAck (nullptr if the answer was not one).
  const proto::HelloAck* Handshake(uint32_t version = proto::kProtocolVersion);
  // Appends to the output buffer; Flush sends it in one write.
  void QueueAppend(uint64_t request_id, std::string_view payload);
  bool Flush();
  // The next frame, or nullptr on end of stream or after `timeout_ms`. Valid
  // until the next call.
  const proto::Message* Next(int timeout_ms = 10000);
  // True once the server has closed the connection (read returned 0).
  bool WaitClosed(int timeout_ms = 10000);
  int fd() const { return fd_; }

 private:
  bool Fill(int timeout_ms);
  int fd_ = -1;
  std::vector<uint8_t> in_;
  size_t in_off_ = 0;
  std::vector<uint8_t> out_;
  std::vector<uint8_t> scratch_;
  proto::FrameBuilder fb_;
};

// Runs wald with `args` to completion (or kills it after `timeout_ms`);
// returns its exit code and puts what it wrote to stderr in *output.
int RunWald(const std::vector<std::string>& args, std::string* output, int timeout_ms = 20000);
// The same for any program: argv[0] is its path.
int RunProgram(const std::vector<std::string>& argv, std::string* output, int timeout_ms = 20000);

// The payload the tests append for (connection, index).
std::string TestPayload(uint64_t conn, uint64_t i, size_t size = 100);

// Reads the whole log at `dir` with the storage reader: seq -> payload.
std::vector<std::string> ReadLog(const std::string& dir);

}  // namespace wald::test
