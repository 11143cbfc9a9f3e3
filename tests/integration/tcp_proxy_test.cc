// TcpProxy with plain blocking sockets: bytes pass both ways, Cut closes
// and refuses, CutOneWay swallows one direction only, Heal restores, and the
// counters say what happened.
#include "tests/integration/tcp_proxy.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "tests/integration/harness.h"

namespace flin::test {
namespace {

// A socket fd closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    Reset();
    fd_ = o.fd_;
    o.fd_ = -1;
    return *this;
  }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A listening socket on a free loopback port.
Fd Listen(uint16_t* port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a = Loopback(0);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(fd.get(), 16), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

Fd Dial(uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a = Loopback(port);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
  return fd;
}

// Waits up to `ms` for the fd to become readable.
bool Readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

Fd Accept(int listener) {
  EXPECT_TRUE(Readable(listener, 10000));
  return Fd(::accept(listener, nullptr, nullptr));
}

void SendAll(int fd, const std::string& s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Reads exactly n bytes (deadline 10 s); returns what arrived.
std::string RecvN(int fd, size_t n) {
  std::string out;
  while (out.size() < n && Readable(fd, 10000)) {
    char buf[4096];
    ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

// True when the peer closed the connection (EOF or reset) within 10 s.
bool SeesClose(int fd) {
  if (!Readable(fd, 10000)) return false;
  char c;
  ssize_t got = ::recv(fd, &c, 1, 0);
  return got == 0 || (got < 0 && errno == ECONNRESET);
}

// Nothing is waiting to be read right now.
bool NothingPending(int fd) {
  char c;
  ssize_t got = ::recv(fd, &c, 1, MSG_DONTWAIT);
  return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct ProxyRig {
  TcpProxy proxy;
  uint16_t target_port = 0;
  Fd listener;
  TcpProxy::Link* link = nullptr;
  ProxyRig() {
    listener = Listen(&target_port);
    auto l = proxy.AddLink(target_port);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    if (l.ok()) link = *l;
  }
};

TEST(TcpProxyTest, ForwardsBothWaysAndCounts) {
  ProxyRig s;
  ASSERT_NE(s.link, nullptr);
  EXPECT_NE(s.link->port(), s.target_port);
  EXPECT_EQ(s.link->target_port(), s.target_port);
  Fd c = Dial(s.link->port());
  Fd srv = Accept(s.listener.get());
  SendAll(c.get(), "hello");
  EXPECT_EQ(RecvN(srv.get(), 5), "hello");
  SendAll(srv.get(), "world!");
  EXPECT_EQ(RecvN(c.get(), 6), "world!");
  // Large transfer: more than one read buffer, order kept.
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::thread writer([&] { SendAll(c.get(), big); });
  EXPECT_EQ(RecvN(srv.get(), big.size()), big);
  writer.join();
  // The counters move once the proxy's write completed, which may be just
  // after the bytes arrived.
  EXPECT_TRUE(WaitFor([&] {
    auto st = s.link->stats();
    return st.bytes_to_target == 5u + big.size() && st.bytes_from_target == 6u;
  })) << s.link->stats().bytes_to_target;
  auto st = s.link->stats();
  EXPECT_EQ(st.accepted, 1u);
  EXPECT_EQ(st.open, 1u);
  EXPECT_EQ(st.dropped_to_target, 0u);
  // Closing one side closes the other.
  c.Reset();
  EXPECT_TRUE(SeesClose(srv.get()));
  EXPECT_TRUE(WaitFor([&] { return s.link->stats().open == 0; }));
}

TEST(TcpProxyTest, CutClosesConnectionsAndRefusesNewOnesUntilHealed) {
  ProxyRig s;
  ASSERT_NE(s.link, nullptr);
  Fd c = Dial(s.link->port());
  Fd srv = Accept(s.listener.get());
  SendAll(c.get(), "x");
  ASSERT_EQ(RecvN(srv.get(), 1), "x");

  s.link->Cut();
  EXPECT_EQ(s.link->stats().open, 0u);
  EXPECT_TRUE(SeesClose(c.get()));
  EXPECT_TRUE(SeesClose(srv.get()));

  // A new dial is accepted by the kernel, then closed by the proxy without
  // ever reaching the target.
  Fd c2 = Dial(s.link->port());
  EXPECT_TRUE(SeesClose(c2.get()));
  EXPECT_TRUE(WaitFor([&] { return s.link->stats().refused == 1; }));
  EXPECT_FALSE(Readable(s.listener.get(), 0)) << "the target saw a connection while cut";

  s.link->Heal();
  Fd c3 = Dial(s.link->port());
  Fd srv3 = Accept(s.listener.get());
  SendAll(c3.get(), "after");
  EXPECT_EQ(RecvN(srv3.get(), 5), "after");
  EXPECT_EQ(s.link->stats().accepted, 2u);
}

TEST(TcpProxyTest, CutOneWaySwallowsOnlyThatDirection) {
  ProxyRig s;
  ASSERT_NE(s.link, nullptr);
  Fd c = Dial(s.link->port());
  Fd srv = Accept(s.listener.get());

  s.link->CutOneWay(TcpProxy::Direction::kToTarget);
  SendAll(c.get(), "lost");
  ASSERT_TRUE(WaitFor([&] { return s.link->stats().dropped_to_target == 4; }));
  EXPECT_TRUE(NothingPending(srv.get()));
  // The other direction still flows, and the connection stays open.
  SendAll(srv.get(), "back");
  EXPECT_EQ(RecvN(c.get(), 4), "back");
  EXPECT_EQ(s.link->stats().open, 1u);

  s.link->Heal();
  SendAll(c.get(), "found");
  EXPECT_EQ(RecvN(srv.get(), 5), "found");  // not "lostfound": dropped bytes stay lost

  s.link->CutOneWay(TcpProxy::Direction::kFromTarget);
  SendAll(srv.get(), "gone");
  ASSERT_TRUE(WaitFor([&] { return s.link->stats().dropped_from_target == 4; }));
  EXPECT_TRUE(NothingPending(c.get()));
  SendAll(c.get(), "still");
  EXPECT_EQ(RecvN(srv.get(), 5), "still");
  EXPECT_TRUE(WaitFor([&] {
    auto st = s.link->stats();
    return st.bytes_to_target == 10u && st.bytes_from_target == 4u;
  })) << s.link->stats().bytes_to_target
      << " " << s.link->stats().bytes_from_target;
  EXPECT_EQ(s.link->stats().accepted, 1u);
}

TEST(TcpProxyTest, DeadTargetClosesTheDialerAndLinksAreIndependent) {
  TcpProxy proxy;
  uint16_t dead_port = FreePort();  // nothing listens there
  auto dead = proxy.AddLink(dead_port);
  ASSERT_TRUE(dead.ok());
  Fd c = Dial((*dead)->port());
  EXPECT_TRUE(SeesClose(c.get()));
  EXPECT_TRUE(WaitFor([&] { return (*dead)->stats().open == 0; }));

  uint16_t target_port = 0;
  Fd listener = Listen(&target_port);
  auto a = proxy.AddLink(target_port);
  auto b = proxy.AddLink(target_port);
  ASSERT_TRUE(a.ok() && b.ok());
  (*a)->Cut();
  Fd cb = Dial((*b)->port());
  Fd srv = Accept(listener.get());
  SendAll(cb.get(), "via b");
  EXPECT_EQ(RecvN(srv.get(), 5), "via b");
}

TEST(TcpProxyTest, TagsSeparateDialersSharingALink) {
  ProxyRig s;
  ASSERT_NE(s.link, nullptr);
  // The first byte names the dialer: 'a' -> 1, 'b' -> 2.
  s.link->SetTagger(1, [](std::string_view prefix) -> TcpProxy::Tag {
    return prefix.empty() ? 0 : static_cast<TcpProxy::Tag>(prefix[0] - 'a' + 1);
  });
  Fd a = Dial(s.link->port());
  SendAll(a.get(), "a1");
  Fd srv_a = Accept(s.listener.get());
  EXPECT_EQ(RecvN(srv_a.get(), 2), "a1");  // the held-back prefix arrives first
  Fd b = Dial(s.link->port());
  SendAll(b.get(), "b1");
  Fd srv_b = Accept(s.listener.get());
  EXPECT_EQ(RecvN(srv_b.get(), 2), "b1");

  // Cutting tag 1 closes a's connection only, and refuses a's new ones
  // before they reach the target.
  s.link->CutTag(1);
  EXPECT_TRUE(SeesClose(a.get()));
  EXPECT_TRUE(SeesClose(srv_a.get()));
  SendAll(b.get(), "b2");
  EXPECT_EQ(RecvN(srv_b.get(), 2), "b2");
  Fd a2 = Dial(s.link->port());
  SendAll(a2.get(), "a2");
  EXPECT_TRUE(SeesClose(a2.get()));
  EXPECT_FALSE(Readable(s.listener.get(), 0)) << "a cut dialer reached the target";
  EXPECT_EQ(s.link->stats().refused, 1u);

  // One-way for tag 2: b's bytes are swallowed, replies still flow.
  s.link->CutTagOneWay(2, TcpProxy::Direction::kToTarget);
  SendAll(b.get(), "xyz");
  ASSERT_TRUE(WaitFor([&] { return s.link->stats().dropped_to_target == 3; }));
  EXPECT_TRUE(NothingPending(srv_b.get()));
  SendAll(srv_b.get(), "ok");
  EXPECT_EQ(RecvN(b.get(), 2), "ok");

  s.link->HealTag(1);
  Fd a3 = Dial(s.link->port());
  SendAll(a3.get(), "a3");
  Fd srv_a3 = Accept(s.listener.get());
  EXPECT_EQ(RecvN(srv_a3.get(), 2), "a3");
  SendAll(b.get(), "zz");  // tag 2 is still one-way cut
  ASSERT_TRUE(WaitFor([&] { return s.link->stats().dropped_to_target == 5; }));
  s.link->Heal();  // heals every tag
  SendAll(b.get(), "b3");
  EXPECT_EQ(RecvN(srv_b.get(), 2), "b3");

  // Reset closes everything but refuses nothing.
  s.link->Reset();
  EXPECT_TRUE(SeesClose(b.get()));
  EXPECT_TRUE(SeesClose(a3.get()));
  Fd b4 = Dial(s.link->port());
  SendAll(b4.get(), "b4");
  Fd srv_b4 = Accept(s.listener.get());
  EXPECT_EQ(RecvN(srv_b4.get(), 2), "b4");
}

TEST(TcpProxyTest, BusyListenPortIsAnError) {
  TcpProxy proxy;
  uint16_t port = 0;
  Fd taken = Listen(&port);
  auto l = proxy.AddLink(FreePort(), port);
  EXPECT_FALSE(l.ok());
}

TEST(TcpProxyTest, DestroyingTheProxyClosesOpenConnections) {
  uint16_t target_port = 0;
  Fd listener = Listen(&target_port);
  Fd c, srv;
  {
    TcpProxy proxy;
    auto l = proxy.AddLink(target_port);
    ASSERT_TRUE(l.ok());
    c = Dial((*l)->port());
    srv = Accept(listener.get());
    SendAll(c.get(), "y");
    ASSERT_EQ(RecvN(srv.get(), 1), "y");
  }
  EXPECT_TRUE(SeesClose(c.get()));
  EXPECT_TRUE(SeesClose(srv.get()));
}

}  // namespace
}  // namespace flin::test
