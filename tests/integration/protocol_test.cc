// Protocol abuse against a real flind over raw sockets (Redis'
// tests/unit/protocol.tcl in spirit): every malformed request gets a clear
// "-ERR Protocol error: ..." and its connection is closed, while other
// clients keep being served.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "tests/integration/harness.h"

namespace flin::test {
namespace {

// A raw unix-socket client: bytes in, bytes out.
class Raw {
 public:
  explicit Raw(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Raw() { ::close(fd_); }
  bool ok() const { return ok_; }
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads until the peer closes or `deadline` passes; returns what arrived.
  std::string ReadUntilClose(std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    std::string out;
    auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // Reads until `want` bytes arrived.
  std::string ReadN(size_t want) {
    std::string out;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (out.size() < want && std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, want - out.size()), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  bool ok_ = false, closed_ = false;
};

class ProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(flind_.Start(&why)) << why;
    bystander_ = flind_.Connect();
    ASSERT_TRUE(bystander_);
  }
  // Sends `bad`, expects `want_error` then a close, and checks another
  // client is still served.
  void ExpectProtocolError(std::string_view bad, std::string_view want_error) {
    Raw r(flind_.socket_path());
    ASSERT_TRUE(r.ok());
    r.Send(bad);
    std::string got = r.ReadUntilClose();
    EXPECT_TRUE(r.closed()) << "connection left open after: " << want_error;
    std::string want = "-ERR Protocol error: " + std::string(want_error) + "\r\n";
    EXPECT_NE(got.find(want), std::string::npos) << "got: " << got;
    EXPECT_EQ(Cmd(*bystander_, {"PING"}).str, "PONG");
  }
  Flind flind_;
  std::unique_ptr<client::Connection> bystander_;
};

TEST_F(ProtocolTest, MalformedMultibulk) {
  ExpectProtocolError("*abc\r\n", "invalid multibulk length");
  ExpectProtocolError("*99999999999\r\n", "invalid multibulk length");
  ExpectProtocolError("*1\r\nfoo\r\n", "expected '$', got 'f'");
  ExpectProtocolError("*1\r\n$-5\r\n", "invalid bulk length");
  ExpectProtocolError("*1\r\n$abc\r\n", "invalid bulk length");
  // Larger than --max-bulk-len (64 MiB by default).
  ExpectProtocolError("*2\r\n$3\r\nSET\r\n$999999999\r\n", "invalid bulk length");
  ExpectProtocolError(std::string("*1\r\n$1\0\r\n", 9), "invalid bulk length");
}

TEST_F(ProtocolTest, UnbalancedQuotesInline) {
  ExpectProtocolError("SET \"a b\r\n", "unbalanced quotes in request");
  ExpectProtocolError("SET 'a\r\n", "unbalanced quotes in request");
}

TEST_F(ProtocolTest, MegabyteOfGarbage) {
  std::mt19937 rng(42);
  std::string junk(1 << 20, '\0');
  for (char& c : junk) c = static_cast<char>('a' + rng() % 26);  // no newline: one huge inline
  ExpectProtocolError(junk, "too big inline request");
}

TEST_F(ProtocolTest, NegativeAndZeroMultibulkAreIgnoredLikeRedis) {
  Raw r(flind_.socket_path());
  r.Send("*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n");
  EXPECT_EQ(r.ReadN(7), "+PONG\r\n");
}

TEST_F(ProtocolTest, BinarySafeBulksWithNulAndInlineCommands) {
  Raw r(flind_.socket_path());
  std::string v("a\0\r\nb", 5);
  r.Send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\n" + v + "\r\n");
  EXPECT_EQ(r.ReadN(5), "+OK\r\n");
  r.Send("GET k\r\n");
  EXPECT_EQ(r.ReadN(11), "$5\r\n" + v + "\r\n");
  r.Send("set \"q u\\x41\" 'it''s'\r\n");
  EXPECT_EQ(r.ReadN(5), "-ERR ");  // 'it''s' is not valid: quote must be followed by space
}

TEST_F(ProtocolTest, ByteByByteClientWhileOthersAreServed) {
  std::string req;
  for (int i = 0; i < 20; ++i) {
    std::string k = "slow" + std::to_string(i);
    req += "*3\r\n$3\r\nSET\r\n$" + std::to_string(k.size()) + "\r\n" + k + "\r\n$1\r\nv\r\n";
  }
  req += "*2\r\n$3\r\nGET\r\n$6\r\nslow19\r\n";
  Raw slow(flind_.socket_path());
  std::atomic<bool> done{false};
  std::thread other([&] {
    auto c = flind_.Connect();
    int served = 0;
    while (!done) {
      EXPECT_EQ(Cmd(*c, {"PING"}).str, "PONG");
      ++served;
    }
    EXPECT_GT(served, 10);
  });
  for (char ch : req) {
    ASSERT_TRUE(slow.Send(std::string_view(&ch, 1)));
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // a slow sender, not a sync
  }
  std::string want;
  for (int i = 0; i < 20; ++i) want += "+OK\r\n";
  want += "$1\r\nv\r\n";
  EXPECT_EQ(slow.ReadN(want.size()), want);
  done = true;
  other.join();
}

TEST(ProtocolLimitsTest, MaxClientsIsEnforcedWithAClearError) {
  Flind::Options o;
  o.extra_args = {"--max-clients", "3"};
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;
  auto a = flind.Connect();
  auto b = flind.Connect();
  auto c = flind.Connect();
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(Cmd(*c, {"PING"}).str, "PONG");
  Raw extra(flind.socket_path());
  EXPECT_EQ(extra.ReadUntilClose(), "-ERR max number of clients reached\r\n");
  a.reset();
  EXPECT_TRUE(WaitFor([&] {
    Raw again(flind.socket_path());
    again.Send("PING\r\n");
    return again.ReadN(7) == "+PONG\r\n";
  }));
}

TEST(ProtocolLimitsTest, UnauthenticatedClientsCannotSendBigRequests) {
  Flind::Options o;
  o.extra_args = {"--requirepass", "pw"};
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;
  Raw r(flind.socket_path());
  r.Send("*2\r\n$3\r\nGET\r\n$100000\r\n");
  std::string got = r.ReadUntilClose();
  EXPECT_NE(got.find("-ERR Protocol error"), std::string::npos) << got;
}

TEST(ProtocolLimitsTest, OutputBufferLimitGivesClearErrors) {
  Flind::Options o;
  o.extra_args = {"--client-output-buffer-limit", "4096"};
  Flind flind(o);
  std::string why;
  ASSERT_TRUE(flind.Start(&why)) << why;
  auto c = flind.Connect();
  std::string big(3000, 'x');
  Cmd(*c, {"MSET", "a", big, "b", big});
  for (int i = 0; i < 300; ++i) Cmd(*c, {"SET", "key:" + std::to_string(i), "v"});
  EXPECT_EQ(
      Cmd(*c, {"MGET", "a", "b"}).str.rfind("ERR MGET reply exceeds client-output-buffer-limit", 0),
      0u);
  EXPECT_EQ(
      Cmd(*c, {"KEYS", "*"}).str.rfind("ERR KEYS reply exceeds client-output-buffer-limit", 0), 0u);
  EXPECT_EQ(Cmd(*c, {"GET", "a"}).str, big);  // one reply under the limit is fine
  // A pipeline whose replies pile up past the limit (with a write still in
  // flight among them) gets an error and is disconnected; others are served.
  Raw r(flind.socket_path());
  // (ECHO does not wait for the pending SET, so the limit trips while it is in flight.)
  r.Send("GET a\r\nSET w 1\r\nECHO " + big + "\r\nPING\r\n");
  std::string got = r.ReadUntilClose();
  EXPECT_TRUE(r.closed());
  EXPECT_NE(got.find("-ERR reply exceeds client-output-buffer-limit"), std::string::npos) << got;
  EXPECT_EQ(Cmd(*c, {"PING"}).str, "PONG");
  EXPECT_EQ(Cmd(*c, {"GET", "w"}).str, "1");
}

}  // namespace
}  // namespace flin::test
