// Integration tests for the client library against a real redis-server
// (started per test on a free port, in its own temp dir, with a unix socket
// too) and against tiny scripted socket servers for the failures Redis will
// not produce on demand (silence, garbage, a close mid-reply).
//
// Redis 7 has no MDEL and no MSETEX (Redis 8.4): those helpers are checked
// to surface the server's error as Status::Server here; the same calls are
// exercised against flind by tests/integration.
#include "net/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/clock.h"
#include "base/strings.h"

namespace flin::client {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using Code = Status::Code;

constexpr const char* kRedisServer = "/usr/bin/redis-server";

// --- helpers ---------------------------------------------------------------

std::string MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "flin-client-test-XXXXXX").string();
  char* dir = ::mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr) << std::strerror(errno);
  return tmpl;
}

// A TCP listener on 127.0.0.1 with an OS-chosen port. Never accepts unless
// asked: the kernel completes handshakes into the backlog, so clients
// connect fine and then hear nothing.
class Listener {
 public:
  explicit Listener(int backlog = 16) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    EXPECT_EQ(::listen(fd_, backlog), 0);
    socklen_t len = sizeof(sa);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len), 0);
    port_ = ntohs(sa.sin_port);
  }
  // A unix socket listener at `path` instead.
  Listener(const std::string& path, int backlog) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    EXPECT_LT(path.size(), sizeof(sa.sun_path));
    std::memcpy(sa.sun_path, path.data(), path.size());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << std::strerror(errno);
    EXPECT_EQ(::listen(fd_, backlog), 0);
  }
  ~Listener() { Close(); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }
  uint16_t port() const { return port_; }
  Address address() const {
    if (!path_.empty()) return Address::Parse("unix:" + path_).value();
    return Address::Parse("127.0.0.1:" + std::to_string(port_)).value();
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::string path_;
};

uint16_t FreePort() {
  Listener l;
  return l.port();
}

// A one-connection scripted server: accepts, waits until it has read
// `read_at_least` bytes of request, writes `reply`, then closes (or holds
// the connection open until destroyed when hold is true).
class ScriptedServer {
 public:
  // `unix_path` non-empty: listen there instead of on TCP.
  ScriptedServer(std::string reply, size_t read_at_least, bool hold = false,
                 const std::string& unix_path = "")
      : listener_(unix_path.empty() ? Listener() : Listener(unix_path, 16)),
        thread_([this, reply = std::move(reply), read_at_least, hold] {
          int c = ::accept(listener_.fd(), nullptr, nullptr);
          if (c < 0) return;
          size_t got = 0;
          char buf[4096];
          while (got < read_at_least) {
            ssize_t n = ::recv(c, buf, sizeof(buf), 0);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
          }
          if (!reply.empty()) (void)!::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
          if (hold) {
            // Wait for the client to go away (or the test to end).
            while (::recv(c, buf, sizeof(buf), 0) > 0) {
            }
          }
          ::close(c);
        }) {}
  ~ScriptedServer() {
    ::shutdown(listener_.fd(), SHUT_RDWR);  // unblocks accept() if unused
    thread_.join();
  }
  Address address() const { return listener_.address(); }

 private:
  Listener listener_;
  std::thread thread_;
};

// A multi-connection scripted server: the i-th accepted connection plays
// scripts[i], one step per request (one recv; the small requests these
// tests send arrive in one segment over loopback): either send a reply or
// close without one. After its script a connection stays open until the
// client closes it.
class MultiScriptServer {
 public:
  struct Step {
    std::string reply;
    bool close = false;
  };
  explicit MultiScriptServer(std::vector<std::vector<Step>> scripts)
      : scripts_(std::move(scripts)), acceptor_([this] { AcceptLoop(); }) {}
  ~MultiScriptServer() {
    ::shutdown(listener_.fd(), SHUT_RDWR);
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
  }
  Address address() const { return listener_.address(); }
  int accepted() const { return accepted_.load(); }

 private:
  void AcceptLoop() {
    for (size_t i = 0; i < scripts_.size(); ++i) {
      int c = ::accept(listener_.fd(), nullptr, nullptr);
      if (c < 0) return;
      ++accepted_;
      {
        std::lock_guard lock(mu_);
        fds_.push_back(c);
      }
      workers_.emplace_back([this, c, i] { Play(c, scripts_[i]); });
    }
  }
  void Play(int c, const std::vector<Step>& script) {
    char buf[4096];
    for (const Step& step : script) {
      if (::recv(c, buf, sizeof(buf), 0) <= 0) return;
      if (step.close) {
        ::shutdown(c, SHUT_RDWR);
        return;
      }
      (void)!::send(c, step.reply.data(), step.reply.size(), MSG_NOSIGNAL);
    }
    while (::recv(c, buf, sizeof(buf), 0) > 0) {
    }
  }

  Listener listener_;
  std::vector<std::vector<Step>> scripts_;
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<int> fds_;  // closed by the OS at exit; shut down to unblock
  std::vector<std::thread> workers_;
  std::thread acceptor_;  // last: starts after everything it uses exists
};

// A server child process (redis-server, or flind when it is built) with a
// TCP port and a unix socket, in its own temp dir, killed at the end.
class ServerProcess {
 public:
  enum class Kind { kRedis, kFlind };
  explicit ServerProcess(std::vector<std::string> extra = {}, Kind kind = Kind::kRedis)
      : kind_(kind), dir_(MakeTempDir()) {
    sock_ = dir_ + "/r.sock";
    // A port found free can be taken before the server binds it: try a few.
    for (int attempt = 0; attempt < 5 && !ready_; ++attempt) Start(extra);
    EXPECT_TRUE(ready_) << Binary() << " did not start; log:\n" << Log();
  }
  ~ServerProcess() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static std::string FlindPath() { return FLIN_FLIND_PATH; }
  static bool FlindBuilt() { return ::access(FLIN_FLIND_PATH, X_OK) == 0; }

  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  bool ready() const { return ready_; }
  Address tcp() const { return Address::Parse("127.0.0.1:" + std::to_string(port_)).value(); }
  Address unix_socket() const { return Address::Parse("unix:" + sock_).value(); }
  uint16_t port() const { return port_; }
  std::string Log() const {
    std::ifstream in(dir_ + "/server.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string Binary() const { return kind_ == Kind::kRedis ? kRedisServer : FlindPath(); }

  void Start(const std::vector<std::string>& extra) {
    port_ = FreePort();
    std::vector<std::string> args;
    if (kind_ == Kind::kRedis) {
      args = {Binary(),
              "--port",
              std::to_string(port_),
              "--bind",
              "127.0.0.1 -::1",
              "--save",
              "",
              "--appendonly",
              "no",
              "--dir",
              dir_,
              "--unixsocket",
              sock_};
    } else {
      std::filesystem::create_directories(dir_ + "/data");
      args = {Binary(),
              "--data-dir",
              dir_ + "/data",
              "--socket",
              sock_,
              "--listen",
              "127.0.0.1:" + std::to_string(port_),
              "--log-level",
              "warn"};
    }
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string log = dir_ + "/server.log";
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Poll until it answers PING on the unix socket (any reply counts: with
    // requirepass it is -NOAUTH) and accepts on TCP, or it exits (port
    // taken).
    const int64_t deadline = MonoMillis() + 15000;
    ConnectOptions opts;
    opts.connect_timeout = 1s;
    opts.read_timeout = 1s;
    while (MonoMillis() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      auto c = Connection::Connect(unix_socket(), opts);
      if (c.ok()) {
        auto r = (*c)->Command({"PING"});
        auto t = Connection::Connect(tcp(), opts);
        if (r.ok() && t.ok()) {
          ready_ = true;
          return;
        }
      }
      std::this_thread::sleep_for(5ms);
    }
    Stop();  // hung: do not leak it into the next attempt
  }

  Kind kind_;
  std::string dir_;
  std::string sock_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  bool ready_ = false;
};
using RedisServer = ServerProcess;

std::unique_ptr<Connection> MustConnect(const Address& a, ConnectOptions opts = {}) {
  auto c = Connection::Connect(a, opts);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return nullptr;
  return std::move(c.value());
}

int64_t ClientId(Connection& c) {
  auto r = c.Command({"CLIENT", "ID"});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->type, Reply::Type::kInteger);
  return r->integer;
}

class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.ready()); }
  RedisServer redis_;
};

// --- Address ---------------------------------------------------------------

TEST(AddressTest, ParsesEveryForm) {
  auto a = Address::Parse("unix:/tmp/x.sock");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, Address::Kind::kUnix);
  EXPECT_EQ(a->path, "/tmp/x.sock");
  EXPECT_EQ(a->ToString(), "unix:/tmp/x.sock");

  a = Address::Parse("/run/flin/flin.sock");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, Address::Kind::kUnix);
  EXPECT_EQ(a->path, "/run/flin/flin.sock");

  a = Address::Parse("127.0.0.1:7379");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, Address::Kind::kTcp);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7379);
  EXPECT_EQ(a->ToString(), "127.0.0.1:7379");

  a = Address::Parse("db.example.com:65535");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "db.example.com");
  EXPECT_EQ(a->port, 65535);

  a = Address::Parse("[::1]:6379");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 6379);
  EXPECT_EQ(a->ToString(), "[::1]:6379");
}

TEST(AddressTest, RejectsBadAddressesClearly) {
  for (std::string bad : {"", "localhost", "x", ":80", "host:", "host:0", "host:65536", "host:-1",
                          "host:+80", "host:8o", "::1:80", "[::1]80", "[::1", "unix:", "[]:80"}) {
    auto a = Address::Parse(bad);
    ASSERT_FALSE(a.ok()) << "'" << bad << "' parsed";
    EXPECT_EQ(a.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(a.status().message().rfind("invalid address '" + bad + "': ", 0), 0u)
        << a.status().message();
  }
  EXPECT_EQ(Address::Parse("x").status().message(),
            "invalid address 'x': expected unix:/path or host:port");
  EXPECT_NE(Address::Parse("::1:80").status().message().find("brackets"), std::string::npos);
}

// --- basic commands ----------------------------------------------------------

TEST_F(RedisTest, SetGetDelOverTcpAndUnix) {
  for (const Address& addr : {redis_.tcp(), redis_.unix_socket()}) {
    SCOPED_TRACE(addr.ToString());
    auto c = MustConnect(addr);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->healthy());
    EXPECT_EQ(c->address().ToString(), addr.ToString());
    ASSERT_TRUE(c->Set("k1", "v1").ok());
    auto g = c->Get("k1");
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    ASSERT_TRUE(g->has_value());
    EXPECT_EQ(**g, "v1");
    auto missing = c->Get("nope");
    ASSERT_TRUE(missing.ok());
    EXPECT_FALSE(missing->has_value());
    ASSERT_TRUE(c->Set("k2", "v2").ok());
    auto d = c->Del({"k1", "k2", "k3"});
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, 2);
    EXPECT_FALSE(c->Get("k1")->has_value());
    auto none = c->Del({});
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(*none, 0);
  }
}

TEST_F(RedisTest, Ipv6Loopback) {
  auto a = Address::Parse("[::1]:" + std::to_string(redis_.port()));
  ASSERT_TRUE(a.ok());
  auto c = Connection::Connect(*a);
  if (!c.ok() && c.status().message().find("Address family") != std::string::npos) {
    GTEST_SKIP() << "no IPv6 here: " << c.status().ToString();
  }
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = (*c)->Command({"PING"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, Reply::Status("PONG"));
}

TEST_F(RedisTest, HostNameIsResolved) {
  auto a = Address::Parse("localhost:" + std::to_string(redis_.port()));
  auto c = MustConnect(*a);
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->Command({"PING"}), Reply::Status("PONG"));
}

TEST_F(RedisTest, BinaryKeysAndValues) {
  auto c = MustConnect(redis_.tcp());
  ASSERT_TRUE(c);
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"k\0ey"s, "v\0al\0"s},
      {"crlf\r\nkey", "line1\r\nline2\r\n"},
      {"dollar", "$5\r\nfake\r\n*1\r\n"},
      {"", "empty key"},
      {"empty value", ""},
      {all_bytes, all_bytes + all_bytes},
  };
  for (const auto& [k, v] : cases) {
    ASSERT_TRUE(c->Set(k, v).ok()) << Printable(k);
    auto g = c->Get(k);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    ASSERT_TRUE(g->has_value()) << Printable(k);
    EXPECT_EQ(**g, v) << Printable(k);
  }
  std::vector<std::string> keys;
  for (const auto& kv : cases) keys.push_back(kv.first);
  auto mg = c->BatchGet(keys);
  ASSERT_TRUE(mg.ok()) << mg.status().ToString();
  ASSERT_EQ(mg->size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ((*mg)[i], cases[i].second);
}

TEST_F(RedisTest, OneMegabyteValues) {
  auto c = MustConnect(redis_.unix_socket());
  ASSERT_TRUE(c);
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) % 256);
  ASSERT_TRUE(c->Set("big", big).ok());
  auto g = c->Get("big");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_TRUE(g->has_value());
  EXPECT_TRUE(**g == big);

  std::map<std::string, std::string> kv;
  for (int i = 0; i < 8; ++i) kv["big" + std::to_string(i)] = big + std::to_string(i);
  ASSERT_TRUE(c->BatchSet(kv).ok());
  std::vector<std::string> keys;
  for (const auto& [k, v] : kv) keys.push_back(k);
  auto mg = c->BatchGet(keys);
  ASSERT_TRUE(mg.ok()) << mg.status().ToString();
  size_t i = 0;
  for (const auto& [k, v] : kv) EXPECT_TRUE((*mg)[i++] == v) << k;

  auto tcp = MustConnect(redis_.tcp());
  ASSERT_TRUE(tcp);
  auto g2 = tcp->Get("big");
  ASSERT_TRUE(g2.ok());
  EXPECT_TRUE(**g2 == big);
}

TEST_F(RedisTest, SetWithTtl) {
  auto c = MustConnect(redis_.tcp());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Set("t", "v", 60000ms).ok());
  auto pttl = c->Command({"PTTL", "t"});
  ASSERT_TRUE(pttl.ok());
  ASSERT_EQ(pttl->type, Reply::Type::kInteger);
  EXPECT_GT(pttl->integer, 0);
  EXPECT_LE(pttl->integer, 60000);
  ASSERT_TRUE(c->Set("p", "v").ok());
  EXPECT_EQ(*c->Command({"PTTL", "p"}), Reply::Integer(-1));
}

TEST_F(RedisTest, BatchSetAndGet) {
  auto c = MustConnect(redis_.tcp());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->BatchSet({{"a", "1"}, {"b", "2"}, {"c", "3"}}).ok());
  auto mg = c->BatchGet({"a", "missing", "c", "b"});
  ASSERT_TRUE(mg.ok()) << mg.status().ToString();
  std::vector<std::optional<std::string>> want = {"1", std::nullopt, "3", "2"};
  EXPECT_EQ(*mg, want);
}

TEST_F(RedisTest, CommandsRedisLacksSurfaceAsServerErrors) {
  auto c = MustConnect(redis_.tcp());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Set("a", "1").ok());
  Status s = c->BatchSet({{"a", "2"}, {"b", "2"}}, 5000ms);
  EXPECT_EQ(s.code(), Code::kServer) << s.ToString();
  EXPECT_NE(s.message().find("unknown command 'MSETEX'"), std::string::npos) << s.message();
  auto d = c->BatchDelete({"a", "b"});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kServer) << d.status().ToString();
  EXPECT_NE(d.status().message().find("unknown command 'MDEL'"), std::string::npos);
  // A server error leaves the stream in sync and the connection usable.
  EXPECT_TRUE(c->healthy());
  EXPECT_EQ(**c->Get("a"), "1");
}

TEST_F(RedisTest, ServerErrorsFromTypedHelpers) {
  auto c = MustConnect(redis_.tcp());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Command({"LPUSH", "list", "x"}).ok());
  auto g = c->Get("list");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kServer);
  EXPECT_EQ(g.status().message().rfind("WRONGTYPE", 0), 0u) << g.status().message();
  auto mg = c->BatchGet({"list"});  // MGET returns nil for the wrong type
  ASSERT_TRUE(mg.ok());
  EXPECT_FALSE((*mg)[0].has_value());
  Status s = c->Set("k", "v", std::chrono::milliseconds(-5));  // no PX: ttl <= 0
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(c->healthy());
}

TEST_F(RedisTest, CommandReturnsErrorRepliesAsValues) {
  auto c = MustConnect(redis_.tcp());
  ASSERT_TRUE(c);
  auto r = c->Command({"NOSUCHCOMMAND", "x"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->is_error());
  EXPECT_EQ(r->str.rfind("ERR unknown command", 0), 0u) << r->str;
  auto arity = c->Command({"GET"});
  ASSERT_TRUE(arity.ok());
  EXPECT_EQ(*arity, Reply::Error("ERR wrong number of arguments for 'get' command"));
  EXPECT_EQ(c->Command({}).status().code(), Code::kInvalidArgument);
  // Nested arrays and nils from a real server.
  ASSERT_TRUE(c->Set("x", "1").ok());
  auto mget = c->Command({"MGET", "x", "y"});
  ASSERT_TRUE(mget.ok());
  EXPECT_EQ(*mget, Reply::Array({Reply::Bulk("1"), Reply::Nil()}));
  auto scan = c->Command({"SCAN", "0", "COUNT", "100"});
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->type, Reply::Type::kArray);
  ASSERT_EQ(scan->elements.size(), 2u);
  EXPECT_EQ(scan->elements[0], Reply::Bulk("0"));
  EXPECT_EQ(scan->elements[1].type, Reply::Type::kArray);
}

TEST_F(RedisTest, EmptyBatchesNeedNoRoundTrip) {
  // Against a server that never answers, an empty batch must still return
  // at once: nothing is sent.
  Listener silent;
  ConnectOptions opts;
  opts.read_timeout = 5000ms;
  auto c = MustConnect(silent.address(), opts);
  ASSERT_TRUE(c);
  const int64_t start = MonoMillis();
  EXPECT_TRUE(c->BatchSet({}).ok());
  EXPECT_TRUE(c->BatchSet({}, 1000ms).ok());
  auto mg = c->BatchGet({});
  ASSERT_TRUE(mg.ok());
  EXPECT_TRUE(mg->empty());
  auto md = c->BatchDelete({});
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(*md, 0);
  auto p = c->Pipeline({});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->empty());
  EXPECT_LT(MonoMillis() - start, 1000);
  EXPECT_TRUE(c->healthy());
}

// --- pipelining --------------------------------------------------------------

TEST_F(RedisTest, PipelineOfThousandCommands) {
  auto c = MustConnect(redis_.tcp());
  ASSERT_TRUE(c);
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < 1000; ++i) {
    cmds.push_back({"SET", "key:" + std::to_string(i), "value:" + std::to_string(i)});
  }
  auto sets = c->Pipeline(cmds);
  ASSERT_TRUE(sets.ok()) << sets.status().ToString();
  ASSERT_EQ(sets->size(), 1000u);
  for (const Reply& r : *sets) ASSERT_EQ(r, Reply::Status("OK"));

  cmds.clear();
  for (int i = 0; i < 1000; ++i) {
    if (i == 500) cmds.push_back({"NOSUCHCOMMAND"});
    cmds.push_back({"GET", "key:" + std::to_string(i)});
  }
  auto gets = c->Pipeline(cmds);
  ASSERT_TRUE(gets.ok()) << gets.status().ToString();
  ASSERT_EQ(gets->size(), 1001u);
  for (int i = 0; i < 1001; ++i) {
    if (i == 500) {
      EXPECT_TRUE((*gets)[i].is_error());
      continue;
    }
    int k = i < 500 ? i : i - 1;
    ASSERT_EQ((*gets)[i], Reply::Bulk("value:" + std::to_string(k))) << i;
  }
  EXPECT_EQ(*c->Command({"DBSIZE"}), Reply::Integer(1000));
}

TEST_F(RedisTest, PipelineWithLargeRepliesAndRequests) {
  // ~16 MB of replies and ~16 MB of requests: both directions overflow the
  // socket buffers while the other is in flight.
  auto c = MustConnect(redis_.unix_socket());
  ASSERT_TRUE(c);
  const std::string value(64 * 1024, 'x');
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < 256; ++i) cmds.push_back({"SET", "big:" + std::to_string(i), value});
  for (int i = 0; i < 256; ++i) cmds.push_back({"GET", "big:" + std::to_string(i)});
  auto r = c->Pipeline(cmds);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 512u);
  for (int i = 0; i < 256; ++i) EXPECT_EQ((*r)[i], Reply::Status("OK"));
  for (int i = 256; i < 512; ++i) EXPECT_TRUE((*r)[i] == Reply::Bulk(value)) << i;
}

TEST_F(RedisTest, PipelineRejectsEmptyCommand) {
  auto c = MustConnect(redis_.tcp());
  ASSERT_TRUE(c);
  auto r = c->Pipeline({{"PING"}, {}});
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(c->healthy());
  EXPECT_EQ(*c->Command({"PING"}), Reply::Status("PONG"));
}

// --- AUTH --------------------------------------------------------------------

TEST(AuthTest, PasswordIsSentOnConnect) {
  RedisServer redis({"--requirepass", "s3cret"});
  ASSERT_TRUE(redis.ready());

  ConnectOptions opts;
  opts.password = "s3cret";
  auto c = MustConnect(redis.tcp(), opts);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Set("k", "v").ok());
  EXPECT_EQ(**c->Get("k"), "v");

  opts.password = "wrong";
  auto bad = Connection::Connect(redis.unix_socket(), opts);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kServer);
  EXPECT_EQ(bad.status().message().rfind("WRONGPASS", 0), 0u) << bad.status().message();

  auto anon = MustConnect(redis.tcp());
  ASSERT_TRUE(anon);
  auto g = anon->Get("k");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kServer);
  EXPECT_EQ(g.status().message().rfind("NOAUTH", 0), 0u) << g.status().message();

  // The pool reports AUTH refusal as the server's verdict.
  PoolConfig cfg = DefaultPoolConfig({redis.tcp().ToString()});
  cfg.connect.password = "wrong";
  Pool pool(cfg);
  Status s = pool.Set("k", "x");
  EXPECT_EQ(s.code(), Code::kServer) << s.ToString();
  EXPECT_EQ(pool.OpenCount(), 0u);
  cfg.connect.password = "s3cret";
  Pool good(cfg);
  EXPECT_EQ(**good.Get("k"), "v");
}

// --- failures: connect -------------------------------------------------------

TEST(ConnectFailureTest, MissingUnixSocket) {
  std::string dir = MakeTempDir();
  auto a = Address::Parse("unix:" + dir + "/none.sock");
  auto c = Connection::Connect(*a);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_EQ(c.status().message(),
            "cannot connect to unix:" + dir + "/none.sock: No such file or directory");
  std::filesystem::remove_all(dir);
}

TEST(ConnectFailureTest, UnixPathTooLong) {
  auto a = Address::Parse("unix:/" + std::string(200, 'x'));
  auto c = Connection::Connect(*a);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("socket path must be"), std::string::npos);
}

TEST(ConnectFailureTest, RefusedTcp) {
  uint16_t port = FreePort();  // nothing listens there any more
  auto a = Address::Parse("127.0.0.1:" + std::to_string(port));
  const int64_t start = MonoMillis();
  auto c = Connection::Connect(*a);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_EQ(c.status().message(),
            "cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
  EXPECT_LT(MonoMillis() - start, 1000);
}

TEST(ConnectFailureTest, UnknownHost) {
  auto a = Address::Parse("no-such-host.invalid:7379");
  auto c = Connection::Connect(*a);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_NE(c.status().message().find("cannot resolve 'no-such-host.invalid'"), std::string::npos)
      << c.status().message();
}

TEST(ConnectFailureTest, FullUnixBacklogTimesOut) {
  // A unix listener that never accepts: once its backlog is full, connect()
  // has nothing to wait on, and must give up at the connect deadline.
  std::string dir = MakeTempDir();
  std::string path = dir + "/full.sock";
  Listener listener(path, 0);
  ConnectOptions opts;
  opts.connect_timeout = 200ms;
  std::vector<std::unique_ptr<Connection>> held;
  bool timed_out = false;
  for (int i = 0; i < 20 && !timed_out; ++i) {
    const int64_t start = MonoMillis();
    auto c = Connection::Connect(*Address::Parse("unix:" + path), opts);
    if (c.ok()) {
      held.push_back(std::move(c.value()));
      continue;
    }
    EXPECT_EQ(c.status().code(), Code::kTimeout) << c.status().ToString();
    EXPECT_NE(c.status().message().find("timed out after 200 ms"), std::string::npos);
    EXPECT_GE(MonoMillis() - start, 200);
    EXPECT_LT(MonoMillis() - start, 2000);
    timed_out = true;
  }
  EXPECT_TRUE(timed_out) << "backlog never filled after " << held.size() << " connections";
  std::filesystem::remove_all(dir);
}

// --- failures: silence, garbage, closes -------------------------------------

TEST(TimeoutTest, SilentServerTimesOutWithinTheDeadline) {
  Listener silent;
  ConnectOptions opts;
  opts.read_timeout = 300ms;
  auto c = MustConnect(silent.address(), opts);
  ASSERT_TRUE(c);
  const int64_t start = MonoMillis();
  auto r = c->Get("k");
  const int64_t took = MonoMillis() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status().ToString();
  EXPECT_EQ(r.status().message(),
            "no reply from " + silent.address().ToString() + " within 300 ms");
  EXPECT_GE(took, 300);
  EXPECT_LT(took, 1500);
  // A late reply would now be taken for the next command's: unusable.
  EXPECT_FALSE(c->healthy());
  auto again = c->Command({"PING"});
  EXPECT_EQ(again.status().code(), Code::kUnavailable);
  EXPECT_NE(again.status().message().find("unusable after an earlier error"), std::string::npos);
}

TEST(TimeoutTest, WriteTimesOutWhenPeerDoesNotRead) {
  Listener silent;
  ConnectOptions opts;
  opts.write_timeout = 300ms;
  opts.read_timeout = 300ms;
  auto c = MustConnect(silent.address(), opts);
  ASSERT_TRUE(c);
  std::string huge(64 << 20, 'x');  // far more than loopback buffers hold
  const int64_t start = MonoMillis();
  Status s = c->Set("k", huge);
  const int64_t took = MonoMillis() - start;
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  EXPECT_NE(s.message().find("writing to " + silent.address().ToString() + " timed out"),
            std::string::npos)
      << s.message();
  EXPECT_GE(took, 300);
  EXPECT_LT(took, 3000);
  EXPECT_FALSE(c->healthy());
}

int64_t CpuMillis() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

TEST(TimeoutTest, HalfClosedPeerThatDoesNotReadDoesNotSpin) {
  // The peer sends EOF but never reads: the write must wait for buffer
  // space without busy-looping on the (always readable) EOF.
  Listener listener;
  ConnectOptions opts;
  opts.write_timeout = 2000ms;
  auto c = MustConnect(listener.address(), opts);
  ASSERT_TRUE(c);
  int peer = ::accept(listener.fd(), nullptr, nullptr);
  ASSERT_GE(peer, 0);
  ASSERT_EQ(::shutdown(peer, SHUT_WR), 0);
  std::string huge(16 << 20, 'x');  // more than the unread socket holds
  const int64_t cpu_start = CpuMillis();
  Status s = c->Set("k", huge);
  const int64_t cpu = CpuMillis() - cpu_start;
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  // A busy loop burns most of the 2 s even on a loaded machine.
  EXPECT_LT(cpu, 250) << "CPU ms spent during a 2000 ms write timeout";
  ::close(peer);
}

TEST(ProtocolFailureTest, GarbageReplyIsAProtocolError) {
  ScriptedServer server("%7\r\nnot resp2\r\n", 1, /*hold=*/true);
  auto c = MustConnect(server.address());
  ASSERT_TRUE(c);
  auto r = c->Command({"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kProtocol);
  EXPECT_NE(r.status().message().find("invalid reply from " + server.address().ToString()),
            std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("unknown reply type byte 0x25"), std::string::npos);
  EXPECT_FALSE(c->healthy());
}

TEST(ProtocolFailureTest, WrongShapeForTypedHelper) {
  ScriptedServer server(":12\r\n", 1, /*hold=*/true);
  auto c = MustConnect(server.address());
  ASSERT_TRUE(c);
  auto g = c->Get("k");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kProtocol);
  EXPECT_EQ(g.status().message(), "unexpected integer reply to GET: 12");
  // The reply was well-formed RESP: the stream is still in sync.
  EXPECT_TRUE(c->healthy());
}

TEST(ProtocolFailureTest, CloseMidReply) {
  ScriptedServer server("$10\r\nabc", 1);
  auto c = MustConnect(server.address());
  ASSERT_TRUE(c);
  auto g = c->Get("k");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kUnavailable);
  EXPECT_EQ(g.status().message(),
            "connection to " + server.address().ToString() + " closed by the server");
  EXPECT_FALSE(c->healthy());
}

TEST(ProtocolFailureTest, PipelineCutShortSaysHowFar) {
  ScriptedServer server("+OK\r\n+OK\r\n", 1);
  auto c = MustConnect(server.address());
  ASSERT_TRUE(c);
  auto r = c->Pipeline({{"PING"}, {"PING"}, {"PING"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("after 2 of 3 replies"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(r.status().message().find("last:"), std::string::npos) << r.status().message();
}

TEST(ProtocolFailureTest, PipelineCutShortByAnErrorQuotesIt) {
  ScriptedServer server("+OK\r\n-ERR Protocol error: invalid bulk length\r\n", 1);
  auto c = MustConnect(server.address());
  ASSERT_TRUE(c);
  auto r = c->Pipeline({{"PING"}, {"PING"}, {"PING"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find(
                "after 2 of 3 replies (last: ERR Protocol error: invalid bulk length)"),
            std::string::npos)
      << r.status().message();
}

TEST(ProtocolFailureTest, WhatTheServerSaidBeforeClosingIsReported) {
  // Like redis at maxclients: an error line, then close, while the client
  // is still writing a large request (unix socket: the close is seen
  // deterministically after the data).
  std::string dir = MakeTempDir();
  {
    ScriptedServer server("-ERR max number of clients reached\r\n", 0, false, dir + "/s.sock");
    auto c = MustConnect(server.address());
    ASSERT_TRUE(c);
    Status s = c->Set("k", std::string(32 << 20, 'x'));
    EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
    EXPECT_NE(s.message().find("lost while writing"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("(server said: ERR max number of clients reached)"),
              std::string::npos)
        << s.message();
  }
  std::filesystem::remove_all(dir);
}

TEST(ProtocolFailureTest, PeerClosedWhileWritingDoesNotRaiseSigpipe) {
  // SIGPIPE keeps its default (fatal) action here: the client must not
  // trigger it.
  struct sigaction old {};
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, &old);
  {
    ScriptedServer server("", 0);  // accept, then close at once
    auto c = MustConnect(server.address());
    ASSERT_TRUE(c);
    std::string big(32 << 20, 'x');
    Status s;
    for (int i = 0; i < 3 && c->healthy(); ++i) s = c->Set("k", big);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
    EXPECT_FALSE(c->healthy());
  }
  ::sigaction(SIGPIPE, &old, nullptr);
}

// --- pool --------------------------------------------------------------------

TEST(PoolConfigTest, Defaults) {
  PoolConfig cfg = DefaultPoolConfig({"unix:/tmp/a.sock", "127.0.0.1:7379"});
  EXPECT_TRUE(cfg.address_error.ok());
  ASSERT_EQ(cfg.addrs.size(), 2u);
  EXPECT_EQ(cfg.addrs[0].ToString(), "unix:/tmp/a.sock");
  EXPECT_EQ(cfg.max_idle, 8u);
  EXPECT_EQ(cfg.max_open, 64u);
  EXPECT_EQ(cfg.connect.connect_timeout, 2000ms);
  EXPECT_EQ(cfg.connect.read_timeout, 5000ms);
  EXPECT_EQ(cfg.connect.write_timeout, 5000ms);
}

TEST(PoolConfigTest, BadAddressIsReportedByEveryCall) {
  Pool pool(DefaultPoolConfig({"127.0.0.1:7379", "nonsense"}));
  auto g = pool.Get("k");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(g.status().message(), "invalid address 'nonsense': expected unix:/path or host:port");
  Pool empty(DefaultPoolConfig({}));
  EXPECT_EQ(empty.Set("k", "v").code(), Code::kInvalidArgument);
}

TEST_F(RedisTest, PoolReusesConnections) {
  Pool pool(DefaultPoolConfig({redis_.tcp().ToString()}));
  ASSERT_TRUE(pool.Set("k", "v").ok());
  for (int i = 0; i < 20; ++i) {
    auto g = pool.Get("k");
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(**g, "v");
  }
  EXPECT_EQ(pool.OpenCount(), 1u);
  EXPECT_EQ(pool.IdleCount(), 1u);
  int64_t id1, id2;
  {
    auto lease = pool.Acquire();
    ASSERT_TRUE(lease.ok());
    id1 = ClientId(**lease);
    EXPECT_EQ(pool.IdleCount(), 0u);
  }
  {
    auto lease = pool.Acquire();
    ASSERT_TRUE(lease.ok());
    id2 = ClientId(**lease);
  }
  EXPECT_EQ(id1, id2);
  ASSERT_TRUE(pool.BatchSet({{"a", "1"}, {"b", "2"}}).ok());
  auto mg = pool.BatchGet({"a", "b", "c"});
  ASSERT_TRUE(mg.ok());
  EXPECT_EQ(*mg, (std::vector<std::optional<std::string>>{"1", "2", std::nullopt}));
  EXPECT_EQ(*pool.Del({"a", "b"}), 2);
  EXPECT_EQ(pool.BatchDelete({"a"}).status().code(), Code::kServer);
  EXPECT_EQ(pool.OpenCount(), 1u);
}

TEST_F(RedisTest, PoolFallsBackToTheNextAddress) {
  uint16_t dead = FreePort();
  Pool pool(DefaultPoolConfig({"127.0.0.1:" + std::to_string(dead), redis_.tcp().ToString()}));
  ASSERT_TRUE(pool.Set("k", "v").ok());
  EXPECT_EQ(**pool.Get("k"), "v");

  Pool none(DefaultPoolConfig({"127.0.0.1:" + std::to_string(dead), "unix:/nonexistent.sock"}));
  Status s = none.Set("k", "v");
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("no server answered"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("Connection refused"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.message();
  EXPECT_EQ(none.OpenCount(), 0u);
}

TEST_F(RedisTest, DeadIdleConnectionIsDroppedAndNextCallSucceeds) {
  Pool pool(DefaultPoolConfig({redis_.tcp().ToString()}));
  int64_t pooled_id;
  {
    auto lease = pool.Acquire();
    ASSERT_TRUE(lease.ok());
    pooled_id = ClientId(**lease);
  }
  ASSERT_EQ(pool.IdleCount(), 1u);
  // The server closes the idle pooled connection behind the pool's back.
  auto admin = MustConnect(redis_.tcp());
  ASSERT_TRUE(admin);
  auto kill = admin->Command({"CLIENT", "KILL", "ID", std::to_string(pooled_id)});
  ASSERT_TRUE(kill.ok());
  ASSERT_EQ(*kill, Reply::Integer(1));
  ASSERT_TRUE(admin->Set("k", "after").ok());

  auto g = pool.Get("k");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(**g, "after");
  EXPECT_EQ(pool.OpenCount(), 1u);
  auto lease = pool.Acquire();
  ASSERT_TRUE(lease.ok());
  EXPECT_NE(ClientId(**lease), pooled_id);
}

TEST_F(RedisTest, WriteAfterIdleConnectionsWereClosedReconnects) {
  // The server closed the pooled connection (as on a restart or its idle
  // timeout); a write must go out on a fresh connection, not fail on the
  // stale one.
  std::string sock = redis_.unix_socket().ToString();
  Pool pool(DefaultPoolConfig({sock}));
  ASSERT_TRUE(pool.Set("k", "v").ok());
  auto admin = MustConnect(redis_.unix_socket());
  ASSERT_TRUE(admin);
  // Closes every normal client except admin itself.
  auto kill = admin->Command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  ASSERT_TRUE(kill.ok());
  ASSERT_EQ(kill->type, Reply::Type::kInteger);
  EXPECT_GE(kill->integer, 1);
  Status s = pool.Set("k", "v2");
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(**admin->Get("k"), "v2");
}

TEST(PoolFailureTest, BrokenLeaseIsNotReturned) {
  Listener silent;
  PoolConfig cfg = DefaultPoolConfig({silent.address().ToString()});
  cfg.connect.read_timeout = 100ms;
  Pool pool(cfg);
  auto g = pool.Get("k");
  EXPECT_EQ(g.status().code(), Code::kTimeout) << g.status().ToString();
  EXPECT_EQ(pool.OpenCount(), 0u);
  EXPECT_EQ(pool.IdleCount(), 0u);
}

// The retry rule, made deterministic with scripted servers: the reused
// connection dies after the request was sent.
TEST(PoolRetryTest, ReadRetriesOnAFreshConnectionWhenAReusedOneIsLost) {
  MultiScriptServer server({{{"+OK\r\n"}, {"", true}}, {{"$1\r\nv\r\n"}}});
  Pool pool(DefaultPoolConfig({server.address().ToString()}));
  ASSERT_TRUE(pool.Set("k", "v").ok());
  auto g = pool.Get("k");  // sent on the reused connection, which then closes
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(**g, "v");
  EXPECT_EQ(server.accepted(), 2);
  EXPECT_EQ(pool.OpenCount(), 1u);
}

TEST(PoolRetryTest, WriteIsNotRetriedOnceSent) {
  MultiScriptServer server({{{"+OK\r\n"}, {"", true}}, {{"+OK\r\n"}}});
  Pool pool(DefaultPoolConfig({server.address().ToString()}));
  ASSERT_TRUE(pool.Set("k", "v").ok());
  Status s = pool.Set("k", "v2");  // the server may have applied it: no retry
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(pool.OpenCount(), 0u);  // the dead connection was dropped
  EXPECT_TRUE(pool.Set("k", "v2").ok());
  EXPECT_EQ(server.accepted(), 2);
}

TEST(PoolRetryTest, FreshConnectionFailureIsNotRetried) {
  MultiScriptServer server({{{"", true}}, {{"$1\r\nv\r\n"}}});
  Pool pool(DefaultPoolConfig({server.address().ToString()}));
  auto g = pool.Get("k");
  EXPECT_EQ(g.status().code(), Code::kUnavailable) << g.status().ToString();
  EXPECT_EQ(server.accepted(), 1);
}

TEST_F(RedisTest, MaxOpenBlocksThenTimesOut) {
  PoolConfig cfg = DefaultPoolConfig({redis_.tcp().ToString()});
  cfg.max_open = 1;
  cfg.connect.connect_timeout = 300ms;
  Pool pool(cfg);
  auto held = pool.Acquire();
  ASSERT_TRUE(held.ok());
  const int64_t start = MonoMillis();
  auto second = pool.Acquire();
  const int64_t took = MonoMillis() - start;
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kTimeout);
  EXPECT_NE(second.status().message().find("pool exhausted"), std::string::npos);
  EXPECT_GE(took, 300);
  EXPECT_LT(took, 2000);
  EXPECT_EQ(pool.OpenCount(), 1u);
}

TEST_F(RedisTest, MaxOpenWaiterGetsTheReleasedConnection) {
  PoolConfig cfg = DefaultPoolConfig({redis_.tcp().ToString()});
  cfg.max_open = 1;
  cfg.connect.connect_timeout = 10s;
  Pool pool(cfg);
  auto held = pool.Acquire();
  ASSERT_TRUE(held.ok());
  const int64_t held_id = ClientId(**held);
  std::atomic<bool> started{false};
  int64_t waiter_id = -1;
  Status waiter_status;
  std::thread waiter([&] {
    started = true;
    auto lease = pool.Acquire();
    if (!lease.ok()) {
      waiter_status = lease.status();
      return;
    }
    waiter_id = ClientId(**lease);
  });
  while (!started) std::this_thread::yield();
  { auto release = std::move(held.value()); }  // back to the pool
  waiter.join();
  EXPECT_TRUE(waiter_status.ok()) << waiter_status.ToString();
  EXPECT_EQ(waiter_id, held_id);
  EXPECT_EQ(pool.OpenCount(), 1u);
}

TEST_F(RedisTest, LeaseMoveAssignmentReturnsTheOldConnection) {
  PoolConfig cfg = DefaultPoolConfig({redis_.tcp().ToString()});
  cfg.max_open = 2;
  Pool pool(cfg);
  auto a = pool.Acquire();
  auto b = pool.Acquire();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(pool.OpenCount(), 2u);
  a.value() = std::move(b.value());  // a's old connection goes back
  EXPECT_EQ(pool.IdleCount(), 1u);
  EXPECT_EQ(pool.OpenCount(), 2u);
  ASSERT_NE(a.value().get(), nullptr);
  EXPECT_EQ(*a.value()->Command({"PING"}), Reply::Status("PONG"));
}

TEST_F(RedisTest, PoolIsThreadSafe) {
  PoolConfig cfg = DefaultPoolConfig({redis_.unix_socket().ToString()});
  cfg.max_open = 3;
  cfg.max_idle = 2;
  Pool pool(cfg);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        std::string k = "t" + std::to_string(t) + ":" + std::to_string(i);
        if (!pool.Set(k, k).ok()) ++failures;
        auto g = pool.Get(k);
        if (!g.ok() || !g->has_value() || **g != k) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(pool.OpenCount(), 2u);  // at most max_idle stay open when idle
  EXPECT_EQ(pool.OpenCount(), pool.IdleCount());
  auto c = MustConnect(redis_.tcp());
  EXPECT_EQ(*c->Command({"DBSIZE"}), Reply::Integer(900));
}

// --- against flind -------------------------------------------------------------
// The commands Redis 7 lacks (MDEL, MSETEX) checked against flind itself,
// when it has been built in this build tree (skipped otherwise: building
// client_test does not build the daemon).

class FlindTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ServerProcess::FlindBuilt()) {
      GTEST_SKIP() << "flind not built at " << ServerProcess::FlindPath();
    }
    server_ =
        std::make_unique<ServerProcess>(std::vector<std::string>{}, ServerProcess::Kind::kFlind);
    ASSERT_TRUE(server_->ready());
  }
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(FlindTest, BatchSetWithTtlAndBatchDelete) {
  auto c = MustConnect(server_->unix_socket());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->BatchSet({{"a", "1"}, {"b", "2"}}).ok());
  Status s = c->BatchSet({{"t1", "x"}, {"t2", "y\0z"s}}, 60000ms);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (const char* k : {"t1", "t2"}) {
    auto pttl = c->Command({"PTTL", k});
    ASSERT_TRUE(pttl.ok());
    ASSERT_EQ(pttl->type, Reply::Type::kInteger) << DebugString(*pttl);
    EXPECT_GT(pttl->integer, 0) << k;
    EXPECT_LE(pttl->integer, 60000) << k;
  }
  auto mg = c->BatchGet({"a", "t2", "missing"});
  ASSERT_TRUE(mg.ok()) << mg.status().ToString();
  EXPECT_EQ(*mg, (std::vector<std::optional<std::string>>{"1", "y\0z"s, std::nullopt}));
  auto d = c->BatchDelete({"a", "t1", "missing"});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, 2);
  EXPECT_FALSE(c->Get("a")->has_value());
  EXPECT_FALSE(c->Get("t1")->has_value());
  EXPECT_EQ(**c->Get("b"), "2");
}

TEST_F(FlindTest, TypedHelpersPipelineAndErrors) {
  auto c = MustConnect(server_->tcp());
  ASSERT_TRUE(c);
  const std::string v = "bin\0\r\nvalue"s;
  ASSERT_TRUE(c->Set("k", v).ok());
  EXPECT_EQ(**c->Get("k"), v);
  ASSERT_TRUE(c->Set("ttl", "x", 30000ms).ok());
  auto pttl = c->Command({"PTTL", "ttl"});
  ASSERT_TRUE(pttl.ok());
  EXPECT_GT(pttl->integer, 0);
  EXPECT_EQ(*c->Del({"k", "ttl", "nope"}), 2);
  auto arity = c->Command({"GET"});
  ASSERT_TRUE(arity.ok());
  EXPECT_EQ(*arity, Reply::Error("ERR wrong number of arguments for 'get' command"));
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < 1000; ++i) cmds.push_back({"SET", "p" + std::to_string(i), "v"});
  for (int i = 0; i < 1000; ++i) cmds.push_back({"GET", "p" + std::to_string(i)});
  auto r = c->Pipeline(cmds);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ((*r)[i], Reply::Status("OK")) << i;
  for (int i = 1000; i < 2000; ++i) ASSERT_EQ((*r)[i], Reply::Bulk("v")) << i;
  EXPECT_TRUE(c->healthy());
}

TEST(FlindAuthTest, PoolWithPassword) {
  if (!ServerProcess::FlindBuilt()) GTEST_SKIP() << "flind not built";
  ServerProcess flind({"--requirepass", "pw"}, ServerProcess::Kind::kFlind);
  ASSERT_TRUE(flind.ready());
  PoolConfig cfg = DefaultPoolConfig({flind.unix_socket().ToString()});
  cfg.connect.password = "pw";
  Pool pool(cfg);
  ASSERT_TRUE(pool.BatchSet({{"x", "1"}, {"y", "2"}}, 10000ms).ok());
  auto mg = pool.BatchGet({"x", "y"});
  ASSERT_TRUE(mg.ok()) << mg.status().ToString();
  EXPECT_EQ(*mg, (std::vector<std::optional<std::string>>{"1", "2"}));
  EXPECT_EQ(*pool.BatchDelete({"x", "y"}), 2);

  cfg.connect.password = "wrong";
  Pool bad(cfg);
  Status s = bad.Set("k", "v");
  EXPECT_EQ(s.code(), Code::kServer) << s.ToString();
}

}  // namespace
}  // namespace flin::client
