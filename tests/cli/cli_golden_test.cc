// flin's golden tests: argv + stdin -> stdout, stderr, exit status, run
// against a real flind started per test in its own temp dir (unix socket
// only, --listen none). Covers the exit-status contract of every command,
// binary values through stdin, --json/--raw/-0/--human/--no-newline/--quiet,
// piped shell mode, connection/timeout/auth/server errors, and the
// interactive shell on a pseudo-terminal.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/client.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Outcome {
  std::string out, err;
  int code = -1;
};

std::string Printable(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\n') {
      o += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    } else {
      o.push_back(static_cast<char>(c));
    }
  }
  return o;
}

// Spawns argv with env additions; feeds stdin_data; collects stdout/stderr.
Outcome Spawn(const std::vector<std::string>& argv, const std::string& stdin_data,
              const std::map<std::string, std::string>& env = {}, int timeout_s = 60) {
  int in[2], out[2], err[2];
  EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  signal(SIGPIPE, SIG_IGN);
  Outcome r;
  size_t written = 0;
  int in_fd = in[1];
  if (stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  bool out_open = true, err_open = true;
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (out_open || err_open) {
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      ADD_FAILURE() << "timed out: " << argv[1];
      break;
    }
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out[0], POLLIN, 0};
    if (err_open) fds[n++] = {err[0], POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    poll(fds, n, 200);
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        ssize_t w = write(in_fd, stdin_data.data() + written, stdin_data.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 || written == stdin_data.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      std::string& dst = fds[i].fd == out[0] ? r.out : r.err;
      if (got > 0) {
        dst.append(buf, static_cast<size_t>(got));
      } else {
        (fds[i].fd == out[0] ? out_open : err_open) = false;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  close(out[0]);
  close(err[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string MakeTempDir() {
  std::string tmpl = (fs::temp_directory_path() / "flin-cli-XXXXXX").string();
  char* d = mkdtemp(tmpl.data());
  EXPECT_NE(d, nullptr);
  return tmpl;
}

// One flind per test, in its own directory, on its own unix socket.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    StartFlind({});
  }
  void TearDown() override {
    StopFlind();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void StartFlind(std::vector<std::string> extra) {
    data_dir_ = dir_ + "/data";
    socket_ = data_dir_ + "/flin.sock";
    addr_ = "unix:" + socket_;
    std::string log = dir_ + "/flind.log";
    flind_pid_ = fork();
    if (flind_pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 2);
      dup2(fd, 1);
      std::vector<std::string> argv = {FLIND_BIN, "--data-dir", data_dir_, "--listen", "none"};
      argv.insert(argv.end(), extra.begin(), extra.end());
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    // Ready when a PING answers (PONG, or NOAUTH when a password is set).
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      int status;
      if (waitpid(flind_pid_, &status, WNOHANG) == flind_pid_) {
        flind_pid_ = -1;
        std::ifstream f(log);
        std::stringstream ss;
        ss << f.rdbuf();
        FAIL() << "flind exited early: " << ss.str();
      }
      auto addr = flin::client::Address::Parse(addr_);
      auto conn = flin::client::Connection::Connect(*addr);
      if (conn.ok()) {
        auto reply = (*conn)->Command({"PING"});
        if (reply.ok()) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "flind did not answer PING within 30 s";
  }

  void StopFlind() {
    if (flind_pid_ <= 0) return;
    kill(flind_pid_, SIGTERM);
    int status;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (waitpid(flind_pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(flind_pid_, SIGKILL);
        waitpid(flind_pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    flind_pid_ = -1;
  }

  // flin ARGS with stdin; FLIN_ADDR points at this test's flind.
  Outcome Flin(std::vector<std::string> args, const std::string& in = "",
               std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), FLIN_BIN);
    env.emplace("FLIN_ADDR", addr_);
    env.emplace("NO_COLOR", "1");
    env.emplace("XDG_STATE_HOME", dir_ + "/state");
    return Spawn(args, in, env);
  }

  // The golden check: exact stdout, stderr (or a fragment of it, when
  // err_fragment is true) and exit status.
  void Expect(std::vector<std::string> args, const std::string& in, const std::string& out,
              int code, const std::string& err = "", bool err_fragment = false) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    Outcome r = Flin(args, in);
    EXPECT_EQ(Printable(r.out), Printable(out)) << "flin" << cmd;
    EXPECT_EQ(r.code, code) << "flin" << cmd << "\nstderr: " << r.err;
    if (err_fragment) {
      EXPECT_NE(r.err.find(err), std::string::npos)
          << "flin" << cmd << "\nstderr: " << r.err << "\nwanted: " << err;
    } else {
      EXPECT_EQ(r.err, err) << "flin" << cmd;
    }
  }

  std::string dir_, data_dir_, socket_, addr_;
  pid_t flind_pid_ = -1;
};

std::vector<std::string> SortedLines(const std::string& s, char sep = '\n') {
  std::vector<std::string> lines;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      lines.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST_F(CliTest, GetAndSet) {
  Expect({"get", "k"}, "", "", 1);
  Expect({"set", "k", "hello world"}, "", "OK\n", 0);
  Expect({"get", "k"}, "", "hello world", 0);  // no newline added in a pipe
  Expect({"get", "k", "--json"}, "", "\"hello world\"\n", 0);
  Expect({"--json", "get", "missing"}, "", "null\n", 1);
  Expect({"get", "k", "--human"}, "", "\"hello world\"\n", 0);
  Expect({"get", "missing", "--human"}, "", "(nil)\n", 1);
  Expect({"get", "k", "--quiet"}, "", "", 0);
  Expect({"get", "missing", "-q"}, "", "", 1);
  // Conditions: nothing written -> exit 1 and no output in a pipe.
  Expect({"set", "k", "other", "--nx"}, "", "", 1);
  Expect({"set", "fresh", "v", "--xx"}, "", "", 1);
  Expect({"get", "fresh"}, "", "", 1);
  Expect({"set", "k", "replaced", "--xx"}, "", "OK\n", 0);
  Expect({"set", "new", "v", "--nx"}, "", "OK\n", 0);
  Expect({"get", "k"}, "", "replaced", 0);
  // Values that look like flags go after --.
  Expect({"set", "neg", "--", "-5"}, "", "OK\n", 0);
  Expect({"get", "neg"}, "", "-5", 0);
}

TEST_F(CliTest, BinaryValuesThroughStdin) {
  const std::string binary("a\0b\xff\xfe\n\r\0", 8);
  Expect({"set", "bin", "-"}, binary, "OK\n", 0);
  Expect({"get", "bin"}, "", binary, 0);
  Expect({"get", "bin", "--raw"}, "", binary, 0);
  Expect({"get", "bin", "--json"}, "", "{\"base64\":\"YQBi//4KDQA=\"}\n", 0);
  Expect({"get", "bin", "--human"}, "", "\"a\\x00b\\xff\\xfe\\n\\r\\x00\"\n", 0);
  // NUL is valid UTF-8: a JSON string with \u0000.
  Expect({"set", "nul", "-"}, std::string("x\0y", 3), "OK\n", 0);
  Expect({"get", "nul", "--json"}, "", "\"x\\u0000y\"\n", 0);
  // A 1 MiB value round-trips byte for byte.
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) % 251);
  Expect({"set", "big", "-"}, big, "OK\n", 0);
  Outcome r = Flin({"get", "big"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.out == big) << "1 MiB value differs, got " << r.out.size() << " bytes";
  // --value-file, and an empty value.
  std::string file = dir_ + "/value.bin";
  std::ofstream(file, std::ios::binary) << binary;
  Expect({"set", "fromfile", "--value-file", file}, "", "OK\n", 0);
  Expect({"get", "fromfile"}, "", binary, 0);
  Expect({"set", "empty", "-"}, "", "OK\n", 0);
  Expect({"get", "empty", "--json"}, "", "\"\"\n", 0);
  Expect({"set", "x", "--value-file", dir_ + "/nope"}, "", "", 2, "nope", true);
}

TEST_F(CliTest, TtlExpirePersist) {
  Expect({"ttl", "missing"}, "", "", 1);
  Expect({"ttl", "missing", "--json"}, "", "null\n", 1);
  Expect({"ttl", "missing", "--human"}, "", "(nil)\n", 1);
  Expect({"set", "k", "v"}, "", "OK\n", 0);
  Expect({"ttl", "k"}, "", "-1\n", 0);
  Expect({"persist", "k"}, "", "0\n", 0);  // exists, had no expiry
  Expect({"expire", "k", "100"}, "", "1\n", 0);
  Outcome r = Flin({"ttl", "k"});
  EXPECT_TRUE(r.out == "100\n" || r.out == "99\n") << r.out;
  EXPECT_EQ(r.code, 0);
  r = Flin({"ttl", "k", "--ms"});
  EXPECT_EQ(r.code, 0);
  int64_t ms = std::stoll(r.out);
  EXPECT_GT(ms, 90000);
  EXPECT_LE(ms, 100000);
  Expect({"expire", "k", "50", "--nx"}, "", "0\n", 1);  // already has an expiry
  Expect({"expire", "k", "500", "--gt"}, "", "1\n", 0);
  Expect({"expire", "k", "400000", "--lt", "--ms"}, "", "1\n", 0);
  Expect({"persist", "k"}, "", "1\n", 0);
  Expect({"ttl", "k"}, "", "-1\n", 0);
  Expect({"expire", "missing", "10"}, "", "0\n", 1);
  Expect({"persist", "missing"}, "", "0\n", 1);
  Expect({"expire", "k", "--nx", "--xx", "10"}, "", "", 2, "excludes", true);
  // set --ttl / --px, and an expiry that passes.
  Expect({"set", "t", "v", "--ttl", "1000"}, "", "OK\n", 0);
  r = Flin({"ttl", "t"});
  EXPECT_TRUE(r.out == "1000\n" || r.out == "999\n") << r.out;
  Expect({"set", "p", "v", "--px", "300"}, "", "OK\n", 0);
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Flin({"get", "p"}).code == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Expect({"get", "p"}, "", "", 1);
  Expect({"set", "t", "v2", "--keepttl"}, "", "OK\n", 0);
  r = Flin({"ttl", "t"});
  EXPECT_NE(r.out, "-1\n");
  Expect({"set", "t", "v", "--ttl", "0"}, "", "", 2, "--ttl", true);
  Expect({"set", "t", "v", "--ttl", "5", "--px", "5"}, "", "", 2, "excludes", true);
}

TEST_F(CliTest, MultiKeyCommands) {
  Expect({"mset", "a", "1", "b", "2", "c", "3"}, "", "OK\n", 0);
  Expect({"mget", "a", "b", "c"}, "", "1\n2\n3\n", 0);
  Expect({"mget", "a", "nope", "c"}, "", "1\n\n3\n", 1);
  Expect({"mget", "a", "nope", "c", "-0"}, "",
         std::string("1\0\0"
                     "3\0",
                     5),
         1);
  Expect({"mget", "a", "nope", "--json"}, "", "{\"a\":\"1\",\"nope\":null}\n", 1);
  Expect({"mget", "a", "nope", "--human"}, "", "1) \"1\"\n2) (nil)\n", 1);
  Expect({"exists", "a", "b"}, "", "2\n", 0);
  Expect({"exists", "a", "nope"}, "", "1\n", 1);
  Expect({"exists", "nope"}, "", "0\n", 1);
  Expect({"exists", "a", "--json"}, "", "1\n", 0);
  Expect({"del", "a", "nope"}, "", "1\n", 0);
  Expect({"del", "nope"}, "", "0\n", 0);
  Expect({"mdel", "b", "c", "nope"}, "", "2\n", 0);
  Expect({"mdel", "nope"}, "", "0\n", 0);
  Expect({"mget", "a", "b"}, "", "\n\n", 1);
  // Conditional and expiring batches.
  Expect({"mset", "x", "1", "y", "2", "--nx"}, "", "1\n", 0);
  Expect({"mset", "x", "9", "z", "9", "--nx"}, "", "0\n", 1);  // x exists: nothing written
  Expect({"exists", "z"}, "", "0\n", 1);
  Expect({"mset", "x", "5", "q", "5", "--xx"}, "", "0\n", 1);  // q missing: nothing written
  Expect({"get", "x"}, "", "1", 0);
  Expect({"mset", "e1", "v", "e2", "v", "--ttl", "100"}, "", "1\n", 0);
  Outcome r = Flin({"ttl", "e2"});
  EXPECT_TRUE(r.out == "100\n" || r.out == "99\n") << r.out;
  // One value from stdin.
  Expect({"mset", "s1", "-", "s2", "two"}, std::string("o\0ne", 4), "OK\n", 0);
  Expect({"get", "s1"}, "", std::string("o\0ne", 4), 0);
  Expect({"mset", "s1", "-", "s2", "-"}, "x", "", 2, "stdin", true);
  // Usage errors.
  Expect({"mset", "a", "1", "b"}, "", "", 2, "even number", true);
  Expect({"mget"}, "", "", 2, "KEY", true);
  Expect({"del"}, "", "", 2, "KEY", true);
  Expect({"exists"}, "", "", 2, "KEY", true);
}

TEST_F(CliTest, KeysAndScan) {
  Expect({"keys"}, "", "", 0);
  Expect({"keys", "--json"}, "", "[]\n", 0);
  Expect({"keys", "--human"}, "", "(empty array)\n", 0);
  std::vector<std::string> args = {"mset"};
  for (int i = 0; i < 25; ++i) {
    args.push_back("user:" + std::to_string(i));
    args.push_back("v");
  }
  args.insert(args.end(), {"odd key\nwith newline", "v", "other", "v"});
  Expect(args, "", "OK\n", 0);
  Outcome r = Flin({"keys", "user:1*"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(SortedLines(r.out), (std::vector<std::string>{
                                    "user:1", "user:10", "user:11", "user:12", "user:13", "user:14",
                                    "user:15", "user:16", "user:17", "user:18", "user:19"}));
  r = Flin({"-0", "scan", "--count", "3"});  // many round trips
  EXPECT_EQ(r.code, 0) << r.err;
  auto all = SortedLines(r.out, '\0');
  EXPECT_EQ(all.size(), 27u);
  EXPECT_TRUE(std::find(all.begin(), all.end(), "odd key\nwith newline") != all.end());
  r = Flin({"scan", "user:2?", "--json"});
  EXPECT_EQ(r.code, 0);
  auto j = nlohmann::json::parse(r.out);
  std::vector<std::string> got = j.get<std::vector<std::string>>();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"user:20", "user:21", "user:22", "user:23", "user:24"}));
  r = Flin({"keys", "-0"});
  EXPECT_EQ(SortedLines(r.out, '\0').size(), 27u);
  Expect({"scan", "--count", "0"}, "", "", 2, "--count", true);
}

TEST_F(CliTest, PingInfoCall) {
  Expect({"ping"}, "", "PONG\n", 0);
  Expect({"ping", "hello there"}, "", "hello there\n", 0);
  Expect({"ping", "--no-newline"}, "", "PONG", 0);
  Expect({"ping", "--json"}, "", "\"PONG\"\n", 0);
  Outcome r = Flin({"info"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("# "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
  r = Flin({"info", "--json"});
  EXPECT_EQ(r.code, 0);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.is_object());
  EXPECT_FALSE(j.empty());
  Expect({"call", "SET", "c", "1"}, "", "OK\n", 0);
  Expect({"call", "DBSIZE"}, "", "1\n", 0);
  Expect({"call", "GET", "missing"}, "", "", 1);
  Expect({"--json", "call", "MGET", "c", "missing"}, "", "[\"1\",null]\n", 0);
  Expect({"call", "SET", "neg", "-5"}, "", "OK\n", 0);  // no -- needed after call
  Expect({"call", "NOSUCHCOMMAND", "x"}, "", "", 4, "flin: ERR unknown command", true);
  Expect({"call", "GET"}, "", "", 4, "wrong number of arguments", true);
  Expect({"call", "SET", "k", "v", "EX", "notanumber"}, "", "", 4, "ERR", true);
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  Expect({"nosuchcommand"}, "", "", 2, "nosuchcommand", true);
  Expect({"--no-such-flag", "ping"}, "", "", 2, "--no-such-flag", true);
  Expect({"get"}, "", "", 2, "KEY is required", true);
  Expect({"get", "a", "b"}, "", "", 2, "", true);
  Expect({"set", "k"}, "", "", 2, "VALUE", true);
  Expect({"ttl"}, "", "", 2, "", true);
  Expect({"expire", "k", "soon"}, "", "", 2, "", true);
  Expect({"persist"}, "", "", 2, "", true);
  Expect({"--json", "--raw", "ping"}, "", "", 2, "excludes", true);
  Expect({"--color", "sometimes", "ping"}, "", "", 2, "", true);
  Expect({"--timeout", "-1", "ping"}, "", "", 2, "", true);
  Expect({"completion", "tcsh"}, "", "", 2, "tcsh", true);
  Expect({"--addr", "nonsense:port:x", "ping"}, "", "", 2, "", true);
  Outcome r = Flin({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("flin ", 0), 0u) << r.out;
  r = Flin({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("EXIT STATUS"), std::string::npos);
  r = Flin({"mset", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--ttl"), std::string::npos);
}

TEST_F(CliTest, ConnectionErrorsExitThree) {
  for (const char* cmd : {"get", "set", "del", "mget", "mdel", "exists", "ttl", "persist"}) {
    std::vector<std::string> args = {"--addr", "unix:" + dir_ + "/no.sock", cmd, "k"};
    if (std::string(cmd) == "set") args.push_back("v");
    Outcome r = Flin(args);
    EXPECT_EQ(r.code, 3) << cmd;
    EXPECT_EQ(r.out, "") << cmd;
    EXPECT_NE(r.err.find("cannot connect to unix:" + dir_ + "/no.sock"), std::string::npos)
        << r.err;
  }
  for (std::vector<std::string> args : {std::vector<std::string>{"keys"},
                                        {"scan"},
                                        {"ping"},
                                        {"info"},
                                        {"call", "DBSIZE"},
                                        {"mset", "a", "1"},
                                        {"expire", "k", "1"}}) {
    args.insert(args.begin(), {"--addr", "127.0.0.1:1"});
    Outcome r = Flin(args);
    EXPECT_EQ(r.code, 3) << args[2] << r.err;
  }
  // The piped shell, too.
  Outcome r = Flin({"--addr", "unix:" + dir_ + "/no.sock"}, "PING\n");
  EXPECT_EQ(r.code, 3);
  // FLIN_ADDR is the default; --addr wins over it.
  r = Spawn({FLIN_BIN, "ping"}, "", {{"FLIN_ADDR", "unix:" + dir_ + "/no.sock"}});
  EXPECT_EQ(r.code, 3);
  r = Spawn({FLIN_BIN, "--addr", addr_, "ping"}, "", {{"FLIN_ADDR", "unix:/nonexistent"}});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "PONG\n");
}

TEST_F(CliTest, TimeoutExitsThree) {
  // A socket that accepts connections and never answers.
  std::string path = dir_ + "/silent.sock";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  const auto start = Clock::now();
  Outcome r = Flin({"--addr", "unix:" + path, "--timeout", "0.3", "get", "k"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
  EXPECT_NE(r.err.find("unix:" + path), std::string::npos) << r.err;
  close(fd);
}

TEST_F(CliTest, DefaultSocketFromXdgDataHome) {
  // flind's default data dir is $XDG_DATA_HOME/flin, and flin finds its socket.
  StopFlind();
  std::string xdg = dir_ + "/xdg";
  fs::create_directories(xdg);
  data_dir_ = xdg + "/flin";
  pid_t pid = fork();
  if (pid == 0) {
    setenv("XDG_DATA_HOME", xdg.c_str(), 1);
    int fd = open((dir_ + "/flind2.log").c_str(), O_WRONLY | O_CREAT, 0644);
    dup2(fd, 2);
    execl(FLIND_BIN, FLIND_BIN, "--listen", "none", static_cast<char*>(nullptr));
    _exit(127);
  }
  flind_pid_ = pid;
  std::map<std::string, std::string> env = {{"XDG_DATA_HOME", xdg}, {"FLIN_ADDR", ""}};
  Outcome r;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  do {
    r = Spawn({FLIN_BIN, "ping"}, "", env);
    if (r.code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (Clock::now() < deadline);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "PONG\n");
}

TEST_F(CliTest, PasswordAndServerErrors) {
  StopFlind();
  StartFlind({"--requirepass", "s3cret"});
  Outcome r = Flin({"get", "k"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("NOAUTH"), std::string::npos) << r.err;
  r = Flin({"--password", "wrong", "ping"});
  EXPECT_EQ(r.code, 4) << r.err;
  r = Flin({"--password", "s3cret", "ping"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "PONG\n");
  r = Flin({"set", "k", "v"}, "", {{"FLIN_PASSWORD", "s3cret"}});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Flin({"get", "k"}, "", {{"FLIN_PASSWORD", "s3cret"}});
  EXPECT_EQ(r.out, "v");
}

TEST_F(CliTest, PipedShell) {
  Expect({}, "SET a 1\nGET a\nGET nope\n", "OK\n1\n\n", 1);
  Expect({"shell"}, "PING\n", "PONG\n", 0);
  // Quoting like redis-cli, blank lines and comments, CRLF line ends.
  Expect({}, "# a comment\n\nSET \"two words\" 'it''s'\r\n", "", 2, "line 3:", true);
  Expect({}, "SET q \"a\\x00b\\tc\"\r\nGET q\n", std::string("OK\na\0b\tc\n", 9), 0);
  // An unclosed quote continues on the next line.
  Expect({}, "SET m \"line one\nline two\"\nGET m\n", "OK\nline one\nline two\n", 0);
  Expect({"get", "m"}, "", "line one\nline two", 0);
  // Errors do not stop the run; the status is the worst result.
  Expect({}, "BOGUS x\nSET b 2\nGET b\n", "OK\n2\n", 4, "flin: line 1: ERR unknown command", true);
  Expect({}, "SET c \"unterminated\n", "", 2, "line 1: unterminated quote", true);
  Expect({}, "GET nope\nBOGUS\n", "\n", 4, "line 2:", true);
  // quit stops reading.
  Expect({}, "SET d 1\nQUIT\nSET e 1\n", "OK\n", 0);
  Expect({"exists", "e"}, "", "0\n", 1);
  // A long script (pipelined in batches) keeps replies and line numbers in order.
  std::string script, want;
  for (int i = 0; i < 3000; ++i) {
    script += "SET key" + std::to_string(i) + " " + std::to_string(i) + "\n";
    want += "OK\n";
    if (i == 1234) script += "NOSUCH\n";
  }
  script += "GET key2999\n";
  want += "2999\n";
  Expect({}, script, want, 4, "flin: line 1236: ERR unknown command", true);
  // Output modes apply to piped replies too.
  Expect({"--json"}, "MGET a nope\nPING\n", "[\"1\",null]\n\"PONG\"\n", 0);
  Expect({"--human"}, "MGET a nope\n", "1) \"1\"\n2) (nil)\n", 0);
  Expect({"-0"}, "MGET a q\n", std::string("1\0a\0b\tc\0", 8), 0);
}

TEST_F(CliTest, CompletionScripts) {
  Outcome r = Flin({"completion", "bash"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("complete -F _flin_completion flin"), std::string::npos);
  r = Flin({"completion", "zsh"});
  EXPECT_EQ(r.out.rfind("#compdef flin\n", 0), 0u);
  r = Flin({"completion", "fish", "--flind"});
  EXPECT_NE(r.out.find("complete -c flind"), std::string::npos);
}

// total_commands_processed from INFO stats, read over a connection of our own.
int64_t CommandsProcessed(const std::string& addr) {
  auto a = flin::client::Address::Parse(addr);
  auto conn = flin::client::Connection::Connect(*a);
  if (!conn.ok()) {
    ADD_FAILURE() << conn.status().ToString();
    return -1;
  }
  auto info = (*conn)->Command({"INFO", "stats"});
  if (!info.ok()) return -1;
  const std::string key = "total_commands_processed:";
  size_t at = info->str.find(key);
  if (at == std::string::npos) {
    ADD_FAILURE() << info->str;
    return -1;
  }
  return std::stoll(info->str.substr(at + key.size()));
}

TEST_F(CliTest, ClusterCommandsOnStandalone) {
  Expect({"set", "k", "v"}, "", "OK\n", 0);
  Outcome r = Flin({"cluster", "status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(
      r.out.rfind("mode standalone\ncluster_id -\nnode_id 0\nrole standalone\nleader_id 0\n", 0),
      0u)
      << r.out;
  EXPECT_NE(r.out.find("\napplied_index "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nmember 0 - voter leader "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.back(), '\n');
  r = Flin({"cluster", "status", "--human"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Standalone: this flind is not part of a cluster (applied index ", 0), 0u)
      << r.out;
  r = Flin({"--json", "cluster", "status"});
  EXPECT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["mode"], "standalone");
  EXPECT_EQ(j["role"], "standalone");
  EXPECT_TRUE(j["leader_id"].is_null());
  ASSERT_EQ(j["members"].size(), 1u);
  EXPECT_EQ(j["members"][0]["self"], true);
  EXPECT_EQ(j["members"][0]["leader"], true);
  EXPECT_GE(j["applied_index"].get<int64_t>(), 1);
  // A standalone node is always healthy.
  Expect({"health"}, "", "OK\n", 0);
  Expect({"health", "--json"}, "", "\"OK\"\n", 0);
  Expect({"health", "-q"}, "", "", 0);
  Expect({"health", "--wait"}, "", "OK\n", 0);
  Expect({"health", "--timeout", "2s"}, "", "OK\n", 0);
  // Membership needs a cluster: flind's error, exit 4.
  Expect({"cluster", "add", "127.0.0.1:7380"}, "", "", 4, "not part of a cluster", true);
  Expect({"cluster", "add", "127.0.0.1:7380", "--id", "5"}, "", "", 4, "not part of a cluster",
         true);
  Expect({"cluster", "remove", "2"}, "", "", 4, "not part of a cluster", true);
  Expect({"cluster", "transfer-leader"}, "", "", 4, "not part of a cluster", true);
  Expect({"cluster", "transfer-leader", "2"}, "", "", 4, "not part of a cluster", true);
  Expect({"cluster"}, "", "", 2, "subcommand", true);
  Expect({"cluster", "add", "unix:/x.sock"}, "", "", 2, "HOST:PORT", true);
}

TEST_F(CliTest, Consistency) {
  Expect({"set", "k", "v"}, "", "OK\n", 0);
  // The connection's level, as the server sees it.
  Expect({"call", "CONSISTENCY"}, "", "linearizable\n", 0);
  Expect({"--consistency", "stale", "call", "CONSISTENCY"}, "", "stale\n", 0);
  Expect({"--consistency", "linearizable", "call", "CONSISTENCY"}, "", "linearizable\n", 0);
  Expect({"--consistency", "stale", "get", "k"}, "", "v", 0);
  Expect({"--consistency", "stale", "mget", "k", "nope"}, "", "v\n\n", 1);
  Expect({"--consistency", "stale"}, "CONSISTENCY\nGET k\n", "stale\nv\n", 0);  // piped shell
  Expect({"--consistency", "stale", "export", "--format", "jsonl", "-q"}, "",
         "{\"key\":\"k\",\"value\":\"v\"}\n", 0);
  Expect({"--consistency", "bogus", "get", "k"}, "", "", 2,
         "--consistency: must be linearizable or stale, not 'bogus'", true);
  Expect({"--consistency", "STALE", "get", "k"}, "", "", 2, "--consistency", true);
  // The default costs no round trip; stale costs exactly one.
  const int64_t n0 = CommandsProcessed(addr_);
  Expect({"ping"}, "", "PONG\n", 0);
  const int64_t n1 = CommandsProcessed(addr_);
  Expect({"--consistency", "linearizable", "ping"}, "", "PONG\n", 0);
  const int64_t n2 = CommandsProcessed(addr_);
  Expect({"--consistency", "stale", "ping"}, "", "PONG\n", 0);
  const int64_t n3 = CommandsProcessed(addr_);
  EXPECT_EQ(n2 - n1, n1 - n0);
  EXPECT_EQ(n3 - n2, n1 - n0 + 1);
  // Pool connections get it too (it is part of connecting).
  {
    flin::client::PoolConfig cfg = flin::client::DefaultPoolConfig({addr_});
    cfg.connect.consistency = "stale";
    flin::client::Pool pool(cfg);
    for (int i = 0; i < 2; ++i) {
      auto lease = pool.Acquire();
      ASSERT_TRUE(lease.ok()) << lease.status().ToString();
      auto reply = (*lease)->Command({"CONSISTENCY"});
      ASSERT_TRUE(reply.ok()) << reply.status().ToString();
      EXPECT_EQ(reply->str, "stale");
    }
    auto v = pool.Get("k");
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->value_or("<missing>"), "v");
  }
  // An unknown level is the server's to refuse: a Server error at connect.
  {
    flin::client::ConnectOptions o;
    o.consistency = "eventual";
    auto conn = flin::client::Connection::Connect(*flin::client::Address::Parse(addr_), o);
    ASSERT_FALSE(conn.ok());
    EXPECT_EQ(conn.status().code(), flin::Status::Code::kServer) << conn.status().ToString();
  }
  // Sent after AUTH.
  StopFlind();
  StartFlind({"--requirepass", "s3cret"});
  Expect({"--password", "s3cret", "--consistency", "stale", "call", "CONSISTENCY"}, "", "stale\n",
         0);
  Expect({"--consistency", "stale", "call", "CONSISTENCY"}, "", "", 4, "NOAUTH", true);
}

// Starts argv in the background with stdout/stderr going to files.
pid_t SpawnBackground(const std::vector<std::string>& argv,
                      const std::map<std::string, std::string>& env, const std::string& out_path,
                      const std::string& err_path) {
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST_F(CliTest, HealthWaitsForTheServer) {
  StopFlind();
  // Nothing listening: --wait gives up at its timeout with the last reason.
  const auto start = Clock::now();
  Expect({"health", "--wait", "--timeout", "300ms"}, "", "", 3,
         "flin: not healthy after 300ms: cannot connect to " + addr_, true);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
  Expect({"health"}, "", "", 3, "cannot connect to " + addr_, true);
  // Started before the server: connection errors count as "not yet".
  const std::string out = dir_ + "/health.out", err = dir_ + "/health.err";
  pid_t pid = SpawnBackground({FLIN_BIN, "health", "--wait", "--timeout", "60s"},
                              {{"FLIN_ADDR", addr_}}, out, err);
  // Let it find nothing to connect to a few times before flind starts.
  const auto polled = Clock::now() + std::chrono::milliseconds(300);
  while (Clock::now() < polled) {
    int status;
    ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0) << "flin health exited early: " << ReadFile(err);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  StartFlind({});
  int status = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  pid_t done = 0;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "flin health --wait did not return after flind started";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadFile(err);
  EXPECT_EQ(ReadFile(out), "OK\n");
}

// The interactive shell on a pseudo-terminal.
class Pty {
 public:
  Pty(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
    pid_ = forkpty(&fd_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Pty() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(fd_);
  }
  void Send(const std::string& s) { ASSERT_EQ(write(fd_, s.data(), s.size()), (ssize_t)s.size()); }
  // Reads until `what` shows up in the output after the last match.
  bool WaitFor(const std::string& what, int seconds = 30) {
    const auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (Clock::now() < deadline) {
      size_t at = out_.find(what, mark_);
      if (at != std::string::npos) {
        mark_ = at + what.size();
        return true;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) > 0) {
        char buf[4096];
        ssize_t n = read(fd_, buf, sizeof buf);
        if (n <= 0) break;
        out_.append(buf, static_cast<size_t>(n));
      }
    }
    return out_.find(what, mark_) != std::string::npos;
  }
  int Wait() {
    int status = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    char buf[4096];
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) return -1;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) {
        ssize_t n = read(fd_, buf, sizeof buf);
        if (n > 0) out_.append(buf, static_cast<size_t>(n));
      }
    }
    pid_ = -1;
    // Drain what the child wrote before it exited.
    pollfd p{fd_, POLLIN, 0};
    while (poll(&p, 1, 0) > 0) {
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) break;
      out_.append(buf, static_cast<size_t>(n));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& output() const { return out_; }

 private:
  int fd_ = -1;
  pid_t pid_ = -1;
  std::string out_;
  size_t mark_ = 0;
};

TEST_F(CliTest, TerminalOutputIsHumanAndColoured) {
  Expect({"mset", "a", "x y"}, "", "OK\n", 0);
  std::map<std::string, std::string> env = {{"FLIN_ADDR", addr_}, {"TERM", "xterm"}};
  {
    Pty pty({FLIN_BIN, "mget", "a", "nope"}, env);
    ASSERT_TRUE(pty.WaitFor("\"x y\"")) << pty.output();
    ASSERT_TRUE(pty.WaitFor("\x1b[2m(nil)\x1b[0m")) << pty.output();
    EXPECT_EQ(pty.Wait(), 1);
  }
  {
    env["NO_COLOR"] = "1";
    Pty pty({FLIN_BIN, "mget", "a", "nope"}, env);
    ASSERT_TRUE(pty.WaitFor("1) \"x y\"\r\n2) (nil)")) << pty.output();
    EXPECT_EQ(pty.Wait(), 1);
    EXPECT_EQ(pty.output().find('\x1b'), std::string::npos) << pty.output();
  }
  {
    // --raw on a terminal: exact bytes, and get adds no newline.
    Pty pty({FLIN_BIN, "--raw", "get", "a"}, env);
    EXPECT_EQ(pty.Wait(), 0);
    EXPECT_EQ(pty.output(), "x y");
  }
  // --color always forces colours in a pipe (with --human).
  Expect({"--human", "--color", "always", "get", "nope"}, "", "\x1b[2m(nil)\x1b[0m\n", 1);
  Expect({"--human", "--color", "never", "get", "nope"}, "", "(nil)\n", 1);
}

TEST_F(CliTest, InteractiveShell) {
  std::string state = dir_ + "/state";
  std::map<std::string, std::string> env = {
      {"FLIN_ADDR", addr_}, {"TERM", "xterm"}, {"XDG_STATE_HOME", state}, {"NO_COLOR", "1"}};
  {
    Pty pty({FLIN_BIN}, env);
    ASSERT_TRUE(pty.WaitFor("flin> ")) << pty.output();
    pty.Send("SET greeting \"hello world\"\r");
    ASSERT_TRUE(pty.WaitFor("OK")) << pty.output();
    ASSERT_TRUE(pty.WaitFor("flin> "));
    // Tab completes command names (libedit redraws, so the proof is that
    // the completed command runs: "pers greeting" would be an error)...
    pty.Send("pers\t");
    pty.Send(" greeting\r");
    ASSERT_TRUE(pty.WaitFor("(integer) 0")) << pty.output();
    // ...and keywords of the command's syntax.
    pty.Send("SET k v KEEP\t");
    pty.Send("\r");
    ASSERT_TRUE(pty.WaitFor("OK")) << pty.output();
    pty.Send("TTL k\r");
    ASSERT_TRUE(pty.WaitFor("(integer) -1")) << pty.output();
    pty.Send("GET greeting\r");
    ASSERT_TRUE(pty.WaitFor("\"hello world\"")) << pty.output();
    // A multi-line value: an open quote continues on the next line.
    pty.Send("SET multi \"first\r");
    ASSERT_TRUE(pty.WaitFor("...> ")) << pty.output();
    pty.Send("second\"\r");
    ASSERT_TRUE(pty.WaitFor("OK")) << pty.output();
    pty.Send("GET multi\r");
    ASSERT_TRUE(pty.WaitFor("\"first\\nsecond\"")) << pty.output();
    // Errors never end the shell.
    pty.Send("NOSUCHCOMMAND\r");
    ASSERT_TRUE(pty.WaitFor("(error) ERR unknown command")) << pty.output();
    pty.Send("GET \"bad\"quote\r");
    ASSERT_TRUE(pty.WaitFor("(error)")) << pty.output();
    pty.Send("help mset\r");
    ASSERT_TRUE(pty.WaitFor("MSET key value [key value ...]")) << pty.output();
    pty.Send("help\r");
    ASSERT_TRUE(pty.WaitFor("PEXPIRETIME")) << pty.output();
    pty.Send("MGET greeting nope\r");
    ASSERT_TRUE(pty.WaitFor("1) \"hello world\"")) << pty.output();
    ASSERT_TRUE(pty.WaitFor("2) (nil)")) << pty.output();
    pty.Send("quit\r");
    EXPECT_EQ(pty.Wait(), 0);
  }
  // History persisted, private to the user.
  struct stat st {};
  ASSERT_EQ(stat((state + "/flin/history").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((state + "/flin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::ifstream h(state + "/flin/history");
  std::stringstream ss;
  ss << h.rdbuf();
  EXPECT_NE(ss.str().find("greeting"), std::string::npos) << ss.str();
  {
    // The history is loaded again: Up recalls the last command.
    Pty pty({FLIN_BIN, "shell"}, env);
    ASSERT_TRUE(pty.WaitFor("flin> ")) << pty.output();
    pty.Send("\x1b[A");
    ASSERT_TRUE(pty.WaitFor("quit")) << pty.output();
    pty.Send("\x15");  // clear the line (Ctrl-U)
    pty.Send("\x04");  // Ctrl-D on an empty line leaves
    EXPECT_EQ(pty.Wait(), 0);
  }
  {
    // No server: the shell reports it and keeps going.
    auto env2 = env;
    env2["FLIN_ADDR"] = "unix:" + dir_ + "/none.sock";
    Pty pty({FLIN_BIN}, env2);
    ASSERT_TRUE(pty.WaitFor("cannot connect")) << pty.output();
    pty.Send("PING\r");
    ASSERT_TRUE(pty.WaitFor("cannot connect")) << pty.output();
    pty.Send("exit\r");
    EXPECT_EQ(pty.Wait(), 0);
  }
}

}  // namespace
