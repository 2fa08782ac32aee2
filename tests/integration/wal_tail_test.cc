// wal-tail, run as a binary: golden output in each format, follow mode
// against a running wald, verify, schema decoding, and the error cases.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <flatbuffers/idl.h>
#include <flatbuffers/util.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "../unit/log_fixture.h"
#include "daemon_harness.h"
#include "spawn.h"
#include "storage/format.h"
#include "trimmed_log.h"
#include "wald/client.h"

extern char** environ;

using namespace wald;
using namespace wald::test;

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs a command; stdout and stderr apart.
int Run(const std::vector<std::string>& argv, std::string* out, std::string* err) {
  TempDir io;
  const std::string o = io.path() + "/out", e = io.path() + "/err";
  const pid_t pid = Spawn(argv, o, e);
  int status = 0;
  ::waitpid(pid, &status, 0);
  *out = Slurp(o);
  *err = Slurp(e);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A small known log: five records in one segment.
void MakeKnownLog(LogFixture& f) {
  f.env = storage::Env::Posix();
  REQUIRE(f.Open().ok());
  REQUIRE(f.Write({"alpha", std::string("be\x01ta", 5), "", "a longer record with spaces: 0123456789",
                   std::string(20, 'z')})
              .ok());
  f.Close();
}

void CheckGolden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(WALD_SOURCE_DIR) + "/tests/golden/" + name;
  if (std::getenv("WALD_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << actual;
  }
  CHECK_MESSAGE(Slurp(path) == actual, "golden " << name << " differs; actual:\n" << actual);
}

}  // namespace

TEST_CASE("golden output of a known log in each format") {
  LogFixture f;
  MakeKnownLog(f);
  std::string out, err;
  for (const char* fmt : {"text", "json", "hex", "raw"}) {
    CAPTURE(fmt);
    REQUIRE(Run({WAL_TAIL_BINARY, "--format", fmt, f.dir}, &out, &err) == 0);
    CHECK(err.empty());
    CheckGolden(std::string("known.") + fmt, out);
  }
  REQUIRE(Run({WAL_TAIL_BINARY, "-n", "2", f.dir}, &out, &err) == 0);
  CHECK(out.find("4\t") == 0);
  REQUIRE(Run({WAL_TAIL_BINARY, "--from", "2", "--to", "3", f.dir}, &out, &err) == 0);
  CHECK(out ==
        "2\t5\t2023-11-14T22:13:22.000002Z\t4242/1000/100\tbe.ta\n"
        "3\t0\t2023-11-14T22:13:23.000003Z\t4242/1000/100\t\n");
}

TEST_CASE("--since, --until, --pid and --uid select by the stamped time and producer") {
  LogFixture f;
  MakeKnownLog(f);  // records 1..5 received at 22:13:21, :22, ... UTC, from pid
                    // 4242 uid 1000
  std::string out, err;
  REQUIRE(Run({WAL_TAIL_BINARY, "--since", "2023-11-14 22:13:22Z", "--until", "2023-11-14T22:13:24Z", f.dir}, &out,
              &err) == 0);
  CHECK(out.find("2\t") == 0);
  CHECK(out.find("\n3\t") != std::string::npos);
  CHECK(out.find("\n4\t") == std::string::npos);  // 22:13:24.000004 is after --until
  REQUIRE(Run({WAL_TAIL_BINARY, "--pid", "4242", "-n", "2", f.dir}, &out, &err) == 0);
  CHECK(out.find("4\t") == 0);
  REQUIRE(Run({WAL_TAIL_BINARY, "--pid", "4243", f.dir}, &out, &err) == 0);
  CHECK(out.empty());
  REQUIRE(Run({WAL_TAIL_BINARY, "--uid", "1000", "--since", "-5min", f.dir}, &out, &err) == 0);
  CHECK(out.empty());  // written "in 2023"
  REQUIRE(Run({WAL_TAIL_BINARY, "--uid", "1000", "--since", "2023-11-14", f.dir}, &out, &err) == 0);
  CHECK(std::count(out.begin(), out.end(), '\n') == 5);
  CHECK(Run({WAL_TAIL_BINARY, "--since", "last tuesday", f.dir}, &out, &err) == 2);
  CHECK(err.find("cannot parse time 'last tuesday'") != std::string::npos);
}

TEST_CASE("--stats and --verify on a healthy log") {
  LogFixture f;
  MakeKnownLog(f);
  std::string out, err;
  REQUIRE(Run({WAL_TAIL_BINARY, "--verify", f.dir}, &out, &err) == 0);
  CHECK(out.find("ok: 5 records (seq 1..5) in 1 segments") == 0);
  REQUIRE(Run({WAL_TAIL_BINARY, "--stats", f.dir}, &out, &err) == 0);
  CHECK(out.find("records       5") != std::string::npos);
  CHECK(out.find("seq range     1..5") != std::string::npos);
  CHECK(out.find("trim point    0") != std::string::npos);
}

TEST_CASE("--verify finds a flipped byte in the middle and accepts a torn tail") {
  LogFixture f;
  f.env = storage::Env::Posix();
  REQUIRE(f.Open().ok());
  REQUIRE(f.WriteN(300, 1000).ok());  // several 64 KiB segments
  f.Close();
  auto recs = f.ReadAll();
  std::string out, err;
  SUBCASE("a flipped byte in a sealed segment") {
    const auto victim = recs[40];
    f.FlipByte(victim.segment, victim.offset + 100);
    CHECK(Run({WAL_TAIL_BINARY, "--verify", f.dir}, &out, &err) == 1);
    CHECK(err.find(victim.segment + " offset " + std::to_string(victim.offset)) != std::string::npos);
  }
  SUBCASE("a torn last record") {
    const auto last = recs.back();
    f.ZeroBytes(last.segment, last.offset + 30, 500);
    CHECK(Run({WAL_TAIL_BINARY, "--verify", f.dir}, &out, &err) == 0);
    CHECK(out.find("ok: 299 records") == 0);
    CHECK(out.find("torn tail") != std::string::npos);
  }
}

namespace {

// wal-tail's output, one JSON value per line; fails the test on a line that
// is not strict JSON.
std::vector<nlohmann::json> JsonLines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    INFO(line);
    auto j = nlohmann::json::parse(line, nullptr, false);
    CHECK_FALSE(j.is_discarded());
    lines.push_back(std::move(j));
  }
  return lines;
}

}  // namespace

TEST_CASE("schema-aware decoding prints each payload as JSON") {
  // Payloads that are FlatBuffers of shop.Order, built from JSON.
  std::string fbs;
  REQUIRE(flatbuffers::LoadFile((std::string(WALD_SOURCE_DIR) + "/tests/data/order.fbs").c_str(), false, &fbs));
  LogFixture f;
  f.env = storage::Env::Posix();
  REQUIRE(f.Open().ok());
  std::vector<std::string> payloads;
  for (const char* json : {R"({"id": 1, "customer": "ada \"the\" first", "amount_cents": 1250, "items": ["tea"]})",
                           R"({"id": 2, "customer": "bob", "amount_cents": -5, "items": []})",
                           R"({"id": 3, "customer": "eve", "weight_kg": nan})"}) {
    flatbuffers::Parser p;
    REQUIRE(p.Parse(fbs.c_str()));
    REQUIRE(p.Parse(json));
    payloads.emplace_back(reinterpret_cast<const char*>(p.builder_.GetBufferPointer()), p.builder_.GetSize());
  }
  payloads.push_back("not a flatbuffer");
  REQUIRE(f.Write(payloads).ok());
  f.Close();
  std::string out, err;
  REQUIRE(Run({WAL_TAIL_BINARY, "--schema", ORDER_BFBS, "--root-type", "Order", "--format", "json", f.dir}, &out,
              &err) == 0);
  INFO(out);
  const auto lines = JsonLines(out);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0]["decoded"] ==
        nlohmann::json::parse(R"({"id": 1, "customer": "ada \"the\" first", "amount_cents": 1250, "items": ["tea"]})"));
  CHECK(lines[1]["decoded"] ==
        nlohmann::json::parse(R"({"id": 2, "customer": "bob", "amount_cents": -5, "items": []})"));
  // JSON has no NaN: that payload, like one that is not an Order, is shown
  // without "decoded" (and the line stays JSON).
  CHECK(lines[2]["seq"] == 3);
  CHECK_FALSE(lines[2].contains("decoded"));
  CHECK(lines[3]["size"] == 16);
  CHECK_FALSE(lines[3].contains("decoded"));
  REQUIRE(Run({WAL_TAIL_BINARY, "--schema", ORDER_BFBS, "--root-type", "Nope", f.dir}, &out, &err) == 2);
  CHECK(err.find("no table Nope") != std::string::npos);
}

TEST_CASE("missing, empty and foreign directories get a clear error and exit code 3") {
  TempDir tmp;
  std::string out, err;
  CHECK(Run({WAL_TAIL_BINARY, tmp.path() + "/missing"}, &out, &err) == 3);
  CHECK(err.find("does not exist") != std::string::npos);
  CHECK(Run({WAL_TAIL_BINARY, tmp.path()}, &out, &err) == 3);  // empty
  CHECK(err.find("not a wald log") != std::string::npos);
  { std::ofstream(tmp.path() + "/notes.txt") << "hello"; }
  CHECK(Run({WAL_TAIL_BINARY, "--verify", tmp.path()}, &out, &err) == 3);
  CHECK(Run({WAL_TAIL_BINARY, "--format", "yaml", tmp.path()}, &out, &err) == 2);
}

// The seqs of wal-tail's JSON lines, in order.
std::vector<int> Seqs(const std::string& json_lines) {
  std::vector<int> seqs;
  for (size_t at = json_lines.find("{\"seq\":"); at != std::string::npos; at = json_lines.find("{\"seq\":", at + 1)) {
    seqs.push_back(std::stoi(json_lines.substr(at + 7)));
  }
  return seqs;
}

// Issue #17: "-n -5" printed every record, "--from 5 --to 3" printed nothing
// with exit 0, --to required --from and -n could not combine with --from.
TEST_CASE("range options combine as journalctl's: --to alone, -n of a range, nonsense is exit 2") {
  LogFixture f;
  MakeKnownLog(f);
  std::string out, err;
  CHECK(Run({WAL_TAIL_BINARY, "-n", "-5", f.dir}, &out, &err) == 2);
  CHECK(out.empty());
  CHECK(Run({WAL_TAIL_BINARY, "--from", "5", "--to", "3", f.dir}, &out, &err) == 2);
  CHECK(err.find("--from 5 is after --to 3") != std::string::npos);
  REQUIRE(Run({WAL_TAIL_BINARY, "--format", "json", "--to", "3", f.dir}, &out, &err) == 0);
  CHECK(Seqs(out) == std::vector<int>{1, 2, 3});
  REQUIRE(Run({WAL_TAIL_BINARY, "--format", "json", "-n", "2", "--from", "2", "--to", "4", f.dir}, &out, &err) == 0);
  CHECK(Seqs(out) == std::vector<int>{3, 4});
  REQUIRE(Run({WAL_TAIL_BINARY, "--format", "json", "-n", "2", "--from", "2", f.dir}, &out, &err) == 0);
  CHECK(Seqs(out) == std::vector<int>{4, 5});
}

// Issue #17: after a trim, --from 1 exited 3, "missing directory or not a
// wald log".
TEST_CASE("--from below the first seq held exits 4 naming the first seq") {
  TempDir tmp;
  Daemon d(tmp.path(), kTrimmableLog);
  const uint64_t released = AppendThenTrim(d.socket(), 300, 200);
  std::string out, err;
  CHECK(Run({WAL_TAIL_BINARY, "--from", "1", d.data_dir()}, &out, &err) == 4);
  CHECK(err.find("seq 1 is trimmed: the log holds seqs from " + std::to_string(released + 1)) != std::string::npos);
  CHECK(Run({WAL_TAIL_BINARY, "--from", std::to_string(released + 1), "-n", "1", d.data_dir()}, &out, &err) == 0);
}

TEST_CASE("wal-tail | head ends cleanly") {
  LogFixture f;
  f.env = storage::Env::Posix();
  REQUIRE(f.Open().ok());
  REQUIRE(f.WriteN(20000, 100, 256).ok());
  f.Close();
  std::string out, err;
  const std::string cmd = std::string(WAL_TAIL_BINARY) + " --from 1 " + f.dir + " | head -n 3; exit ${PIPESTATUS[0]}";
  CHECK(Run({"bash", "-c", cmd}, &out, &err) == 0);
  CHECK(err.empty());
  CHECK(std::count(out.begin(), out.end(), '\n') == 3);
}

TEST_CASE("follow mode prints records appended by a running wald within 100 ms, across a segment roll") {
  TempDir tmp;
  Daemon d(tmp.path(), {"--segment-size", "64KiB", "--max-record", "4KiB"});
  auto c = wald::connect(d.socket());
  REQUIRE(c.ok());
  REQUIRE(c->append("before").ok());
  // wal-tail -f with its stdout on a pipe we read.
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_addclose(&fa, pipefd[0]);
  std::vector<std::string> args = {WAL_TAIL_BINARY, "-f", "-n", "1", d.data_dir()};
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid;
  REQUIRE(posix_spawn(&pid, WAL_TAIL_BINARY, &fa, nullptr, cargv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  std::string got;
  auto read_line = [&](int timeout_ms) -> std::string {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (auto nl = got.find('\n'); nl != std::string::npos) {
        std::string line = got.substr(0, nl);
        got.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "<timeout>";
      pollfd p{pipefd[0], POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(pipefd[0], buf, sizeof buf);
      if (n <= 0) return "<eof>";
      got.append(buf, static_cast<size_t>(n));
    }
  };
  CHECK(read_line(5000).find("before") != std::string::npos);
  std::vector<double> delays_ms;
  for (int i = 0; i < 60; ++i) {  // 60 x 2 KiB: more than one 64 KiB segment
    const std::string p = "live-" + std::to_string(i) + "-" + std::string(2000, 'x');
    auto seq = c->append(p);
    REQUIRE(seq.ok());
    auto t0 = std::chrono::steady_clock::now();
    std::string line = read_line(2000);
    delays_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    REQUIRE(line.rfind(std::to_string(seq.value()) + "\t", 0) == 0);
    REQUIRE(line.find("live-" + std::to_string(i) + "-") != std::string::npos);
  }
  std::sort(delays_ms.begin(), delays_ms.end());
  MESSAGE("follow delay after the ack: median " << delays_ms[delays_ms.size() / 2] << " ms, max " << delays_ms.back()
                                                << " ms");
  CHECK(delays_ms.back() < 100.0);
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  ::close(pipefd[0]);
  size_t segments = 0;  // the records above crossed at least one segment roll
  for (const auto& e : std::filesystem::directory_iterator(d.data_dir())) segments += e.path().extension() == ".wal";
  CHECK(segments >= 2);
}

TEST_CASE("a producer's records show its id and numbers in JSON and hex") {
  TempDir tmp;
  Daemon d(tmp.path());
  ClientOptions o{"wal-tail-test"};
  o.producer = true;
  o.producer_id = 0xabc;
  {
    auto c = wald::connect(d.socket(), o);
    REQUIRE(c.ok());
    REQUIRE(c->append("one").ok());
    REQUIRE(c->append("two").ok());
    REQUIRE(wald::connect(d.socket())->append("plain").ok());
  }
  std::string out, err;
  REQUIRE(Run({WAL_TAIL_BINARY, "--format", "json", d.data_dir()}, &out, &err) == 0);
  std::istringstream lines(out);
  std::vector<nlohmann::json> js;
  for (std::string line; std::getline(lines, line);) js.push_back(nlohmann::json::parse(line));
  REQUIRE(js.size() == 3);
  CHECK(js[0]["producer_id"] == "0000000000000abc");
  CHECK(js[0]["producer_seq"] == 1);
  CHECK(js[1]["producer_seq"] == 2);
  CHECK(!js[2].contains("producer_id"));
  REQUIRE(Run({WAL_TAIL_BINARY, "--format", "hex", "--from", "2", "--to", "2", d.data_dir()}, &out, &err) == 0);
  CHECK(out.find(" producer 0000000000000abc seq 2\n") != std::string::npos);
}
